"""The commands that change this host (run, serve, calibrate, regress, fuzz) hold the host
lock once their arguments are checked: a second one waits, saying for whom on stderr."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from bench.system import host_lock


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextmanager
def holding_host(args: argparse.Namespace) -> Iterator[None]:
    command = shlex.join(["python", "-m", "bench", *getattr(args, "raw_argv", [args.command])])
    with host_lock.held(command, _say):
        yield
