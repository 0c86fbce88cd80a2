"""``bench report RUN``: render reports/<run-id>/index.html from a run."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console

from bench.errors import EXIT_OK
from bench.results.run import Run


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="run folder, its results.json, or a folder of runs")
    p.add_argument("--out", type=Path, default=None, help="output folder")


def run(args: argparse.Namespace, console: Console) -> int:
    started = time.monotonic()
    loaded = Run.load(args.run_dir)
    if loaded.located:
        console.print(loaded.located)
    from bench.report.render import render_report  # matplotlib: imported when used

    index = render_report(loaded, args.out)
    console.print(f"report: {index}")
    console.print(f"rendered in {time.monotonic() - started:.1f} s (loading the run included)")
    return EXIT_OK
