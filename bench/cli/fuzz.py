"""``bench fuzz``: hostile datagrams against impls, here or (``--env vm``) inside a guest with
a stock modular kernel; every impl must survive them and answer none."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from bench.cli.host import holding_host
from bench.errors import EXIT_FAILED, EXIT_OK
from bench.fuzz.campaign import check_count, run_fuzz
from bench.fuzz.checks import FuzzResult, spoofed_answered
from bench.fuzz.in_guest import DEFAULT_TIMEOUT_S, GuestFuzz, fuzz_in_vm
from bench.topology import TOPOLOGIES


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--impl", action="append", default=[])
    p.add_argument("--count", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--topology", action="append", choices=TOPOLOGIES, default=[])
    p.add_argument(
        "--env",
        choices=("host", "vm"),
        default="host",
        help="vm: the same campaign in a guest with a stock modular kernel (kernel modules)",
    )
    p.add_argument("--vm-timeout", type=float, default=DEFAULT_TIMEOUT_S, help="guest watchdog, s")
    p.add_argument("--json", action="store_true")


def _yes_no(value: bool | None, na: str = "n/a") -> str:
    return na if value is None else ("yes" if value else "[red]no[/red]")


def _spoofed_cell(r: FuzzResult) -> str:
    """Hostile-source requests answered of those sent, "not checked" when not run."""
    if r.spoofed_sent is None:
        return "not checked"
    cell = f"{spoofed_answered(r):,} of {sum(r.spoofed_sent.values()):,}"
    return f"[red]{cell}[/red]" if spoofed_answered(r) else cell


def results_table(results: Sequence[FuzzResult]) -> Table:
    table = Table(title="fuzz: hostile datagrams (replies classified by content)")
    table.add_column("impl")
    table.add_column("topo")
    for numeric in (
        "malformed sent",
        "valid sent",
        "malformed replied",
        "valid answered",
        "valid missing",
        "retries",
    ):
        table.add_column(numeric, justify="right")
    table.add_column("impl counted rejected", justify="right")
    table.add_column("spoofed answered", justify="right")
    for column in ("alive", "BPF attached", "kernel log", "result"):
        table.add_column(column)
    for r in results:
        if r.status == "skipped":
            table.add_row(r.impl, r.topology, *[""] * 11, "[yellow]skipped[/yellow]")
            continue
        if r.kernel_log_readable is False:
            klog = "not readable"
        else:
            klog = (
                f"[red]{len(r.kernel_log_problems)} problem(s)[/red]"
                if r.kernel_log_problems
                else "clean"
            )
        verdict = "[green]pass[/green]" if r.status == "pass" else "[red]FAIL[/red]"
        table.add_row(
            r.impl,
            r.topology,
            f"{r.malformed_sent:,}",
            f"{r.valid_sent + r.sync_sent:,}",
            f"{r.malformed_replied:,}",
            f"{r.valid_answered:,}",
            f"{r.valid_missing:,}",
            f"{r.retries:,}",
            f"{r.counters['rejected']:,}" if r.counters and "rejected" in r.counters else "n/a",
            _spoofed_cell(r),
            _yes_no(r.alive),
            _yes_no(r.bpf_attached),
            klog,
            verdict,
        )
    return table


def _print_results(results: Sequence[FuzzResult], console: Console) -> None:
    console.print(results_table(results))
    for r in results:
        if r.status == "skipped":
            console.print(f"[yellow]{r.impl} ({r.topology}) skipped: {r.reason}[/yellow]")
        for failure in r.failures:
            console.print(f"[red]{r.impl} ({r.topology}): {failure}[/red]")
        for example in r.unexpected_examples:
            console.print(f"  unexpected reply — {example}")
        sent = r.spoofed_sent or {}
        for category, n in sorted((r.spoofed_answered or {}).items()):
            if n:
                console.print(
                    f"  spoofed ({r.impl}): {category}: {n} of {sent.get(category, 0)} answered"
                )
        for note in r.spoofed_notes:
            console.print(f"  spoofed ({r.impl}): {note}")
        for problem in r.kernel_log_problems:
            console.print(f"  kernel log ({r.impl}): {problem}")
        if r.kernel_log_readable is False and r.status != "skipped":
            console.print(f"  {r.impl}: kernel log not readable; not checked")


def _run_in_guest(args: argparse.Namespace, topologies: list[str], console: Console) -> int:
    guest: GuestFuzz = fuzz_in_vm(
        args.impl, args.count, args.seed, topologies, timeout_s=args.vm_timeout
    )
    if args.json:
        body = {
            "env": "vm",
            "accel": guest.accel,
            "kernel": guest.kernel,
            "seed": args.seed,
            "count": args.count,
            "passed": guest.passed,
            "failures": guest.failures,
            "results": [r.to_json() for r in guest.results],
        }
        print(json.dumps(body, indent=1))
    else:
        console.print(f"guest: kernel {guest.kernel}, accel {guest.accel}")
        _print_results(guest.results, console)
        for failure in guest.failures:
            console.print(f"[red]guest: {failure}[/red]")
    return EXIT_OK if guest.passed else EXIT_FAILED


def run(args: argparse.Namespace, console: Console) -> int:
    check_count(args.count)
    topologies = list(dict.fromkeys(args.topology or ["lo"]))
    with holding_host(args):
        return _fuzz(args, topologies, console)


def _fuzz(args: argparse.Namespace, topologies: list[str], console: Console) -> int:
    if args.env == "vm":
        return _run_in_guest(args, topologies, console)

    def progress(line: str) -> None:
        if not args.json:
            console.log(line)

    results = run_fuzz(args.impl, topologies, args.count, args.seed, progress)
    failed = any(r.status == "fail" for r in results)
    if args.json:
        document = {
            "seed": args.seed,
            "count": args.count,
            "passed": not failed,
            "results": [r.to_json() for r in results],
        }
        print(json.dumps(document, indent=1))
    else:
        _print_results(results, console)
    return EXIT_FAILED if failed else EXIT_OK
