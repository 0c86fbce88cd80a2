"""Latency histograms: the C client buckets exactly like HdrHistogram(1 ns, 60 s, 3 digits),
so that its ``[value_ns, count]`` pairs rebuild the same histogram here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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
    """p50 .. p99.9 as computed by the hdrhistogram package; None when it is empty."""
    if hist.get_total_count() == 0:
        return {name: None for name, _ in PERCENTILES}
    return {name: float(hist.get_value_at_percentile(pct)) for name, pct in PERCENTILES}


def encode(hist: HdrHistogram) -> str:
    """The standard compressed, base64 HdrHistogram encoding, as text."""
    blob = hist.encode()
    return blob.decode("ascii") if isinstance(blob, bytes) else str(blob)
