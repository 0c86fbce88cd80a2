"""``bench agent``: the server host's side of a two-host run, speaking JSON lines on
stdin/stdout (bench/remote/protocol.py); started by the driver through ssh, not by hand.

``--check`` prints what this host lacks (one JSON line); ``--cleanup`` removes what dead
agents left and spares a live one (another driver's run) with what it owns.  The agent
keeps its own ledger, and stops its server when its stdin closes and on SIGTERM or
SIGHUP."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys

from rich.console import Console

from bench.errors import EXIT_FAILED, EXIT_OK


def add_arguments(p: argparse.ArgumentParser) -> None:
    action = p.add_mutually_exclusive_group()
    action.add_argument("--check", action="store_true", help="report what this host lacks")
    action.add_argument("--cleanup", action="store_true", help="remove what dead agents left")
    p.add_argument(
        "--address",
        default=None,
        help="the address the driver reaches this host at (default: from SSH_CONNECTION)",
    )


def _hangup(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(args: argparse.Namespace, console: Console) -> int:
    from bench.remote import agent, check  # the agent's ledger is chosen before any use

    del console  # stdout carries the protocol only
    agent.use_agent_ledger()
    if args.check:
        print(json.dumps(check.report_here()), flush=True)
        return EXIT_OK
    if args.cleanup:
        lines = agent.cleanup()
        for line in lines:
            print(line, flush=True)
        return EXIT_FAILED if any(line.startswith("could not") for line in lines) else EXIT_OK
    signal.signal(signal.SIGHUP, _hangup)
    # The protocol gets its own descriptor; anything else printed goes to stderr.
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        agent.serve(sys.stdin.buffer, protocol_out, args.address or agent.reached_address())
    except BrokenPipeError:
        pass  # the driver went away: serve has stopped the server already
    finally:
        with contextlib.suppress(OSError):
            protocol_out.close()
    return EXIT_OK
