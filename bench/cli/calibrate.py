"""``bench calibrate``: null syscall, context switch and wake-up, the driver against sockperf."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

from rich.console import Console

from bench.calibration.record import run_calibration
from bench.cli.host import holding_host
from bench.cli.options import cpu
from bench.errors import EXIT_OK

NAME = "calibrate"
HELP = "null syscall, context switch, driver vs sockperf"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true")
    p.add_argument("--server-cpu", type=cpu, default=1)
    p.add_argument("--client-cpu", type=cpu, default=0)


def _ns(value: float | None) -> str:
    return "not measured" if value is None else f"{value:,.1f} ns"


def print_calibration(result: Mapping[str, Any], console: Console) -> None:
    console.print(f"null syscall:        {_ns(result['null_syscall_ns'])}")
    console.print(f"context switch:      {_ns(result['context_switch_ns'])}")
    console.print(f"cross-CPU wake-up:   {_ns(result['wakeup_ns'])}")
    fid = result.get("driver_fidelity") or {}
    if fid.get("available"):
        ci = fid.get("rtt_ratio_ci95")
        interval = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        console.print(
            f"driver RTT p50 vs sockperf: {fid['our_rtt_p50_ns'] / 1e3:.2f} µs vs "
            f"{fid['sockperf_rtt_p50_ns'] / 1e3:.2f} µs (ratio {fid['rtt_ratio']:.3f}{interval}, "
            f"{fid.get('rtt_ratio_method')}; within 5 %: {fid.get('rtt_within_5pct_verdict')})"
        )
        for name, part in (fid.get("rtt_ratio_parts") or {}).items():
            if part.get("ratio") is not None:
                bounds = part.get("ci95")
                shown = f" [{bounds[0]:.3f}, {bounds[1]:.3f}]" if bounds else ""
                console.print(f"  of which {name.replace('_', ' ')}: {part['ratio']:.3f}{shown}")
        if fid.get("rtt_ratio_socket_matched") is not None:
            bounds = fid.get("rtt_ratio_socket_matched_ci95")
            shown = f" [{bounds[0]:.3f}, {bounds[1]:.3f}]" if bounds else ""
            console.print(
                f"  with sockperf's unconnected socket matched: "
                f"{fid['rtt_ratio_socket_matched']:.3f}{shown} (within 5 %: "
                f"{fid.get('rtt_socket_matched_within_5pct_verdict')})"
            )
        console.print(
            f"driver send capacity vs sockperf: {fid['our_send_rps']:,.0f} vs "
            f"{fid['sockperf_send_rps']:,.0f} msg/s (ratio {fid['send_ratio']:.2f})"
        )
    else:
        console.print(f"driver fidelity: not measured ({fid.get('reason')})")
    for err in result.get("errors", []):
        console.print(f"[yellow]{err}[/yellow]")


def run(args: argparse.Namespace, console: Console) -> int:
    with holding_host(args):
        result = run_calibration(client_cpu=args.client_cpu, server_cpu=args.server_cpu)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print_calibration(result, console)
    return EXIT_OK
