"""The options that say how to reach a server host, shared by run, cleanup, remote-check."""

from __future__ import annotations

import argparse
import sys

from bench import PROJECT_ROOT
from bench.remote.ssh import ServerHost


def add_ssh_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ssh-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="passed to ssh as -o KEY=VALUE; repeatable",
    )
    p.add_argument(
        "--remote-python",
        default=sys.executable,
        help="the Python on the server host (default: this one's path)",
    )
    p.add_argument(
        "--remote-dir",
        default=str(PROJECT_ROOT),
        help="the project folder on the server host (default: this one's path)",
    )


def add_server_host_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--server-host",
        default=None,
        metavar="[USER@]HOST",
        help="run the server side on HOST through OpenSSH (topology two-hosts); the driver "
        "runs here",
    )
    add_ssh_arguments(p)


def server_host(args: argparse.Namespace, target: str | None) -> ServerHost | None:
    """The ServerHost the arguments name (None without a target); UsageError if malformed."""
    if target is None:
        return None
    return ServerHost(
        target=target,
        ssh_options=tuple(args.ssh_option),
        python=args.remote_python,
        directory=args.remote_dir,
    )
