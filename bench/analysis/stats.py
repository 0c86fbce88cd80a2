"""Statistics shared by the report and compare: medians, bootstrap intervals, Mann-Whitney U.

The bootstrap is documented here because the report's numbers must be reproducible:
:func:`bootstrap_diff_ci` draws ``resamples`` resamples of each group independently
(with replacement, ``numpy.random.default_rng(seed)``, first all baseline index rows
then all candidate index rows), takes the difference of the resample means
``mean(baseline*) - mean(candidate*)`` and returns the 2.5th and 97.5th percentiles
(numpy's default linear interpolation) for a 95% interval.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BOOTSTRAP_SEED = 2493
BOOTSTRAP_RESAMPLES = 10_000
CONFIDENCE = 0.95


def present(values: Iterable[float | None]) -> list[float]:
    """The values that were measured (None dropped)."""
    return [float(v) for v in values if v is not None]


def median(values: Iterable[float | None]) -> float | None:
    """Median of the measured values, None when there are none."""
    vals = present(values)
    return statistics.median(vals) if vals else None


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    @property
    def excludes_zero(self) -> bool:
        return not self.contains(0.0)


def bootstrap_diff_ci(
    baseline: Sequence[float],
    candidate: Sequence[float],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> Interval:
    """Percentile bootstrap interval of ``mean(baseline) - mean(candidate)``."""
    if not baseline or not candidate:
        raise ValueError("bootstrap needs at least one value in each group")
    a = np.asarray(baseline, dtype=float)
    b = np.asarray(candidate, dtype=float)
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, a.size, size=(resamples, a.size))
    ib = rng.integers(0, b.size, size=(resamples, b.size))
    diffs = a[ia].mean(axis=1) - b[ib].mean(axis=1)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(diffs, [tail, 100.0 - tail])
    return Interval(float(low), float(high))


@dataclass(frozen=True)
class PairedEstimate:
    """Mean of paired differences with its Student-t interval; ``method`` says how."""

    mean: float
    interval: Interval
    n: int
    method: str


def paired_t_interval(
    differences: Sequence[float], confidence: float = CONFIDENCE
) -> PairedEstimate | None:
    """Mean of ``differences`` (one per pair) with the two-sided Student-t interval on
    n - 1 degrees of freedom; None with fewer than two pairs (no spread to go on)."""
    from scipy import stats as sps  # imported when used: it costs seconds under TCG

    d = np.asarray(differences, dtype=float)
    if d.size < 2:
        return None
    mean = float(d.mean())
    half = float(sps.t.ppf(0.5 + confidence / 2.0, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size))
    method = f"paired t, {confidence:.0%}, n={d.size}"
    return PairedEstimate(mean, Interval(mean - half, mean + half), int(d.size), method)


def min_two_sided_p(n1: int, n2: int) -> float:
    """The smallest two-sided p-value an exact Mann-Whitney U test can give for n1, n2."""
    if n1 < 1 or n2 < 1:
        return 1.0
    return min(1.0, 2.0 / math.comb(n1 + n2, n1))


PERMUTATION_LIMIT = 20_000


def mann_whitney_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Mann-Whitney U p-value.

    Without ties: the exact distribution of U (fast, at any size scipy allows).  With ties
    (quantised histogram percentiles, exact counts) and at most PERMUTATION_LIMIT ways to
    split the samples (up to 7 vs 7): the exact permutation distribution, which stays
    exact with ties; beyond that the normal approximation with the tie correction (at 8
    and more per side its error is far below the levels used here).
    """
    from scipy import stats as sps

    if not a or not b:
        return 1.0
    pooled = [*a, *b]
    if len(set(pooled)) == 1:
        return 1.0
    method: Any
    if len(set(pooled)) == len(pooled):
        method = "exact"
    elif math.comb(len(a) + len(b), len(a)) <= PERMUTATION_LIMIT:
        method = sps.PermutationMethod(n_resamples=np.inf)
    else:
        method = "asymptotic"
    result = sps.mannwhitneyu(a, b, alternative="two-sided", method=method)
    return float(result.pvalue)
