"""Reading an HdrHistogram fast: its recorded values with cumulative counts from the counts
array at once (hdrh's iterators, in pure Python, visit every bucket up to the largest
value at each step: seconds for a histogram with a long tail), and values at given ranks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from hdrh.histogram import HdrHistogram


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
