"""The regression guard CI runs: a short, fixed benchmark compared with a committed baseline.

The run is short but has five interleaved trials per impl, enough for the Mann-Whitney test
to reach alpha 0.01; metrics are normalised to a reference impl of the same run, and only
the metrics that are stable on a shared machine are compared (tail latency and system-wide
CPU per request move with the neighbours' load, not with the code).
"""

from __future__ import annotations

import argparse
import shutil
import socket
from pathlib import Path

from rich.console import Console

from bench import PROJECT_ROOT

BASELINE = PROJECT_ROOT / "results" / "baseline"
REFERENCE = "blocking-py"
IMPLS = ("blocking-c", "blocking-py", "asyncio-py")
METRICS = ("rtt_p50", "throughput_rps", "server_syscalls_per_req", "system_ctx_per_req")
RUN_ARGS = (
    "--env", "host", "--mode", "pingpong", "--trials", "5", "--duration", "0.5",
    "--warmup", "0.1", "--no-calibrate", "--sample-cap", "0",
)  # fmt: skip


def free_port() -> int:
    """A UDP port nothing on loopback is bound to now (the guard must not meet a stray 3000)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def run_args(out: Path, server_options: tuple[str, ...] = ()) -> list[str]:
    """``bench run`` arguments of the guard's benchmark, writing under ``out``."""
    args = [*RUN_ARGS, "--out", str(out), "--port", str(free_port())]
    for impl in IMPLS:
        args += ["--impl", impl]
    for option in server_options:
        args += ["--server-option", option]
    return args


def compare_args(base: Path, new: Path) -> list[str]:
    args = [str(base), str(new), "--reference", REFERENCE]
    for metric in METRICS:
        args += ["--metric", metric]
    return args


def newest_run(out: Path) -> Path:
    return max(out.glob("*/results.json"), key=lambda p: p.stat().st_mtime).parent


def main_regress(args: argparse.Namespace, console: Console) -> int:
    """Measure, then compare with the baseline (or, with --record, make this run the baseline)."""
    from bench.cli import main as bench_main
    from bench.compare import main_compare

    out: Path = args.out
    status = bench_main(["run", *run_args(out, tuple(args.server_option))])
    if status == 2:
        return status
    new = newest_run(out)
    if args.record:
        args.baseline.mkdir(parents=True, exist_ok=True)
        shutil.copy2(new / "results.json", args.baseline / "results.json")
        console.print(f"baseline recorded: {args.baseline / 'results.json'}")
        return status
    if status != 0:
        console.print("[red]the benchmark had failed phases: no comparison[/red]")
        return status
    return main_compare(compare_args(args.baseline, new))
