"""Latency histograms: the C client buckets exactly like HdrHistogram(1 ns, 60 s, 3 digits),
so that its ``[value_ns, count]`` pairs rebuild the same histogram here.

They are read from the counts array at once, with numpy: hdrh's own iterators and
percentile lookups are pure Python and visit every bucket up to the value sought at each
step (seconds for a histogram with a long tail, and once per phase)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from hdrh.histogram import HdrHistogram

LOWEST_NS = 1
HIGHEST_NS = 60_000_000_000
SIGNIFICANT_DIGITS = 3

PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p999", 99.9),
)


def empty() -> HdrHistogram:
    return HdrHistogram(LOWEST_NS, HIGHEST_NS, SIGNIFICANT_DIGITS)


def from_buckets(buckets: Iterable[Sequence[int]]) -> HdrHistogram:
    """A histogram holding ``count`` recordings of each ``value_ns``."""
    hist = empty()
    for value, count in buckets:
        if count < 0 or value < 0:
            raise ValueError(f"bad histogram bucket [{value}, {count}]")
        if count:
            hist.record_value(min(int(value), HIGHEST_NS), int(count))
    return hist


def percentiles(hist: HdrHistogram) -> dict[str, float | None]:
    """p50 .. p99.9, the values hdrh's get_value_at_percentile gives (its rank for each
    percentile, read at once); None when it is empty."""
    if hist.get_total_count() == 0:
        return {name: None for name, _ in PERCENTILES}
    ranks = [hist.get_target_count_at_percentile(pct) for _, pct in PERCENTILES]
    values = values_at_ranks(hist, ranks)
    return {name: value for (name, _), value in zip(PERCENTILES, values, strict=True)}


def encode(hist: HdrHistogram) -> str:
    """The standard compressed, base64 HdrHistogram encoding, as text."""
    blob = hist.encode()
    return blob.decode("ascii") if isinstance(blob, bytes) else str(blob)


def recorded(hist: HdrHistogram) -> list[tuple[int, int]]:
    """(value, requests at or below it) at every recorded value, in order, the value as
    hdrh's recorded iterator gives it (the highest equivalent of its bucket)."""
    try:
        stored = min(hist.counts_len, hist.encoder.payload.counts_len)
        counts = np.ctypeslib.as_array(hist.counts)[:stored]
    except (AttributeError, TypeError, ValueError):  # another hdrh layout: the iterator
        return [
            (int(item.value_iterated_to), int(item.total_count_to_this_value))
            for item in hist.get_recorded_iterator()
        ]
    index = np.flatnonzero(counts)
    total = np.cumsum(counts[index])
    values = highest_equivalent_values(hist, index)
    return [(int(v), int(t)) for v, t in zip(values, total, strict=True)]


def highest_equivalent_values(
    hist: HdrHistogram, index: npt.NDArray[np.integer[Any]]
) -> npt.NDArray[np.int64]:
    """hdrh's get_highest_equivalent_value(get_value_from_index(i)) for every counts
    index ``i`` at once (the same arithmetic, on arrays)."""
    at = index.astype(np.int64)
    half, half_magnitude = hist.sub_bucket_half_count, hist.sub_bucket_half_count_magnitude
    bucket = (at >> half_magnitude) - 1
    sub = (at & (half - 1)) + half
    first = bucket < 0
    sub = np.where(first, sub - half, sub)
    bucket = np.where(first, 0, bucket)
    shift = bucket + hist.unit_magnitude
    lowest: npt.NDArray[np.int64] = sub << shift
    size: npt.NDArray[np.int64] = np.left_shift(np.int64(1), shift)
    highest: npt.NDArray[np.int64] = lowest + size - 1
    return highest


def values_at_ranks(hist: HdrHistogram, ranks: Sequence[int]) -> list[float]:
    """The value of the ``rank``-th smallest recorded request (1-based) for each rank."""
    points = recorded(hist)
    if not points:
        raise ValueError("an empty histogram has no ranks")
    values = np.array([v for v, _ in points], dtype=np.float64)
    below = np.array([c for _, c in points], dtype=np.int64)
    at = np.searchsorted(below, np.asarray(ranks, dtype=np.int64), side="left")
    return [float(values[min(int(i), len(values) - 1)]) for i in at]


def count_at_or_above(hist: HdrHistogram, threshold: float) -> int:
    """Requests recorded at values of at least ``threshold``."""
    before = 0
    above = 0
    for value, total in recorded(hist):
        if value >= threshold:
            above += total - before
        before = total
    return above
