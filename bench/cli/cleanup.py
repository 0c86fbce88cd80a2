"""``bench cleanup``: remove what interrupted runs left behind (servers, netns, XDP and tc
programs, modules, guests), as the ledger records them; with ``--server-host``, what dead
agents left on that host too (through ssh), sparing a live agent and what it owns, as the
local sweep spares what a live run owns."""

from __future__ import annotations

import argparse

from rich.console import Console

from bench.cli.remote_options import add_server_host_arguments, server_host
from bench.errors import EXIT_FAILED, EXIT_OK
from bench.remote.ssh import run_agent_once
from bench.system import ledger


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_server_host_arguments(p)


def run(args: argparse.Namespace, console: Console) -> int:
    host = server_host(args, args.server_host)
    lines = ledger.sweep(include_live=False)
    failed = False
    if host is not None:
        code, out, err = run_agent_once(host, "--cleanup")
        lines += [f"{host.host}: {line}" for line in out.splitlines() if line.strip()]
        if code != 0:
            failed = True
            last = (err.strip().splitlines() or [f"status {code}"])[-1]
            lines.append(f"could not clean up on {host.host}: {last}")
    for line in lines:
        console.print(line, highlight=False, markup=False)
    console.print(
        f"cleanup: {len(lines)} object(s) handled" if lines else "cleanup: nothing left behind"
    )
    return EXIT_FAILED if failed or any("could not" in line for line in lines) else EXIT_OK
