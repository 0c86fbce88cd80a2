"""Statistics shared by the report and compare: medians, paired t intervals with their
p-values, family adjustments (Bonferroni intervals, Benjamini-Hochberg q-values) and the
Mann-Whitney U test.

Every interval here is over paired differences (one per round, both sides measured in it),
so a point estimate and its interval always come from the same pairs; fewer than
``MIN_ROUNDS`` pairs give no interval at all.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

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


MIN_ROUNDS = 3  # fewer paired rounds give no interval: the spread of one or two is no spread


@dataclass(frozen=True)
class PairedEstimate:
    """Mean of paired differences with its Student-t interval and the two-sided p-value of
    "the mean difference is zero"; ``method`` says how (confidence, adjustment, n)."""

    mean: float
    interval: Interval
    n: int
    method: str
    p: float = float("nan")
    se: float = float("nan")  # standard error of the mean difference

    @property
    def df(self) -> int:
        return self.n - 1


def paired_t_interval(
    differences: Sequence[float],
    confidence: float = CONFIDENCE,
    *,
    min_n: int = MIN_ROUNDS,
    adjustment: str = "",
) -> PairedEstimate | None:
    """Mean of ``differences`` (one per pair) with the two-sided Student-t interval on
    n - 1 degrees of freedom at ``confidence`` (already adjusted by the caller when it is
    one of a family: ``adjustment`` names how); None with fewer than ``min_n`` pairs or a
    non-finite difference."""
    from scipy import stats as sps  # imported when used: it costs seconds under TCG

    d = np.asarray(differences, dtype=float)
    if d.size < max(2, min_n) or not np.all(np.isfinite(d)):
        return None
    mean = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(d.size))
    half = float(sps.t.ppf(0.5 + confidence / 2.0, d.size - 1) * se)
    p = float(2.0 * sps.t.sf(abs(mean) / se, d.size - 1)) if se > 0 else float(mean == 0)
    method = f"paired t, {confidence:.{_digits(confidence)}%}{adjustment}, n={d.size}"
    return PairedEstimate(mean, Interval(mean - half, mean + half), int(d.size), method, p, se)


def _digits(confidence: float) -> int:
    """Decimals that show ``confidence`` as a percentage without rounding it to 100 %."""
    for digits in range(0, 4):
        if round(confidence * 100, digits) == round(confidence * 100, 6):
            return digits
    return 4


def bonferroni_confidence(family_size: int, confidence: float = CONFIDENCE) -> float:
    """Per-interval confidence that makes ``family_size`` intervals hold together with
    probability at least ``confidence`` (Bonferroni)."""
    return 1.0 - (1.0 - confidence) / max(1, family_size)


def bh_qvalues(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg q-values (step-up adjusted p-values), in the order given."""
    m = len(p_values)
    if m == 0:
        return []
    order = sorted(range(m), key=lambda i: p_values[i])
    q = [1.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        p = p_values[i]
        value = min(1.0, p * m / rank) if math.isfinite(p) else 1.0
        running = min(running, value)
        q[i] = running
    return q


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
