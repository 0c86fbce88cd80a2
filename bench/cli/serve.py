"""``bench serve IMPL``: one server in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import ipaddress
import time

from rich.console import Console

from bench.cli.host import holding_host
from bench.cli.options import cpu, port
from bench.errors import EXIT_FAILED, EXIT_OK, UsageError
from bench.impl.api import ImplError, ServerConfig
from bench.impl.registry import Entry, discover
from bench.protocol import DEFAULT_ADDR, DEFAULT_PORT
from bench.runner.lifecycle import prepare, select


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("impl")
    p.add_argument("--port", type=port, default=DEFAULT_PORT)
    p.add_argument("--addr", default=DEFAULT_ADDR)
    p.add_argument("--cpu", type=cpu, default=None)
    p.add_argument("--interface", default="lo", help="where eBPF impls attach")
    p.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="permit an --addr outside 127.0.0.0/8 and ::1",
    )


def _is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        raise UsageError(f"--addr {addr!r} is not an IP address") from None


def run(args: argparse.Namespace, console: Console) -> int:
    if not _is_loopback(args.addr) and not args.allow_non_loopback:
        raise UsageError(
            f"--addr {args.addr} is not loopback; add --allow-non-loopback to expose the server"
        )
    (entry,) = select([args.impl], discover())
    with holding_host(args):
        return _serve(args, entry, console)


def _serve(args: argparse.Namespace, entry: Entry, console: Console) -> int:
    ready = prepare(entry)
    if ready.impl is None:
        console.print(f"{args.impl} cannot run here: {ready.reason}")
        return EXIT_FAILED
    config = ServerConfig(addr=args.addr, port=args.port, cpu=args.cpu, interface=args.interface)
    try:
        server = ready.impl.start(config)
    except ImplError as exc:
        console.print(f"{args.impl} failed to start: {exc}")
        return EXIT_FAILED
    try:
        console.print(f"{args.impl} serving HELLO on {args.addr}:{args.port} — Ctrl-C to stop")
        while server.health() is None:
            time.sleep(0.5)
        console.print(f"{args.impl} stopped: {server.health()}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        server.stop()
        for name, value in server.counters().items():
            console.print(f"  {name}: {value}")
