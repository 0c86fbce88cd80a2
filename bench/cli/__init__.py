"""``python -m bench``: one parser, one module per command, errors and exit statuses in one place.

Each command module (named with its help in ``COMMANDS``) defines ``add_arguments(parser)``
and ``run(args, console) -> int``; it is a thin edge over library calls.  Exit status: 0
success, 1 a failed measurement or regression, 2 bad input (one line on stderr naming the
problem; nothing written), 130 interrupted (what the process created has been removed).
"""

from __future__ import annotations

import importlib
import signal
import sys
from collections.abc import Sequence

from rich.console import Console

from bench.cli.options import Parser
from bench.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, HellobenchError, UsageError
from bench.system import ledger

# Every command: the module that implements it and its one-line help.  A command's module
# (and what it imports: pandas, matplotlib, the runner) is loaded only when it is the
# command given, so that a command starts in a fraction of a second (a guest's `run` under
# emulation, `report`), yet `--help` lists them all.
COMMANDS: dict[str, tuple[str, str]] = {
    "list": ("bench.cli.listing", "every impl, and why it cannot run here if it cannot"),
    "serve": ("bench.cli.serve", "run one server in the foreground until Ctrl-C"),
    "run": ("bench.cli.run", "measure impls and write results/<run-id>/results.json"),
    "calibrate": ("bench.cli.calibrate", "null syscall, context switch, driver vs sockperf"),
    "report": ("bench.cli.report", "render reports/<run-id>/index.html from a run"),
    "compare": (
        "bench.cli.compare",
        "compare two runs (or a run with its history); exit 1 on a counted regression",
    ),
    "export": (
        "bench.cli.export",
        "write a run's tidy table (one row per phase) as csv, parquet or json",
    ),
    "regress": ("bench.cli.regress", "the CI guard: short benchmark vs the committed baseline"),
    "fuzz": ("bench.cli.fuzz", "hostile datagrams against impls; checks they survive"),
    "history": (
        "bench.cli.history",
        "store runs in the history database; show their series; render the trend page",
    ),
    "cleanup": ("bench.cli.cleanup", "remove what interrupted runs left behind"),
    "remote-check": (
        "bench.cli.remote_check",
        "say what a server host lacks for --server-host runs",
    ),
    "agent": ("bench.cli.agent", "the server host's side of a two-host run (started through ssh)"),
    "anatomy": (
        "bench.cli.anatomy",
        "per-request stages of pingpong round trips, traced with BPF (its own pass)",
    ),
}


def build_parser(only: str | None = None) -> Parser:
    """The parser of every command, or with ``only`` set the arguments of that command alone
    (the others are listed, not loaded)."""
    parser = Parser(prog="hellobench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name, (module, help_) in COMMANDS.items():
        command = sub.add_parser(name, help=help_)
        if only is None or only == name:
            importlib.import_module(module).add_arguments(command)
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
        raw = list(sys.argv[1:] if argv is None else argv)
        given = raw[0] if raw and raw[0] in COMMANDS else None
        args = build_parser(given).parse_args(raw)
        args.raw_argv = raw
        status: int = importlib.import_module(COMMANDS[args.command][0]).run(args, console)
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
