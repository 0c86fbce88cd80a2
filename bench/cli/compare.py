"""``bench compare BASE NEW``: which changes count (beyond a factor and significant);
exit 1 when a regression does."""

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
    DEFAULT_FACTOR,
    IMPROVEMENT,
    REFERENCE,
    REGRESSION,
    Comparison,
    compare_loaded,
)
from bench.cli.options import positive_float
from bench.errors import EXIT_FAILED, EXIT_OK, UsageError
from bench.results.metrics import METRIC_NAMES
from bench.results.run import Run

NAME = "compare"
HELP = "compare two runs; exit 1 on a counted regression"
_STYLE = {REGRESSION: "bold red", IMPROVEMENT: "bold green", REFERENCE: "dim"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("base", type=Path, help="BASE run folder, results.json or folder of runs")
    p.add_argument("new", type=Path, help="NEW run folder, results.json or folder of runs")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.add_argument(
        "--factor",
        type=positive_float,
        default=DEFAULT_FACTOR,
        help=f"smallest ratio that counts (default {DEFAULT_FACTOR})",
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
    p.add_argument("--all", action="store_true", help="list every compared metric")
    p.add_argument(
        "--metric",
        action="append",
        default=[],
        choices=METRIC_NAMES,
        metavar="METRIC",
        help=f"compare only this metric; repeatable (default: {', '.join(COMPARED)})",
    )


def _fmt(value: float, unit: str) -> str:
    if unit == "ns":
        return f"{value / 1000:.2f} µs"
    if unit == "req/s":
        return f"{value:,.0f}/s"
    return f"{value:.3g}"


def render_table(comparison: Comparison, *, all_rows: bool = False) -> Table:
    """The changes beyond the factor (or every compared metric) as a rich Table."""
    table = Table(title=f"{comparison.base} -> {comparison.new}", box=box.SIMPLE)
    for col in ("env", "impl", "mode", "size", "load", "metric", "base", "new", "ratio", "p",
                "verdict"):  # fmt: skip
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
            c.key.env, c.key.impl, c.key.mode, str(c.key.size), load, c.metric,
            _fmt(c.base_median, c.unit), _fmt(c.new_median, c.unit), ratio,
            "" if c.p_value is None else f"{c.p_value:.4f}", c.verdict,
            style=_STYLE.get(c.verdict),
        )  # fmt: skip
    return table


def print_comparison(comparison: Comparison, console: Console, *, all_rows: bool = False) -> None:
    table = render_table(comparison, all_rows=all_rows)
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


def run(args: argparse.Namespace, console: Console) -> int:
    base, new = Run.load(args.base), Run.load(args.new)
    if not args.json:
        for loaded in (base, new):
            if loaded.located:
                console.print(loaded.located)
    try:
        comparison = compare_loaded(
            base,
            new,
            factor=args.factor,
            alpha=args.alpha,
            reference=args.reference,
            metrics=args.metric,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps(comparison.to_json(), indent=1))
    else:
        print_comparison(comparison, console, all_rows=args.all)
    return EXIT_FAILED if comparison.regressions else EXIT_OK
