"""How precise a configuration's percentiles are, at the two levels the run has: within a
phase, the distribution-free order-statistic interval of its p50 and p99 (from the phase's
histogram, which counts every request: the ranks bracketing the quantile with 95 %
coverage; it assumes successive requests independent, which the independence gate checks),
and across rounds, the spread of the per-round values.  A percentile that reaches the
driver's reply timeout is lost requests, said so, not given an interval."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hdrh.histogram import HdrHistogram

from bench.analysis.gates import CONFIDENCE, order_statistic_ranks
from bench.driver.histogram import values_at_ranks
from bench.results.metrics import at_timeout
from bench.results.rows import Configuration, PhaseRow

QUANTILES = (0.5, 0.99)


@dataclass(frozen=True)
class WithinPhase:
    """One phase's quantile and its order-statistic interval (ns)."""

    estimate: float
    low: float
    high: float


def histogram_interval(
    hist: HdrHistogram, q: float, confidence: float = CONFIDENCE
) -> WithinPhase | None:
    """The ``q`` quantile of the requests ``hist`` counted, with the values at the ranks
    that bracket it; None when too few requests were counted for an interval."""
    n = int(hist.get_total_count())
    try:
        low, high = order_statistic_ranks(n, q, confidence)
    except ValueError:
        return None

    middle = max(1, math.ceil(q * n))
    estimate, lo, hi = values_at_ranks(hist, [middle, low, high])
    return WithinPhase(estimate, lo, hi)


@dataclass(frozen=True)
class Precision:
    """A configuration's quantile ``q``: the median over rounds of each phase's interval
    bounds, and the range of the per-round values; ``lost`` when it reached the timeout."""

    q: float
    rounds: int
    within_low: float | None
    within_high: float | None
    round_min: float | None
    round_max: float | None
    lost: bool = False


def _decoded(row: PhaseRow) -> HdrHistogram | None:
    if not row.histogram:
        return None
    try:
        return HdrHistogram.decode(row.histogram)
    except Exception:  # a corrupt histogram of a hostile file: no interval, never a crash
        return None


def precision(
    rows: Sequence[PhaseRow], q: float, timeout_ns: float | None = None
) -> Precision | None:
    """``q``'s precision over the ok ``rows`` of one configuration (None: no histogram)."""
    within: list[WithinPhase] = []
    for row in rows:
        hist = _decoded(row) if row.ok else None
        found = histogram_interval(hist, q) if hist is not None else None
        if found is not None:
            within.append(found)
    if not within:
        return None
    estimates = [w.estimate for w in within]
    lost = timeout_ns is not None and any(at_timeout(w.estimate, timeout_ns) for w in within)
    return Precision(
        q=q,
        rounds=len(within),
        within_low=None if lost else statistics.median(w.low for w in within),
        within_high=None if lost else statistics.median(w.high for w in within),
        round_min=min(estimates),
        round_max=max(estimates),
        lost=lost,
    )


def precisions(
    groups: Mapping[Configuration, Sequence[PhaseRow]], timeout_ns: float | None = None
) -> dict[Configuration, tuple[Precision, ...]]:
    """Every configuration's p50 and p99 precision (configurations without histograms
    left out)."""
    out: dict[Configuration, tuple[Precision, ...]] = {}
    for key, rows in groups.items():
        found = tuple(p for q in QUANTILES if (p := precision(rows, q, timeout_ns)) is not None)
        if found:
            out[key] = found
    return out
