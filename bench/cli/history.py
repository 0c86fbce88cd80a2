"""``bench history``: the history store from the command line.  ``add RUN...`` stores runs,
``show`` prints the per-run medians of each configuration and metric, ``report --out DIR``
writes the trend page.  ``--db URL`` names the database (default: the SQLite file
results/history.sqlite; ``postgresql://...`` for a shared one)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.table import Table

from bench import work_root
from bench.analysis.compare import COMPARED
from bench.cli.options import Parser
from bench.errors import EXIT_OK
from bench.results.metrics import METRIC_NAMES
from bench.results.run import Run

if TYPE_CHECKING:
    import pandas as pd

    from bench.history.store import HistoryStore

RESULTS_ROOT = work_root() / "results"  # where the default SQLite file lives
SHOWN_RUNS = 8  # the newest runs that ``show`` gives a column each


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        default=None,
        metavar="URL",
        help="history database URL (default: sqlite:///results/history.sqlite; "
        "postgresql://USER@HOST/DB for a shared one)",
    )


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--impl", default=None, help="only this impl's series")
    p.add_argument(
        "--metric",
        default=None,
        choices=METRIC_NAMES,
        metavar="METRIC",
        help=f"only this metric (default: {', '.join(COMPARED)})",
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, parser_class=Parser)
    add = sub.add_parser("add", help="store runs (each once) in the history")
    add.add_argument(
        "runs", type=Path, nargs="+", metavar="RUN", help="run folders or results.json files"
    )
    _common(add)
    show = sub.add_parser("show", help="per-run medians of each configuration and metric")
    _filters(show)
    _common(show)
    report = sub.add_parser("report", help="write the trend page (index.html) to --out")
    report.add_argument("--out", type=Path, required=True, help="output folder")
    _filters(report)
    _common(report)


def _open(args: argparse.Namespace) -> HistoryStore:
    from bench.history.store import HistoryStore

    return HistoryStore.open(args.db, RESULTS_ROOT)


def _series(store: HistoryStore, args: argparse.Namespace) -> pd.DataFrame:
    """The values asked for: one metric, or the compared ones by default."""
    frame = store.series(impl=args.impl, metric=args.metric)
    if args.metric is None:
        frame = frame[frame["metric"].isin(COMPARED)]
    return frame


def _add(args: argparse.Namespace, console: Console) -> int:
    from bench.history.store import machine_key

    runs = [Run.load(path) for path in args.runs]  # every input checked before any write
    with _open(args) as store:
        for path, loaded in zip(args.runs, runs, strict=True):
            count = store.add(loaded)
            machine = machine_key(loaded).describe()
            console.print(f"added {path}: {count} values ({machine})", soft_wrap=True)
    return EXIT_OK


def _plain(console: Console, table: Table) -> Console:
    if console.is_terminal:
        return console
    table.box = box.ASCII
    return Console(width=220, no_color=True)


def _fmt(value: float, scale: float) -> str:
    return "" if value != value else f"{value / scale:.4g}"


def show_tables(frame: pd.DataFrame) -> tuple[Table, Table]:
    """The newest runs (numbered) and, per machine, configuration and metric, each run's
    median over its rounds."""
    from bench.history.page import display_unit, run_ticks
    from bench.history.trends import series_of

    ticks = run_ticks(frame)[-SHOWN_RUNS:]
    runs = Table(title="runs", box=box.SIMPLE)
    for col in ("#", "run", "created", "commit"):
        runs.add_column(col)
    for t in ticks:
        runs.add_row(str(t.position), t.run_id, t.created, t.commit)
    values = Table(title="per-run medians", box=box.SIMPLE)
    for col in ("machine", "configuration", "metric"):
        values.add_column(col)
    for t in ticks:
        values.add_column(f"#{t.position}", justify="right")
    for series in series_of(frame):
        unit, scale, _label = display_unit(series.metric)
        by_run = {p.run_id: p.value for p in series.points}
        cells = [_fmt(by_run.get(t.run_id, float("nan")), scale) for t in ticks]
        if not any(cells):
            continue
        metric = f"{series.metric} ({unit})" if unit else series.metric
        values.add_row(series.machine.label(), series.configuration, metric, *cells)
    return runs, values


def _show(args: argparse.Namespace, console: Console) -> int:
    with _open(args) as store:
        frame = _series(store, args)
        url = store.url
    if frame.empty:
        console.print(f"the history {url} holds no value of these series", soft_wrap=True)
        return EXIT_OK
    runs, values = show_tables(frame)
    out = _plain(console, runs)
    _plain(console, values)
    out.print(runs)
    out.print(values)
    return EXIT_OK


def _report(args: argparse.Namespace, console: Console) -> int:
    from bench.history.page import render_trends

    with _open(args) as store:
        frame = _series(store, args)
    console.print(f"trends: {render_trends(frame, args.out)}", soft_wrap=True)
    return EXIT_OK


def run(args: argparse.Namespace, console: Console) -> int:
    action = {"add": _add, "show": _show, "report": _report}[args.action]
    return action(args, console)
