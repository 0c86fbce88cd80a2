"""``bench anatomy``: the stages of sampled pingpong round trips, traced with BPF in a pass of
their own (bench/anatomy), beside the untraced round trip of the same configuration."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.anatomy.build import unavailable_reason
from bench.anatomy.measure import AnatomyResult, anatomy_pass
from bench.anatomy.summary import share_on
from bench.cli.host import holding_host
from bench.cli.options import cpu, key_values, port, positive_int
from bench.driver.client import DriverConfig
from bench.errors import EXIT_FAILED, EXIT_OK, UsageError
from bench.factors import factor
from bench.impl.registry import discover
from bench.protocol import DEFAULT_PORT, HEADER_SIZE, MAX_REQUEST
from bench.runner.conditions import phase_conditions
from bench.runner.lifecycle import prepare, running_server, select
from bench.system.files import write_atomic
from bench.topology import LOOPBACK


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--impl", action="append", required=True, help="repeatable")
    p.add_argument("--rx-cpu", action="append", choices=factor("rx_cpu").levels, help="repeatable")
    p.add_argument("--idle", action="append", choices=factor("idle").levels, help="repeatable")
    p.add_argument(
        "--requests", type=positive_int, default=1000, help="sampled requests wanted (about)"
    )
    p.add_argument("--every", type=positive_int, default=8, help="sample 1 request in N")
    p.add_argument("--duration", type=float, default=1.0, help="seconds of the untraced run")
    p.add_argument("--size", type=int, default=64, help="request bytes (the seq header fits)")
    p.add_argument("--port", type=port, default=DEFAULT_PORT)
    p.add_argument("--server-cpu", type=cpu, default=1)
    p.add_argument("--client-cpu", type=cpu, default=0)
    p.add_argument(
        "--server-option", action="append", default=[], metavar="KEY=VALUE",
        help="a server option, e.g. delay_ns=200000 (repeatable)",
    )  # fmt: skip
    p.add_argument("--json", type=Path, default=None, help="write every result here")


def run(args: argparse.Namespace, console: Console) -> int:
    if not 0 < args.duration <= 60:
        raise UsageError("--duration must be in (0, 60] seconds")
    if not HEADER_SIZE <= args.size <= MAX_REQUEST:
        raise UsageError(
            f"--size must be {HEADER_SIZE}..{MAX_REQUEST}: requests are matched by their seq"
        )
    if args.server_cpu is None or args.client_cpu is None:
        raise UsageError("--server-cpu and --client-cpu must name CPUs: rx placement needs them")
    options = key_values(args.server_option, "--server-option")
    entries = select(args.impl, discover())
    reason = unavailable_reason()
    if reason:
        console.print(f"the anatomy cannot be traced here: {reason}")
        return EXIT_FAILED
    rx_levels = args.rx_cpu or ["server"]
    idle_levels = args.idle or [factor("idle").default]
    results: list[AnatomyResult] = []
    failed = False
    with holding_host(args):
        for entry in entries:
            ready = prepare(entry)
            if ready.impl is None:
                console.print(f"{entry.name} cannot run here: {ready.reason}")
                failed = True
                continue
            for rx in rx_levels:
                for idle in idle_levels:
                    settings = {"rx_cpu": rx, "idle": idle}
                    driver = DriverConfig(
                        mode="pingpong", port=args.port, size=args.size,
                        duration_s=args.duration, cpu=args.client_cpu,
                    )  # fmt: skip
                    config = LOOPBACK.server_config(args.port, args.server_cpu, options)
                    with (
                        phase_conditions(LOOPBACK, settings, args.server_cpu),
                        running_server(ready.impl, config) as server,
                    ):
                        result = anatomy_pass(
                            entry.name, server, driver, settings,
                            every=args.every, sampled=args.requests,
                        )  # fmt: skip
                    results.append(result)
                    print_result(console, result, args.server_cpu, args.client_cpu)
    if args.json is not None:
        write_atomic(args.json, json.dumps([r.to_json() for r in results], indent=1) + "\n")
        console.print(f"written: {args.json}")
    return EXIT_FAILED if failed or not results else EXIT_OK


def _us(ns: float | None) -> str:
    if ns is None or not math.isfinite(ns):
        return "-"
    return f"{ns / 1000:.2f}"


def _latency(latency: Mapping[str, float | None]) -> str:
    return f"p50 {_us(latency.get('p50'))} µs, p99 {_us(latency.get('p99'))} µs"


def print_result(console: Console, r: AnatomyResult, server_cpu: int, client_cpu: int) -> None:
    n = len(r.requests)
    title = (
        f"{r.impl}  rx_cpu={r.settings['rx_cpu']} idle={r.settings['idle']}  "
        f"{n} sampled (1 in {r.every}), {r.incomplete} incomplete"
    )
    table = Table(title=title, title_justify="left")
    for column in (
        "stage",
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "mean µs",
        "tail 1 % mean",
        "median mean",
        "missing",
    ):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for s in r.stages:
        table.add_row(
            s.name, _us(s.ns.p50), _us(s.ns.p90), _us(s.ns.p99), _us(s.ns.mean),
            _us(r.tail.tail[s.name]), _us(r.tail.median[s.name]), str(s.missing),
        )  # fmt: skip
    t = r.traced_rtt
    table.add_row(
        "traced RTT (sum)", _us(t.p50), _us(t.p90), _us(t.p99), _us(t.mean),
        _us(sum(r.tail.tail.values())), _us(sum(r.tail.median.values())), "",
        style="bold",
    )  # fmt: skip
    console.print(table)
    console.print(f"  untraced RTT (driver, right before): {_latency(r.untraced_ns)}")
    console.print(f"  traced RTT (driver):                 {_latency(r.traced_driver_ns)}")
    console.print(f"  tracing cost at p50: {_us(r.overhead_ns())} µs")
    console.print(
        f"  receive processing on the server CPU {server_cpu}: "
        f"{share_on(r.requests, 'rx_cpu', server_cpu):.1%}, "
        f"on the client CPU {client_cpu}: {share_on(r.requests, 'rx_cpu', client_cpu):.1%}"
    )
    if n:
        server_polls = sum(q.server_polls for q in r.requests) / n
        client_polls = sum(q.client_polls for q in r.requests) / n
        console.print(
            "  empty receives (EAGAIN) before each sampled request's data: "
            f"server {server_polls:.1f}, client {client_polls:.1f}"
        )
    if not r.server_in_user_space:
        hooked = f"traced ({r.hooks.get('handler', 'fentry/fexit')})"
        if not r.handler_hooked:
            hooked = "inside the stack stages"
        elif r.model in ("kthread", "kthread-poll"):
            hooked = "the kernel thread's stages"
        note = f" ({r.handler_note})" if r.handler_note else ""
        console.print(f"  in-kernel handler ({r.model}): {hooked}{note}")
    hooks = ", ".join(f"{k} {v}" for k, v in r.hooks.items())
    console.print(f"  hooks: {hooks}" + (f" ({r.notes})" if r.notes else ""))
    costs = ", ".join(
        f"{p.name} {p.run_cnt} runs {_us(p.run_time_ns)} µs" for p in r.programs if p.run_cnt
    )
    per_request = sum(p.run_time_ns for p in r.programs) / max(r.traced_requests, 1)
    console.print(f"  BPF run time: {costs or 'not available'}")
    console.print(f"  BPF run time per driver request: {_us(per_request)} µs")
    loader = ", ".join(f"{k} {v}" for k, v in r.loader.items())
    console.print(f"  loader: {loader}")
