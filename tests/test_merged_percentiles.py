"""Tail percentiles come from the trials' histograms merged, not the median of per-trial
percentiles: a tail one trial holds shows in the merged p99 and vanishes in the median."""

from __future__ import annotations

import dataclasses

from bench.analysis.merged import merged_percentiles
from bench.analysis.summary import summarize
from bench.driver.histogram import empty, encode
from bench.results.rows import Latency, PhaseRow
from bench.results.run import Run
from tests.test_results import BASE


def _row(trial: int, values_ns: list[int], template: PhaseRow) -> PhaseRow:
    hist = empty()
    for v in values_ns:
        hist.record_value(v)
    per_trial = Latency(p50=float(hist.get_value_at_percentile(50)),
                        p99=float(hist.get_value_at_percentile(99)))  # fmt: skip
    return dataclasses.replace(
        template, trial=trial, histogram=encode(hist), latency_ns=per_trial, status="ok"
    )


def test_a_tail_held_by_one_trial_shows_in_the_merged_p99() -> None:
    run = Run.load(BASE)
    template = next(r for r in run.rows if r.ok and r.mode == "pingpong")
    fast = [10_000] * 1000
    slow = [10_000] * 950 + [900_000] * 50  # 5% of one trial: its own p99 is the tail
    rows = [_row(0, fast, template), _row(1, fast, template), _row(2, slow, template)]
    (merged,) = merged_percentiles(rows).values()
    # 50 slow of 3000 requests: 1.7% > 1%, so the merged p99 is in the tail ...
    assert 895_000 <= merged["rtt_p99"] <= 905_000
    assert 9_990 <= merged["rtt_p50"] <= 10_010
    # ... while the median of the three per-trial p99s is not
    assert sorted(r.latency_ns.p99 or 0 for r in rows)[1] < 11_000
    run.rows = rows
    (line,) = [ln for lines in summarize(run).lines.values() for ln in lines]
    assert line.merged and line.value("rtt_p99") == merged["rtt_p99"]


def test_a_configuration_without_histograms_keeps_its_medians() -> None:
    run = Run.load(BASE)
    template = next(r for r in run.rows if r.ok and r.mode == "pingpong")
    rows = [dataclasses.replace(template, trial=t, histogram=None) for t in range(3)]
    assert merged_percentiles(rows) == {}
    run.rows = rows
    (line,) = [ln for lines in summarize(run).lines.values() for ln in lines]
    assert not line.merged and line.value("rtt_p50") == template.latency_ns.p50
