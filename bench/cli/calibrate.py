"""``bench calibrate``: null syscall, context switch and wake-up, the driver against sockperf."""

from __future__ import annotations

import argparse
import json

from rich.console import Console

from bench.calibration.fidelity import Fidelity, Ratio
from bench.calibration.record import Calibration, calibrate
from bench.cli.host import holding_host
from bench.cli.options import cpu
from bench.errors import EXIT_OK


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true")
    p.add_argument("--server-cpu", type=cpu, default=1)
    p.add_argument("--client-cpu", type=cpu, default=0)


def _ns(value: float | None) -> str:
    return "not measured" if value is None else f"{value:,.1f} ns"


def _interval(ratio: Ratio) -> str:
    return f" [{ratio.ci95[0]:.3f}, {ratio.ci95[1]:.3f}]" if ratio.ci95 else ""


def print_fidelity(fid: Fidelity, console: Console) -> None:
    rtt, matched, runs = fid.rtt, fid.rtt_socket_matched, fid.runs
    console.print(
        f"driver RTT p50 vs sockperf: {runs.median('our_p50') / 1e3:.2f} µs vs "
        f"{runs.median('sp_p50') / 1e3:.2f} µs (ratio {rtt.ratio:.3f}{_interval(rtt)}, "
        f"{rtt.method}; within 5 %: {rtt.verdict()})"
    )
    for name, part in fid.rtt_parts.items():
        if part.ratio is not None:
            console.print(f"  of which {name.replace('_', ' ')}: {part.ratio:.3f}{_interval(part)}")
    if matched.ratio is not None:
        console.print(
            f"  with sockperf's unconnected socket matched: {matched.ratio:.3f}"
            f"{_interval(matched)} (within 5 %: {matched.verdict()})"
        )
    console.print(
        f"driver send capacity vs sockperf: {runs.median('our_send'):,.0f} vs "
        f"{runs.median('sp_send'):,.0f} msg/s (ratio {fid.send_ratio:.2f})"
    )


def print_calibration(result: Calibration, console: Console) -> None:
    console.print(f"null syscall:        {_ns(result.null_syscall_ns)}")
    console.print(f"context switch:      {_ns(result.context_switch_ns)}")
    console.print(f"cross-CPU wake-up:   {_ns(result.wakeup_ns)}")
    if isinstance(result.fidelity, Fidelity):
        print_fidelity(result.fidelity, console)
    else:
        reason = result.fidelity.reason if result.fidelity is not None else None
        console.print(f"driver fidelity: not measured ({reason})")
    for err in result.errors:
        console.print(f"[yellow]{err}[/yellow]")


def run(args: argparse.Namespace, console: Console) -> int:
    with holding_host(args):
        result = calibrate(client_cpu=args.client_cpu, server_cpu=args.server_cpu)
    if args.json:
        print(json.dumps(result.record(), indent=1))
    else:
        print_calibration(result, console)
    return EXIT_OK
