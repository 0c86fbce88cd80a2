"""``bench cleanup``: remove what interrupted runs left behind (servers, netns, XDP and tc
programs, modules, guests), as the ledger records them."""

from __future__ import annotations

import argparse

from rich.console import Console

from bench.errors import EXIT_FAILED, EXIT_OK
from bench.system import ledger

NAME = "cleanup"
HELP = "remove what interrupted runs left behind"


def add_arguments(p: argparse.ArgumentParser) -> None:
    del p  # no options


def run(args: argparse.Namespace, console: Console) -> int:
    lines = ledger.sweep(include_live=False)
    for line in lines:
        console.print(line)
    console.print(
        f"cleanup: {len(lines)} object(s) handled" if lines else "cleanup: nothing left behind"
    )
    return EXIT_FAILED if any(line.startswith("could not") for line in lines) else EXIT_OK
