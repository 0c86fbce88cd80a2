"""``python -m bench``: one parser, one module per command, errors and exit statuses in one place.

Each command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args, console) -> int``; it is a thin edge over library calls.  Exit status: 0
success, 1 a failed measurement or regression, 2 bad input (one line on stderr naming the
problem; nothing written), 130 interrupted (what the process created has been removed).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from types import ModuleType

from rich.console import Console

from bench.cli import (
    agent,
    anatomy,
    calibrate,
    cleanup,
    compare,
    export,
    fuzz,
    history,
    listing,
    regress,
    remote_check,
    report,
    run,
    serve,
)
from bench.cli.options import Parser
from bench.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, HellobenchError, UsageError
from bench.system import ledger

COMMANDS: tuple[ModuleType, ...] = (
    listing, serve, run, calibrate, report, compare, export, regress, fuzz, history, cleanup,
    remote_check, agent, anatomy,
)  # fmt: skip


def build_parser() -> Parser:
    parser = Parser(prog="hellobench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.add_arguments(sub.add_parser(command.NAME, help=command.HELP))
    return parser


def _terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    console = Console(width=None if sys.stdout.isatty() else 200)
    signal.signal(signal.SIGTERM, _terminate)
    # Ctrl-C interrupts even when the shell started us with SIGINT ignored (a background
    # job): the cleanup below must run on every interrupt.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        args = build_parser().parse_args(argv)
        args.raw_argv = list(sys.argv[1:] if argv is None else argv)
        handler = next(c for c in COMMANDS if args.command == c.NAME)
        status: int = handler.run(args, console)
        return status
    except UsageError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except HellobenchError as exc:
        print(f"failed: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # finish the cleanup undisturbed
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for line in ledger.sweep(own=True):
            print(f"cleanup: {line}", file=sys.stderr)
        print("interrupted: servers stopped, attachments removed", file=sys.stderr)
        return EXIT_INTERRUPTED
