"""A prediction judged fairly: two one-sided tests (TOST) against a stated margin.

The measured effect (mean of n paired differences, standard error ``se``) is compared with a
predicted value that carries its own standard error (the calibration's spread over its
repetitions).  The difference measured − predicted has the standard error
sqrt(se² + se_pred²) on n − 1 degrees of freedom (conservative: the calibration's own
degrees of freedom are not pooled in).  Three outcomes:

- **held**: the (1 − 2α) interval of the difference lies inside [−margin, +margin]
  (both one-sided tests reject at α): the prediction is equivalent within the margin;
- **failed**: not held, and the (1 − α) interval of the difference excludes zero;
- **inconclusive**: neither — the interval is too wide to tell.

A wider interval can only move a verdict towards inconclusive, never to held.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.analysis.stats import Interval

HELD, FAILED, INCONCLUSIVE = "held", "failed", "inconclusive"
OUTCOMES = (HELD, FAILED, INCONCLUSIVE)


@dataclass(frozen=True)
class EquivalenceTest:
    outcome: str  # held | failed | inconclusive
    difference: float  # measured − predicted
    tost_interval: Interval  # (1 − 2α) interval of the difference
    margin: float
    alpha: float
    method: str

    @property
    def held(self) -> bool:
        return self.outcome == HELD


def equivalence(
    measured_mean: float,
    measured_se: float,
    df: int,
    predicted: float,
    predicted_se: float,
    margin: float,
    alpha: float,
) -> EquivalenceTest | None:
    """TOST of measured against predicted; None when the inputs give no test (df < 1, a
    non-finite value, a margin that is not positive)."""
    from scipy import stats as sps  # imported when used: it costs seconds under TCG

    values = (measured_mean, measured_se, predicted, predicted_se, margin)
    if df < 1 or not all(math.isfinite(v) for v in values) or margin <= 0:
        return None
    se = math.hypot(measured_se, predicted_se)
    diff = measured_mean - predicted
    t_tost = float(sps.t.ppf(1.0 - alpha, df))
    t_two = float(sps.t.ppf(1.0 - alpha / 2.0, df))
    tost = Interval(diff - t_tost * se, diff + t_tost * se)
    if -margin < tost.low and tost.high < margin:
        outcome = HELD
    elif abs(diff) > t_two * se:
        outcome = FAILED
    else:
        outcome = INCONCLUSIVE
    method = (
        f"TOST, margin ±{margin / 1000:.3g} µs, α = {alpha:g}, df = {df}; "
        f"s.e. {se / 1000:.3g} µs (measured {measured_se / 1000:.3g}, "
        f"calibration {predicted_se / 1000:.3g})"
    )
    return EquivalenceTest(outcome, diff, tost, margin, alpha, method)
