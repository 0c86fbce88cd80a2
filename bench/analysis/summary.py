"""The summary of a run: per environment, one line per configuration with the medians over
its ok trials of every metric, how many trials were ok out of how many attempted, and why a
figure is absent where the rows say; then the failed phases and the skipped impls."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bench.analysis.merged import merged_percentiles
from bench.results.frame import medians
from bench.results.rows import Configuration
from bench.results.run import Run

MODE_ORDER = {"pingpong": 0, "rate": 1, "flood": 2}


@dataclass(frozen=True)
class SummaryLine:
    key: Configuration
    trials: int  # ok trials
    attempted: int
    # metric name -> median over ok trials; RTT percentiles from the merged histograms
    # where every ok trial has one (``merged`` True), as bench/analysis/merged.py says
    medians: Mapping[str, float | None]
    why_missing: str | None  # the rows' accounting note: where an absent figure shows instead
    merged: bool = False

    def value(self, metric: str) -> float | None:
        return self.medians.get(metric)


@dataclass(frozen=True)
class Failure:
    env: str
    impl: str
    mode: str
    size: int
    trial: int
    load_fraction: float | None
    error: str


@dataclass(frozen=True)
class Summary:
    lines: Mapping[str, tuple[SummaryLine, ...]]  # by environment, in the run's order
    failures: tuple[Failure, ...]
    skipped: Mapping[str, tuple[tuple[str, str], ...]]  # env -> (impl, reason)
    failed_configurations: Mapping[str, tuple[Configuration, ...]]  # attempted, none ok


def _line_order(run: Run) -> Callable[[Configuration], tuple[Any, ...]]:
    def key(c: Configuration) -> tuple[Any, ...]:
        lf = -1.0 if c.load_fraction is None else c.load_fraction
        rate = -1.0 if c.offered_rps is None else c.offered_rps
        return (run.impl(c.impl).sort_key(), MODE_ORDER.get(c.mode, 9), c.size, c.topology,
                lf, rate, *c.factor_levels().values(), c.server_options)  # fmt: skip

    return key


def summarize(run: Run) -> Summary:
    table = medians(run.rows)
    merged = merged_percentiles(run.rows)
    attempted = run.groups(ok_only=False)
    ok = run.groups()
    order = _line_order(run)
    lines: dict[str, tuple[SummaryLine, ...]] = {}
    failed: dict[str, tuple[Configuration, ...]] = {}
    for env in run.env_names:
        keys = sorted((k for k in ok if k.env == env), key=order)
        out = []
        for key in keys:
            med = table[key]
            why = next(
                (r.accounting.note for r in ok[key] if r.accounting and r.accounting.note), None
            )
            values = {**med.values, **merged.get(key, {})}
            out.append(
                SummaryLine(key, med.trials, len(attempted[key]), values, why, key in merged)
            )
        lines[env] = tuple(out)
        failed[env] = tuple(
            sorted((k for k in attempted if k.env == env and k not in ok), key=order)
        )
    failures = tuple(
        Failure(r.env, r.impl, r.mode, r.size, r.trial, r.load_fraction,
                r.error or "no error recorded")
        for r in run.rows
        if not r.ok
    )  # fmt: skip
    skipped: dict[str, list[tuple[str, str]]] = {}
    for s in run.skipped:
        skipped.setdefault(s.env, []).append((s.impl, s.reason))
    return Summary(lines, failures, {e: tuple(v) for e, v in skipped.items()}, failed)
