"""``bench export RUN``: the run's tidy table — one row per phase, one column per field and
per metric — as CSV, Parquet or JSON, for analysis in a notebook; ``--table anatomy``: one
row per anatomy pass and stage instead."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from bench.errors import EXIT_OK, UsageError
from bench.results.run import Run

FORMATS = ("csv", "parquet", "json")
TABLES = ("phases", "anatomy")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="run folder, its results.json, or a folder of runs")
    p.add_argument("--format", choices=FORMATS, default="csv")
    p.add_argument(
        "--table",
        choices=TABLES,
        default="phases",
        help="phases: one row per phase (default); anatomy: one row per anatomy pass and stage",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="output file (default: stdout for csv and json)"
    )


def run(args: argparse.Namespace, console: Console) -> int:
    loaded = Run.load(args.run_dir)
    anatomy = args.table == "anatomy"
    from bench.results.frame import anatomy_frame, export_frame  # pandas, when used

    frame = anatomy_frame(loaded.anatomy) if anatomy else export_frame(loaded.rows)
    if args.format == "parquet":
        if args.out is None:
            raise UsageError("--format parquet writes a binary file: give --out FILE")
        try:
            frame.to_parquet(args.out, index=False)
        except ImportError as exc:
            raise UsageError(
                f"parquet needs pyarrow ({exc}): pip install 'hellobench[export]'"
            ) from None
    elif args.format == "json":
        text = frame.to_json(orient="records", indent=1)
        _write(text, args.out)
    else:
        _write(frame.to_csv(index=False), args.out)
    if args.out is not None:
        where = f"{loaded.located}; " if loaded.located else ""
        what = "anatomy row(s)" if anatomy else "phase(s)"
        print(f"{where}{len(frame)} {what} of run {loaded.run_id} → {args.out}", file=sys.stderr)
    return EXIT_OK


def _write(text: str | None, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text or "")
    else:
        out.write_text(text or "")
