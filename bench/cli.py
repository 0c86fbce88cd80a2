"""``python -m bench``: list, serve, run, calibrate, report, compare, fuzz, cleanup.

Exit status: 0 success, 1 a measured failure or regression, 2 bad input (one line on stderr
naming the problem; nothing partial written).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console

from bench import PROJECT_ROOT
from bench.config import MODES, ConfigError, RunConfig
from bench.protocol import DEFAULT_ADDR, DEFAULT_PORT
from bench.topology import TOPOLOGIES

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input to the suite: reported as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be a positive number")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1..65535)")
    return int(text)


def _cpu(text: str) -> int | None:
    if text in ("none", "any"):
        return None
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a CPU number (or 'none')")
    return int(text)


def build_parser() -> Parser:
    parser = Parser(prog="hellobench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("list", help="every impl, and why it cannot run here if it cannot")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("serve", help="run one server in the foreground until Ctrl-C")
    p.add_argument("impl")
    p.add_argument("--port", type=_port, default=DEFAULT_PORT)
    p.add_argument("--addr", default=DEFAULT_ADDR)
    p.add_argument("--cpu", type=_cpu, default=None)
    p.add_argument("--interface", default="lo", help="where eBPF impls attach")
    p.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="permit an --addr outside 127.0.0.0/8 and ::1",
    )

    p = sub.add_parser("run", help="measure impls and write results/<run-id>/results.json")
    p.add_argument("--impl", action="append", default=[], help="repeatable; default: all")
    p.add_argument("--mode", action="append", choices=MODES, default=[])
    p.add_argument("--size", action="append", type=int, default=[], help="bytes; repeatable")
    p.add_argument("--topology", action="append", choices=TOPOLOGIES, default=[])
    p.add_argument("--duration", type=float, default=None, help="seconds per measured phase")
    p.add_argument("--warmup", type=float, default=None, help="seconds before each phase")
    p.add_argument("--trials", type=int, default=None)
    p.add_argument(
        "--rate",
        action="append",
        type=_positive_float,
        default=[],
        help="absolute offered rate (req/s) for --mode rate; repeatable",
    )
    p.add_argument(
        "--rate-fraction",
        action="append",
        type=float,
        default=[],
        help="offered rate as a fraction of the impl's measured maximum",
    )
    p.add_argument("--outstanding", type=int, default=1, help="pingpong requests in flight")
    p.add_argument("--server-cpu", type=_cpu, default=1)
    p.add_argument("--client-cpu", type=_cpu, default=0)
    p.add_argument("--port", type=_port, default=DEFAULT_PORT)
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "results")
    p.add_argument(
        "--env",
        choices=("auto", "host", "vm"),
        default=None,
        help="auto (default): the host, plus a VM guest when an impl needs what the host "
        "lacks; --quick alone measures the host only",
    )
    p.add_argument("--quick", action="store_true", help="short phases and fewer trials")
    p.add_argument("--no-calibrate", action="store_true")
    p.add_argument("--sample-cap", type=int, default=None)
    p.add_argument("--vm-timeout", type=float, default=None, help="guest watchdog, seconds")
    p.add_argument("--report", action="store_true", help="render the HTML report at the end")
    p.add_argument("--env-name", default="host", help=argparse.SUPPRESS)
    p.add_argument("--accel", default="native", help=argparse.SUPPRESS)
    p.add_argument("--server-option", action="append", default=[], help=argparse.SUPPRESS)
    p.add_argument("--vm-fault", default=None, help=argparse.SUPPRESS)

    p = sub.add_parser("calibrate", help="null syscall, context switch, driver vs sockperf")
    p.add_argument("--json", action="store_true")
    p.add_argument("--server-cpu", type=_cpu, default=1)
    p.add_argument("--client-cpu", type=_cpu, default=0)

    p = sub.add_parser("report", help="render reports/<run-id>/index.html from a run")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--out", type=Path, default=None)

    p = sub.add_parser("compare", help="compare two runs; exit 1 on a counted regression")
    p.add_argument("base", type=Path)
    p.add_argument("new", type=Path)
    p.add_argument("--factor", type=float, default=1.25)
    p.add_argument("--alpha", type=float, default=0.01)
    p.add_argument("--reference", default="blocking-c")
    p.add_argument("--metric", action="append", default=[], help="repeatable; default all")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("regress", help="the CI guard: short benchmark vs the committed baseline")
    p.add_argument("--baseline", type=Path, default=PROJECT_ROOT / "results" / "baseline")
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "results" / "regress")
    p.add_argument("--record", action="store_true", help="make this run the new baseline")
    p.add_argument("--server-option", action="append", default=[], help=argparse.SUPPRESS)

    sub.add_parser("cleanup", help="remove what interrupted runs left behind")

    p = sub.add_parser("fuzz", help="hostile datagrams against impls; checks they survive")
    p.add_argument("--impl", action="append", default=[])
    p.add_argument("--count", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--topology", action="append", choices=TOPOLOGIES, default=[])
    p.add_argument("--json", action="store_true")
    return parser


def _server_options(pairs: Sequence[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"--server-option {pair!r}: expected KEY=VALUE")
        options[key] = value
    return options


def run_config(args: argparse.Namespace) -> RunConfig:
    quick = bool(args.quick)
    try:
        return RunConfig(
            out_root=args.out,
            impls=tuple(args.impl),
            modes=tuple(args.mode) or MODES,
            sizes=tuple(args.size) or (64,),
            topologies=tuple(args.topology) or ("lo",),
            duration_s=args.duration if args.duration is not None else (0.3 if quick else 1.0),
            warmup_s=args.warmup if args.warmup is not None else (0.05 if quick else 0.2),
            trials=args.trials if args.trials is not None else (3 if quick else 5),
            rate_fractions=tuple(args.rate_fraction) or ((0.5,) if quick else (0.25, 0.5, 0.75)),
            rates=tuple(args.rate),
            outstanding=args.outstanding,
            server_cpu=args.server_cpu,
            client_cpu=args.client_cpu,
            port=args.port,
            env=args.env or ("host" if quick else "auto"),
            env_name=args.env_name,
            accel=args.accel,
            calibrate=not args.no_calibrate,
            sample_cap=args.sample_cap
            if args.sample_cap is not None
            else (2000 if quick else 10000),
            server_options=_server_options(args.server_option),
            vm_timeout_s=args.vm_timeout if args.vm_timeout is not None else 1800.0,
        )
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def cmd_list(args: argparse.Namespace, console: Console) -> int:
    from bench.impl.registry import discover

    entries = discover()
    records = [
        {
            "name": e.name,
            "kind": e.manifest.kind,
            "language": e.manifest.language,
            "summary": e.manifest.summary,
            "available": e.available,
            "reason": e.unavailable,
        }
        for e in entries.values()
    ]
    if args.json:
        print(json.dumps(records, indent=1))
        return EXIT_OK
    for r in records:
        state = (
            "[green]available[/green]"
            if r["available"]
            else f"[yellow]unavailable[/yellow]: {r['reason']}"
        )
        console.print(f"{r['name']:<20} {r['kind']:<14} {state}\n    {r['summary']}")
    return EXIT_OK


def _is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        raise UsageError(f"--addr {addr!r} is not an IP address") from None


def cmd_serve(args: argparse.Namespace, console: Console) -> int:
    from bench.impl.api import ImplError, ServerConfig
    from bench.impl.registry import discover

    if not _is_loopback(args.addr) and not args.allow_non_loopback:
        raise UsageError(
            f"--addr {args.addr} is not loopback; add --allow-non-loopback to expose the server"
        )
    entries = discover()
    if args.impl not in entries:
        raise UsageError(f"unknown impl {args.impl!r} (known: {', '.join(sorted(entries))})")
    entry = entries[args.impl]
    if entry.impl is None or not entry.available:
        console.print(f"{args.impl} cannot run here: {entry.unavailable}")
        return EXIT_FAILED
    config = ServerConfig(addr=args.addr, port=args.port, cpu=args.cpu, interface=args.interface)
    try:
        entry.impl.prepare()
        server = entry.impl.start(config)
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


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    from bench.orchestrate import run_all

    cfg = run_config(args)
    try:
        return run_all(cfg, console, vm_fault=args.vm_fault, render=args.report)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def cmd_calibrate(args: argparse.Namespace, console: Console) -> int:
    from bench.calibrate import run_calibration

    result = run_calibration(client_cpu=args.client_cpu, server_cpu=args.server_cpu)
    if args.json:
        print(json.dumps(result, indent=1))
        return EXIT_OK
    _print_calibration(result, console)
    return EXIT_OK


def _print_calibration(result: dict[str, Any], console: Console) -> None:
    def ns(value: float | None) -> str:
        return "not measured" if value is None else f"{value:,.1f} ns"

    console.print(f"null syscall:        {ns(result['null_syscall_ns'])}")
    console.print(f"context switch:      {ns(result['context_switch_ns'])}")
    console.print(f"cross-CPU wake-up:   {ns(result['wakeup_ns'])}")
    fid = result.get("driver_fidelity") or {}
    if fid.get("available"):
        console.print(
            f"driver RTT p50 vs sockperf: {fid['our_rtt_p50_ns'] / 1e3:.2f} µs vs "
            f"{fid['sockperf_rtt_p50_ns'] / 1e3:.2f} µs (ratio {fid['rtt_ratio']:.3f})"
        )
        console.print(
            f"driver send capacity vs sockperf: {fid['our_send_rps']:,.0f} vs "
            f"{fid['sockperf_send_rps']:,.0f} msg/s (ratio {fid['send_ratio']:.2f})"
        )
    else:
        console.print(f"driver fidelity: not measured ({fid.get('reason')})")
    for err in result.get("errors", []):
        console.print(f"[yellow]{err}[/yellow]")


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    from bench.report import render_report
    from bench.results_io import ResultsError

    try:
        path = render_report(args.run_dir, args.out)
    except ResultsError as exc:
        raise UsageError(str(exc)) from None
    console.print(f"report: {path}")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    from bench.compare import main_compare

    argv = [
        str(args.base),
        str(args.new),
        "--factor",
        str(args.factor),
        "--alpha",
        str(args.alpha),
        "--reference",
        args.reference,
    ]
    for metric in args.metric:
        argv += ["--metric", metric]
    if args.json:
        argv.append("--json")
    return main_compare(argv)


def cmd_cleanup(args: argparse.Namespace, console: Console) -> int:
    from bench import ownership

    lines = ownership.sweep(include_live=False)
    for line in lines:
        console.print(line)
    console.print(
        f"cleanup: {len(lines)} object(s) handled" if lines else "cleanup: nothing left behind"
    )
    return EXIT_FAILED if any(line.startswith("could not") for line in lines) else EXIT_OK


def cmd_regress(args: argparse.Namespace, console: Console) -> int:
    from bench.regress import main_regress

    return main_regress(args, console)


def cmd_fuzz(args: argparse.Namespace, console: Console) -> int:
    from bench.fuzz import main_fuzz

    return main_fuzz(args, console)


COMMANDS = {
    "list": cmd_list,
    "serve": cmd_serve,
    "run": cmd_run,
    "calibrate": cmd_calibrate,
    "report": cmd_report,
    "compare": cmd_compare,
    "cleanup": cmd_cleanup,
    "regress": cmd_regress,
    "fuzz": cmd_fuzz,
}


def _terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    console = Console(width=None if sys.stdout.isatty() else 200)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args, console)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        from bench import ownership

        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # finish the cleanup undisturbed
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for line in ownership.sweep(own=True):
            print(f"cleanup: {line}", file=sys.stderr)
        print("interrupted: servers stopped, attachments removed", file=sys.stderr)
        return 130
