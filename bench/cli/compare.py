"""``bench compare BASE NEW``: which changes count (beyond a factor and significant);
exit 1 when a regression does.  ``--against-history N NEW``: the base is the last N runs
of NEW's machine and kernel in the history store.  ``--calibrate-rule RUN...``: replay
recorded runs to measure the rule's false-positive rate and power."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from bench.analysis.compare import (
    COMPARED,
    DEFAULT_ALPHA,
    DEFAULT_COUNT_TOLERANCE,
    DEFAULT_FACTOR,
    DEFAULT_OTHER_MACHINE_FACTOR,
    DEFAULT_RAW_CHECK,
    DEFAULT_REFERENCE_FACTOR,
    DISAGREE,
    GUARD_METRICS,
    GUARD_REFERENCE_ROLE,
    IMPROVEMENT,
    RAW_CHECKS,
    REGRESSION,
    UNCHANGED,
    Comparison,
    Rule,
    compare_sides,
    default_reference,
)
from bench.cli.options import positive_float, positive_int
from bench.errors import EXIT_FAILED, EXIT_OK, UsageError
from bench.results.metrics import METRIC_NAMES, format_value
from bench.results.run import Run

_STYLE = {REGRESSION: "bold red", IMPROVEMENT: "bold green", DISAGREE: "yellow"}
HISTORY_RUNS = 5


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "runs",
        type=Path,
        nargs="+",
        metavar="RUN",
        help="BASE NEW (run folders, results.json files or folders of runs); NEW alone "
        "with --against-history; the recorded runs with --calibrate-rule",
    )
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.add_argument(
        "--factor",
        type=positive_float,
        default=DEFAULT_FACTOR,
        help=f"smallest ratio of a time or rate that counts (default {DEFAULT_FACTOR})",
    )
    p.add_argument(
        "--other-machine-factor",
        type=positive_float,
        default=DEFAULT_OTHER_MACHINE_FACTOR,
        help="smallest normalised ratio that counts between two machines, where the raw "
        f"values cannot be checked (default {DEFAULT_OTHER_MACHINE_FACTOR})",
    )
    p.add_argument(
        "--reference-factor",
        type=positive_float,
        default=DEFAULT_REFERENCE_FACTOR,
        help="smallest raw ratio of the reference impl's own times that counts "
        f"(default {DEFAULT_REFERENCE_FACTOR})",
    )
    p.add_argument(
        "--count-tolerance",
        type=positive_float,
        default=DEFAULT_COUNT_TOLERANCE,
        help="smallest relative change of a count (syscalls, switches per request) that "
        f"counts (default {DEFAULT_COUNT_TOLERANCE})",
    )
    p.add_argument(
        "--raw-check",
        choices=RAW_CHECKS,
        default=DEFAULT_RAW_CHECK,
        help="how the raw ratio must back a normalised change: strict (beyond the factor and "
        f"significant itself) or direction (same side of 1); default {DEFAULT_RAW_CHECK}",
    )
    p.add_argument(
        "--alpha",
        type=positive_float,
        default=DEFAULT_ALPHA,
        help=f"significance level of the Mann-Whitney U test (default {DEFAULT_ALPHA})",
    )
    p.add_argument(
        "--reference",
        default=None,
        help="impl every metric is normalised to (default: the compare-reference impl)",
    )
    p.add_argument(
        "--guard",
        action="store_true",
        help="judge as the CI guard does: its reference impl (role guard-reference) and its "
        f"metrics ({', '.join(GUARD_METRICS)}) unless --reference or --metric say otherwise",
    )
    p.add_argument("--all", action="store_true", help="list every compared metric")
    p.add_argument(
        "--html",
        type=Path,
        default=None,
        metavar="DIR",
        help="also write the comparison as a self-contained page, DIR/index.html: the "
        "verdict, then both runs' rounds and distributions per changed metric",
    )
    p.add_argument(
        "--metric",
        action="append",
        default=[],
        choices=METRIC_NAMES,
        metavar="METRIC",
        help=f"compare only this metric; repeatable (default: {', '.join(COMPARED)})",
    )
    p.add_argument(
        "--against-history",
        type=positive_int,
        nargs="?",
        const=HISTORY_RUNS,
        default=None,
        metavar="N",
        help="compare NEW with the last N runs (default "
        f"{HISTORY_RUNS}) of its machine and kernel in the history store",
    )
    p.add_argument(
        "--db",
        default=None,
        metavar="URL",
        help="history database (default: the SQLite file in the results folder)",
    )
    p.add_argument(
        "--calibrate-rule",
        action="store_true",
        help="replay the given recorded runs: the rule's A/A false-positive rate and its "
        "power against injected slowdowns, for a range of factors",
    )


def _p(p: float | None) -> str:
    return "" if p is None else f"{p:.4f}"


def render_table(comparison: Comparison, *, all_rows: bool = False) -> Table:
    """The metrics that moved beyond their threshold (or every compared metric) as a
    rich Table: the raw ratio and the ratio judged (normalised to the reference in each
    round, or raw for the reference and for counts), the p of each, and the smallest p the
    test can give with these rounds."""
    table = Table(title=f"{comparison.base} -> {comparison.new}", box=box.SIMPLE)
    right = {"size", "base", "new", "raw", "judged", "p", "raw p", "min p", "n"}
    for col in ("env", "impl", "mode", "size", "load", "metric", "base", "new", "raw",
                "judged", "p", "raw p", "min p", "n", "verdict"):  # fmt: skip
        table.add_column(col, justify="right" if col in right else "left")
    for c in comparison.changes:
        if not all_rows and c.verdict == UNCHANGED:
            continue
        load = "" if c.key.load_fraction is None else f"{c.key.load_fraction:g}"
        judged = f"{c.ratio:.2f}x" + ("" if c.normalised else f" {c.judged}")
        table.add_row(
            c.key.env, c.key.impl, c.key.mode, str(c.key.size), load, c.metric,
            format_value(c.base_median, c.unit), format_value(c.new_median, c.unit),
            f"{c.raw_ratio:.2f}x",
            judged, _p(c.p_value), _p(c.raw_p_value), f"{c.min_p:.2g}",
            f"{c.n_base}/{c.n_new}", c.verdict, style=_STYLE.get(c.verdict),
        )  # fmt: skip
    return table


def print_comparison(comparison: Comparison, console: Console, *, all_rows: bool = False) -> None:
    table = render_table(comparison, all_rows=all_rows)
    if not console.is_terminal:
        console = Console(width=220, no_color=True)
        table.box = box.ASCII
    console.print(f"base: {comparison.base}; new: {comparison.new}", soft_wrap=True)
    if table.row_count:
        console.print(table)
    else:
        console.print(f"No metric moved beyond its threshold ({comparison.rule.describe()}).")
    for note in comparison.notes:
        console.print(f"note: {note}", soft_wrap=True)
    for c in comparison.regressions:
        console.print(
            f"REGRESSION {c.key.label()} {c.metric}: {c.ratio:.2f}x {c.judged} "
            f"(raw {c.raw_ratio:.2f}x, p={_p(c.p_value)}, min p {c.min_p:.2g})",
            soft_wrap=True,
        )
    console.print(comparison.summary(), soft_wrap=True)


def _rule(args: argparse.Namespace) -> Rule:
    rule = Rule(
        factor=args.factor,
        alpha=args.alpha,
        reference_factor=args.reference_factor,
        other_machine_factor=args.other_machine_factor,
        count_tolerance=args.count_tolerance,
        raw_check=args.raw_check,
    )
    try:
        return rule.check()
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _history_base(args: argparse.Namespace, new: Run) -> list[Run]:
    from bench.cli.history import RESULTS_ROOT
    from bench.history.store import HistoryStore, machine_key

    store = HistoryStore.open(args.db, RESULTS_ROOT)
    key = machine_key(new)
    runs = store.last_runs(key, args.against_history, exclude_run_id=new.run_id)
    if not runs:
        raise UsageError(
            f"the history holds no run of {key.describe()} to compare {new.run_id} with: "
            "add runs with `bench history add RUN`"
        )
    return runs


def _sides(args: argparse.Namespace, console: Console) -> tuple[list[Run], Run, str | None]:
    if args.against_history is not None:
        if len(args.runs) != 1:
            raise UsageError("--against-history takes one run, NEW")
        new = Run.load(args.runs[0])
        base = _history_base(args, new)
        label = f"last {len(base)} runs in the history"
        return base, new, label
    if len(args.runs) != 2:
        raise UsageError(f"compare takes two runs, BASE and NEW (got {len(args.runs)})")
    base_run, new = Run.load(args.runs[0]), Run.load(args.runs[1])
    if not args.json:
        for loaded in (base_run, new):
            if loaded.located:
                console.print(loaded.located)
    return [base_run], new, None


def _calibrate(args: argparse.Namespace, rule: Rule, console: Console) -> int:
    from bench.analysis.rule_calibration import calibrate_rule
    from bench.cli.rule_table import print_calibration

    runs = [Run.load(path) for path in args.runs]
    try:
        calibration = calibrate_rule(runs, rule=rule, reference=args.reference,
                                     metrics=args.metric)  # fmt: skip
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps(calibration.to_json(), indent=1))
    else:
        print_calibration(calibration, console)
    return EXIT_OK


def run(args: argparse.Namespace, console: Console) -> int:
    rule = _rule(args)
    if args.calibrate_rule:
        return _calibrate(args, rule, console)
    base, new, label = _sides(args, console)
    reference, metrics = args.reference, args.metric
    try:
        if args.guard:
            reference = reference or default_reference(*base, new, role=GUARD_REFERENCE_ROLE)
            metrics = metrics or list(GUARD_METRICS)
        comparison = compare_sides(
            base, new, rule=rule, reference=reference, metrics=metrics, base_label=label
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps(comparison.to_json(), indent=1))
    else:
        print_comparison(comparison, console, all_rows=args.all)
    if args.html is not None:
        from bench.report.comparison import render_comparison  # matplotlib: when asked for

        page = render_comparison(comparison, base, new, args.html)
        if not args.json:
            console.print(f"page: {page}")
    return EXIT_FAILED if comparison.regressions else EXIT_OK
