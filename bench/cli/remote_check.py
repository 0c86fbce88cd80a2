"""``bench remote-check [USER@]HOST``: one line per thing HOST lacks for two-host runs;
exit 0 when nothing is missing, 1 otherwise, 2 on bad input."""

from __future__ import annotations

import argparse

from rich.console import Console

from bench.cli.remote_options import add_ssh_arguments, server_host
from bench.errors import EXIT_FAILED, EXIT_OK
from bench.remote.check import check_remote


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("host", metavar="[USER@]HOST")
    add_ssh_arguments(p)


def run(args: argparse.Namespace, console: Console) -> int:
    host = server_host(args, args.host)
    assert host is not None
    missing, notes = check_remote(host)
    for line in missing:
        console.print(f"missing: {line}", highlight=False, markup=False)
    for line in notes:
        console.print(f"note: {line}", highlight=False, markup=False)
    if not missing:
        console.print(f"{host.target}: nothing missing", highlight=False, markup=False)
    return EXIT_FAILED if missing else EXIT_OK
