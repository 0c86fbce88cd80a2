"""Latency percentiles of a configuration from its trials' histograms merged into one.

A p99 over five trials is the 99th percentile of all their requests together, not the
median of five per-trial p99s (which understates a tail that one trial holds).  The
per-trial values stay what the intervals are computed from."""

from __future__ import annotations

from collections.abc import Sequence

from hdrh.histogram import HdrHistogram

from bench.driver.histogram import PERCENTILES, empty, percentiles
from bench.results.frame import grouped
from bench.results.rows import Configuration, PhaseRow

METHOD = "percentiles of the trials' HdrHistograms merged (3 significant digits)"
MERGED_METRICS = {f"rtt_{name}": name for name, _ in PERCENTILES}


def merged_percentiles(rows: Sequence[PhaseRow]) -> dict[Configuration, dict[str, float]]:
    """Per configuration with every ok trial's histogram present: metric name -> value."""
    out: dict[Configuration, dict[str, float]] = {}
    for key, group in grouped(rows).items():
        if not group or any(r.histogram is None for r in group):
            continue
        merged = empty()
        for row in group:
            merged.add(HdrHistogram.decode(row.histogram))
        values = percentiles(merged)
        out[key] = {m: v for m, name in MERGED_METRICS.items() if (v := values[name]) is not None}
    return out
