"""``bench regress``: the CI guard — a short benchmark compared with the committed baseline;
writes a markdown summary (appended to $GITHUB_STEP_SUMMARY when that is set) and the
github-action-benchmark files into ``--ci-out``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.console import Console

from bench import work_root
from bench.cli.compare import print_comparison
from bench.cli.host import holding_host
from bench.cli.options import key_values
from bench.errors import EXIT_OK
from bench.regress import BASELINE, METRICS, guard
from bench.report.ci import SUMMARY_NAME, write_ci_outputs


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--baseline", type=Path, default=BASELINE)
    p.add_argument("--out", type=Path, default=work_root() / "results" / "regress")
    p.add_argument("--record", action="store_true", help="make this run the new baseline")
    p.add_argument(
        "--ci-out",
        type=Path,
        default=None,
        help="where to write summary.md and the github-action-benchmark JSON files "
        "(default: --out)",
    )
    p.add_argument("--server-option", action="append", default=[], help=argparse.SUPPRESS)


def run(args: argparse.Namespace, console: Console) -> int:
    server_options = key_values(args.server_option, "--server-option")
    with holding_host(args):
        outcome = guard(
            args.out,
            lambda line: console.log(line),
            baseline=args.baseline,
            record=args.record,
            server_options=server_options,
        )
    console.print(f"results: {outcome.run.path}")
    if outcome.recorded is not None:
        console.print(f"baseline recorded: {outcome.recorded}")
    elif outcome.comparison is None:
        console.print("[red]the benchmark had failed phases: no comparison[/red]")
    else:
        print_comparison(outcome.comparison, console)
    if outcome.recorded is None:
        status = "passed" if outcome.status == EXIT_OK else "FAILED"
        written = write_ci_outputs(args.ci_out or args.out, outcome.comparison, outcome.run,
                                   METRICS, status=status)  # fmt: skip
        console.print(f"CI outputs: {', '.join(str(p) for p in written)}", soft_wrap=True)
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if step_summary:
            summary = next(p for p in written if p.name == SUMMARY_NAME)
            with open(step_summary, "a", encoding="utf-8") as out:
                out.write(summary.read_text(encoding="utf-8"))
    return outcome.status
