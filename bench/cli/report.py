"""``bench report RUN``: render reports/<run-id>/index.html from a run."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from bench.errors import EXIT_OK
from bench.results.run import Run

NAME = "report"
HELP = "render reports/<run-id>/index.html from a run"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="run folder, its results.json, or a folder of runs")
    p.add_argument("--out", type=Path, default=None, help="output folder")


def run(args: argparse.Namespace, console: Console) -> int:
    loaded = Run.load(args.run_dir)
    if loaded.located:
        console.print(loaded.located)
    from bench.report.render import render_report  # matplotlib: imported when used

    console.print(f"report: {render_report(loaded, args.out)}")
    return EXIT_OK
