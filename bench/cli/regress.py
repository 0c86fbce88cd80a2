"""``bench regress``: the CI guard — a short benchmark compared with the committed baseline."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from bench import PROJECT_ROOT
from bench.cli.compare import print_comparison
from bench.cli.options import key_values
from bench.regress import BASELINE, guard

NAME = "regress"
HELP = "the CI guard: short benchmark vs the committed baseline"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--baseline", type=Path, default=BASELINE)
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "results" / "regress")
    p.add_argument("--record", action="store_true", help="make this run the new baseline")
    p.add_argument("--server-option", action="append", default=[], help=argparse.SUPPRESS)


def run(args: argparse.Namespace, console: Console) -> int:
    outcome = guard(
        args.out,
        lambda line: console.log(line),
        baseline=args.baseline,
        record=args.record,
        server_options=key_values(args.server_option, "--server-option"),
    )
    console.print(f"results: {outcome.run.path}")
    if outcome.recorded is not None:
        console.print(f"baseline recorded: {outcome.recorded}")
    elif outcome.comparison is None:
        console.print("[red]the benchmark had failed phases: no comparison[/red]")
    else:
        print_comparison(outcome.comparison, console)
    return outcome.status
