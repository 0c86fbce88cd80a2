"""Compare two runs, asv style: a change counts only if it is large *and* significant.

For every configuration both runs measured (env, impl, mode, size, topology, load
fraction) and every metric below, each run's per-trial values are first normalised to
the reference impl of the *same run* (trial value / median of the reference's trials of
the same configuration), so that a faster or slower machine moves every impl alike and
does not read as a regression.  The change is the ratio of the normalised medians
NEW/BASE.  It counts when it exceeds ``factor`` in one direction (higher latency, CPU,
syscalls or switches; lower throughput is worse) and a two-sided Mann-Whitney U test
over the normalised per-trial values gives p < ``alpha``.  The reference impl's own rows
are reported with their raw ratio but never flagged.

The comparison is a value (:class:`Comparison`); it is rendered only at the edge
(:func:`render_table`, :meth:`Comparison.to_json`, :func:`main_compare`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from bench.results_io import GroupKey, ResultsError, Row, Run, group_rows, latency, load_results
from bench.stats import mann_whitney_p, median, min_two_sided_p, present

DEFAULT_FACTOR = 1.25
DEFAULT_ALPHA = 0.01
DEFAULT_REFERENCE = "blocking-c"

REGRESSION = "regression"
IMPROVEMENT = "improvement"
UNCHANGED = "unchanged"
NOT_SIGNIFICANT = "not significant"
TOO_FEW_TRIALS = "too few trials"
REFERENCE = "reference"


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    unit: str
    higher_is_worse: bool
    value: Callable[[Row], float | None]


def _pr(field: str) -> Callable[[Row], float | None]:
    def get(row: Row) -> float | None:
        pr: Mapping[str, Any] = row["per_request"]
        v = pr["cpu_ns"].get("total") if field == "cpu_total" else pr.get(field)
        return None if v is None else float(v)

    return get


def _throughput(row: Row) -> float | None:
    return float(row["throughput_rps"])


METRICS: tuple[Metric, ...] = (
    Metric("rtt_p50", "p50 RTT", "ns", True, lambda r: latency(r, "p50")),
    Metric("rtt_p99", "p99 RTT", "ns", True, lambda r: latency(r, "p99")),
    Metric("throughput_rps", "throughput", "req/s", False, _throughput),
    Metric("cpu_ns_per_req", "CPU/req", "ns", True, _pr("cpu_total")),
    Metric("server_syscalls_per_req", "server syscalls/req", "", True, _pr("server_syscalls")),
    Metric("system_ctx_per_req", "system ctx/req", "", True, _pr("system_ctx_switches")),
)
METRIC_NAMES = tuple(m.name for m in METRICS)


@dataclass(frozen=True)
class MetricChange:
    """One metric of one configuration, BASE vs NEW."""

    key: GroupKey
    metric: str
    unit: str
    base_median: float
    new_median: float
    raw_ratio: float
    ratio: float
    normalised: bool
    p_value: float | None
    n_base: int
    n_new: int
    verdict: str

    @property
    def is_reference(self) -> bool:
        return self.verdict == REFERENCE

    def to_json(self) -> dict[str, Any]:
        return {
            "env": self.key.env,
            "impl": self.key.impl,
            "mode": self.key.mode,
            "size": self.key.size,
            "topology": self.key.topology,
            "load_fraction": self.key.load_fraction,
            "metric": self.metric,
            "unit": self.unit,
            "base_median": self.base_median,
            "new_median": self.new_median,
            "raw_ratio": _finite(self.raw_ratio),
            "ratio": _finite(self.ratio),
            "normalised": self.normalised,
            "p_value": self.p_value,
            "n_base": self.n_base,
            "n_new": self.n_new,
            "verdict": self.verdict,
        }


def _finite(x: float) -> float | str:
    return x if math.isfinite(x) else str(x)


@dataclass(frozen=True)
class Comparison:
    base: str
    new: str
    factor: float
    alpha: float
    reference: str
    changes: tuple[MetricChange, ...]
    only_in_base: tuple[GroupKey, ...]
    only_in_new: tuple[GroupKey, ...]
    notes: tuple[str, ...]

    @property
    def regressions(self) -> tuple[MetricChange, ...]:
        return tuple(c for c in self.changes if c.verdict == REGRESSION)

    @property
    def improvements(self) -> tuple[MetricChange, ...]:
        return tuple(c for c in self.changes if c.verdict == IMPROVEMENT)

    def summary(self) -> str:
        r, i = len(self.regressions), len(self.improvements)
        return (
            f"{r} regression{'s' * (r != 1)}, {i} improvement{'s' * (i != 1)} "
            f"over {len(self.changes)} metrics (factor {self.factor:g}, alpha {self.alpha:g}, "
            f"normalised to {self.reference})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "new": self.new,
            "factor": self.factor,
            "alpha": self.alpha,
            "reference": self.reference,
            "summary": self.summary(),
            "regressions": [c.to_json() for c in self.regressions],
            "improvements": [c.to_json() for c in self.improvements],
            "changes": [c.to_json() for c in self.changes],
            "only_in_base": [k.label() for k in self.only_in_base],
            "only_in_new": [k.label() for k in self.only_in_new],
            "notes": list(self.notes),
        }


def _ratio(new: float, base: float) -> float:
    if base == 0.0:
        return 1.0 if new == 0.0 else math.inf
    return new / base


def _normalised(
    rows: Sequence[Row], metric: Metric, ref_rows: Sequence[Row] | None
) -> tuple[list[float], bool]:
    values = present(metric.value(r) for r in rows)
    if ref_rows is None:
        return values, False
    ref = median(metric.value(r) for r in ref_rows)
    if ref is None or ref == 0.0:
        return values, False
    return [v / ref for v in values], True


def _verdict(
    metric: Metric,
    ratio: float,
    base: Sequence[float],
    new: Sequence[float],
    factor: float,
    alpha: float,
) -> tuple[str, float | None]:
    worse = ratio > factor if metric.higher_is_worse else ratio < 1.0 / factor
    better = ratio < 1.0 / factor if metric.higher_is_worse else ratio > factor
    if not (worse or better):
        return UNCHANGED, None
    if min_two_sided_p(len(base), len(new)) >= alpha:
        return TOO_FEW_TRIALS, None
    p = mann_whitney_p(base, new)
    if p >= alpha:
        return NOT_SIGNIFICANT, p
    return (REGRESSION if worse else IMPROVEMENT), p


def _env_notes(base: Run, new: Run) -> list[str]:
    notes = []
    for name in sorted(set(base.environments) & set(new.environments)):
        b, n = base.environments[name], new.environments[name]
        diffs = [
            f"{field} {b.get(field)} -> {n.get(field)}"
            for field in ("accel", "kernel", "cpu_model", "cpu_count")
            if b.get(field) != n.get(field)
        ]
        if diffs:
            notes.append(f"environment {name} changed ({'; '.join(diffs)}): read normalised ratios")
    return notes


def compare_loaded(
    base: Run,
    new: Run,
    *,
    factor: float = DEFAULT_FACTOR,
    alpha: float = DEFAULT_ALPHA,
    reference: str = DEFAULT_REFERENCE,
    metrics: Sequence[str] = (),
) -> Comparison:
    """Compare two loaded runs (see the module docstring for the rule); ``metrics`` names
    the metrics to compare (default: all of METRICS)."""
    unknown = [m for m in metrics if m not in METRIC_NAMES]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r} (known: {', '.join(METRIC_NAMES)})")
    chosen = [m for m in METRICS if not metrics or m.name in metrics]
    if not factor > 1.0:
        raise ValueError(f"factor must be greater than 1 (got {factor:g})")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1 (got {alpha:g})")
    bg, ng = group_rows(base.rows), group_rows(new.rows)
    changes: list[MetricChange] = []
    unnormalised: set[str] = set()
    few_trials: set[tuple[int, int]] = set()
    for key in (k for k in bg if k in ng):
        is_ref = key.impl == reference
        ref_key = replace(key, impl=reference)
        for metric in chosen:
            b_raw = present(metric.value(r) for r in bg[key])
            n_raw = present(metric.value(r) for r in ng[key])
            if not b_raw or not n_raw:
                continue
            b_med, n_med = median(b_raw), median(n_raw)
            assert b_med is not None and n_med is not None
            raw_ratio = _ratio(n_med, b_med)
            if is_ref:
                changes.append(
                    MetricChange(
                        key,
                        metric.name,
                        metric.unit,
                        b_med,
                        n_med,
                        raw_ratio,
                        raw_ratio,
                        False,
                        None,
                        len(b_raw),
                        len(n_raw),
                        REFERENCE,
                    )
                )
                continue
            b_norm, b_ok = _normalised(bg[key], metric, bg.get(ref_key))
            n_norm, n_ok = _normalised(ng[key], metric, ng.get(ref_key))
            normalised = b_ok and n_ok
            if not normalised:
                b_norm, n_norm = b_raw, n_raw
                unnormalised.add(key.label())
            b_nm, n_nm = median(b_norm), median(n_norm)
            assert b_nm is not None and n_nm is not None
            ratio = _ratio(n_nm, b_nm)
            verdict, p = _verdict(metric, ratio, b_norm, n_norm, factor, alpha)
            if verdict == TOO_FEW_TRIALS:
                few_trials.add((len(b_norm), len(n_norm)))
            changes.append(
                MetricChange(
                    key,
                    metric.name,
                    metric.unit,
                    b_med,
                    n_med,
                    raw_ratio,
                    ratio,
                    normalised,
                    p,
                    len(b_norm),
                    len(n_norm),
                    verdict,
                )
            )
    notes = _env_notes(base, new)
    for n1, n2 in sorted(few_trials):
        notes.append(
            f"{n1} vs {n2} trials cannot reach significance: the smallest two-sided "
            f"Mann-Whitney p is {min_two_sided_p(n1, n2):.4f} >= alpha {alpha:g}; "
            "changes beyond the factor are listed as 'too few trials', not counted"
        )
    only_base = tuple(k for k in bg if k not in ng)
    only_new = tuple(k for k in ng if k not in bg)
    if only_base or only_new:
        notes.append(
            f"not compared: {len(only_base)} configurations only in {base.run_id}, "
            f"{len(only_new)} only in {new.run_id}"
        )
    if unnormalised:
        notes.append(
            f"{len(unnormalised)} configurations have no usable {reference} rows in both runs: "
            "compared on raw values"
        )
    return Comparison(
        base=base.run_id,
        new=new.run_id,
        factor=factor,
        alpha=alpha,
        reference=reference,
        changes=tuple(changes),
        only_in_base=only_base,
        only_in_new=only_new,
        notes=tuple(notes),
    )


def compare_runs(
    base: Path,
    new: Path,
    *,
    factor: float = DEFAULT_FACTOR,
    alpha: float = DEFAULT_ALPHA,
    reference: str = DEFAULT_REFERENCE,
    metrics: Sequence[str] = (),
) -> Comparison:
    """Compare two runs given as run folders or results.json files (ResultsError on bad input)."""
    return compare_loaded(
        load_results(base),
        load_results(new),
        factor=factor,
        alpha=alpha,
        reference=reference,
        metrics=metrics,
    )


def _fmt(value: float, unit: str) -> str:
    if unit == "ns":
        return f"{value / 1000:.2f} µs"
    if unit == "req/s":
        return f"{value:,.0f}/s"
    return f"{value:.3g}"


_STYLE = {REGRESSION: "bold red", IMPROVEMENT: "bold green", REFERENCE: "dim"}


def render_table(comparison: Comparison, *, all_rows: bool = False) -> Table:
    """The changes beyond the factor (or every compared metric) as a rich Table."""
    table = Table(
        title=f"{comparison.base} -> {comparison.new}",
        box=box.SIMPLE,
    )
    for col in (
        "env",
        "impl",
        "mode",
        "size",
        "load",
        "metric",
        "base",
        "new",
        "ratio",
        "p",
        "verdict",
    ):
        table.add_column(
            col, justify="right" if col in {"size", "base", "new", "ratio", "p"} else "left"
        )
    for c in comparison.changes:
        beyond = c.ratio > comparison.factor or c.ratio < 1.0 / comparison.factor
        if not all_rows and not beyond:
            continue
        load = "" if c.key.load_fraction is None else f"{c.key.load_fraction:g}"
        ratio = f"{c.ratio:.2f}x" + ("" if c.normalised or c.is_reference else " raw")
        table.add_row(
            c.key.env,
            c.key.impl,
            c.key.mode,
            str(c.key.size),
            load,
            c.metric,
            _fmt(c.base_median, c.unit),
            _fmt(c.new_median, c.unit),
            ratio,
            "" if c.p_value is None else f"{c.p_value:.4f}",
            c.verdict,
            style=_STYLE.get(c.verdict),
        )
    return table


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench compare",
        description="Compare two runs; exit 1 when a regression counts.",
    )
    p.add_argument("base", type=Path, help="BASE run folder or results.json")
    p.add_argument("new", type=Path, help="NEW run folder or results.json")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.add_argument(
        "--factor",
        type=float,
        default=DEFAULT_FACTOR,
        help=f"smallest ratio that counts (default {DEFAULT_FACTOR})",
    )
    p.add_argument(
        "--alpha",
        type=float,
        default=DEFAULT_ALPHA,
        help=f"significance level of the Mann-Whitney U test (default {DEFAULT_ALPHA})",
    )
    p.add_argument(
        "--reference",
        default=DEFAULT_REFERENCE,
        help=f"impl every metric is normalised to (default {DEFAULT_REFERENCE})",
    )
    p.add_argument("--all", action="store_true", help="list every compared metric")
    p.add_argument(
        "--metric",
        action="append",
        default=[],
        help=f"compare only this metric; repeatable (default all: {', '.join(METRIC_NAMES)})",
    )
    return p


def main_compare(argv: Sequence[str] | None = None) -> int:
    """CLI edge: 0 no regression, 1 a regression counts, 2 bad input (one-line message)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed its usage line
        return 0 if exc.code == 0 else 2
    try:
        comparison = compare_runs(
            args.base,
            args.new,
            factor=args.factor,
            alpha=args.alpha,
            reference=args.reference,
            metrics=args.metric,
        )
    except (ResultsError, ValueError) as exc:
        print(f"compare: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(comparison.to_json(), indent=1))
    else:
        console = Console()
        table = render_table(comparison, all_rows=args.all)
        if not console.is_terminal:
            console = Console(width=200, no_color=True)
            table.box = box.ASCII
        if table.row_count:
            console.print(table)
        else:
            console.print(f"No metric moved beyond the factor {comparison.factor:g}.")
        for note in comparison.notes:
            console.print(f"note: {note}", soft_wrap=True)
        for c in comparison.regressions:
            console.print(
                f"REGRESSION {c.key.label()} {c.metric}: {c.ratio:.2f}x (p={c.p_value:.4f})",
                soft_wrap=True,
            )
        console.print(comparison.summary(), soft_wrap=True)
    return 1 if comparison.regressions else 0


if __name__ == "__main__":
    raise SystemExit(main_compare())
