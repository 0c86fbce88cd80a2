"""A whole ``bench run``: the host environment, then (when asked or needed) the VM
environment, merged into one results.json; then the summary and, optionally, the report."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.config import RunConfig
from bench.runner import RunState, needs_vm, run_host, start_run
from bench.summary import footnotes, summary_table

EXIT_OK, EXIT_FAILED = 0, 1


def guest_args(cfg: RunConfig) -> list[str]:
    """The ``bench run`` arguments that make a guest measure what ``cfg`` measures."""
    args = ["--env", "host"]
    for impl in cfg.impls:
        args += ["--impl", impl]
    for mode in cfg.modes:
        args += ["--mode", mode]
    for size in cfg.sizes:
        args += ["--size", str(size)]
    for topo in cfg.topologies:
        args += ["--topology", topo]
    for rate in cfg.rates:
        args += ["--rate", repr(rate)]
    for fraction in cfg.rate_fractions:
        args += ["--rate-fraction", repr(fraction)]
    for key, value in cfg.server_options.items():
        args += ["--server-option", f"{key}={value}"]
    args += [
        "--duration",
        repr(cfg.duration_s),
        "--warmup",
        repr(cfg.warmup_s),
        "--trials",
        str(cfg.trials),
        "--outstanding",
        str(cfg.outstanding),
        "--server-cpu",
        "none" if cfg.server_cpu is None else str(cfg.server_cpu),
        "--client-cpu",
        "none" if cfg.client_cpu is None else str(cfg.client_cpu),
        "--port",
        str(cfg.port),
        "--sample-cap",
        str(cfg.sample_cap),
    ]
    if not cfg.calibrate:
        args.append("--no-calibrate")
    return args


def merge_guest(state: RunState, guest_results: Path) -> None:
    """Append a guest run's environment, rows and skips to the host document."""
    from bench.results import validate

    guest: dict[str, Any] = json.loads(guest_results.read_text())
    validate(guest)
    prefix = guest_results.parent.relative_to(state.run_dir).as_posix()
    state.document["environments"].update(guest["environments"])
    for row in guest["results"]:
        if row.get("samples"):
            row["samples"]["file"] = f"{prefix}/{row['samples']['file']}"
        state.document["results"].append(row)
    state.document["skipped"].extend(guest["skipped"])
    if not guest["complete"]:
        state.document["skipped"].append(
            {"impl": "*", "env": "vm", "reason": "the guest run did not complete"}
        )


def prebuild_modules(console: Console) -> None:
    """Build the kernel modules for the guest's kernel here, where compiling is fast."""
    from bench.kmod.impl import prebuild
    from bench.vm.kernel import find_guest_kernel

    release = find_guest_kernel().release
    console.log(f"[vm] building kernel modules for the guest kernel {release}")
    prebuild(release)


def run_vm(cfg: RunConfig, state: RunState, console: Console, fault: str | None) -> None:
    from bench.vm.environment import run_bench_in_vm

    try:
        prebuild_modules(console)
    except Exception as exc:  # the guest then builds (slowly) or skips the modules itself
        console.log(f"[yellow][vm] module prebuild failed: {exc}[/yellow]")
    console.log("[vm] booting a guest with a stock modular kernel (this takes a while under TCG)")
    vm = run_bench_in_vm(guest_args(cfg), state.run_dir, timeout_s=cfg.vm_timeout_s, fault=fault)
    outcome = vm.outcome
    console_log = outcome.console_log
    state.document["vm"] = {
        "accel": outcome.accel,
        "accel_reason": outcome.accel_reason,
        "kernel": outcome.kernel,
        "boot_s": outcome.boot_s,
        "run_s": outcome.run_s,
        "timed_out": outcome.timed_out,
        "exit_code": outcome.exit_code,
        "console_log": console_log.relative_to(state.run_dir).as_posix()
        if console_log.is_relative_to(state.run_dir)
        else str(console_log),
        "kernel_log_problems": outcome.kernel_log_problems,
        "failed_reason": outcome.failed_reason or vm.error,
    }
    console.log(
        f"[vm] {outcome.kernel} under {outcome.accel}: boot {outcome.boot_s:.1f} s, "
        f"run {outcome.run_s:.1f} s, console log {console_log}"
    )
    merged = vm.results_path is not None and vm.results_path.exists()
    if merged:
        assert vm.results_path is not None
        merge_guest(state, vm.results_path)
    measured_failures = merged and outcome.exit_code == 1 and not outcome.timed_out
    failure = None if measured_failures else (outcome.failed_reason or vm.error)
    if outcome.kernel_log_problems:
        failure = "guest kernel log: " + " | ".join(outcome.kernel_log_problems)[:1000]
    if failure:
        console.log(f"[red][vm] guest failed: {failure}[/red]")
        state.failures.append(f"vm: {failure}")
        measured = {r["impl"] for r in state.document["results"] if r["env"] == "vm"}
        for name in cfg.impls or ("*",):
            if name not in measured:
                state.document["skipped"].append({"impl": name, "env": "vm", "reason": failure})
    for row in state.document["results"]:
        if row["env"] == "vm" and row["status"] != "ok":
            state.failures.append(
                f"vm {row['impl']} {row['mode']} trial {row['trial']}: {row['error']}"
            )
    state.save()


def run_all(cfg: RunConfig, console: Console, *, vm_fault: str | None, render: bool) -> int:
    started = time.monotonic()
    state = start_run(cfg)
    console.log(f"run {state.document['run_id']} → {state.run_dir}")
    try:
        if cfg.env in ("auto", "host"):
            run_host(cfg, state, lambda line: console.log(line))
        missing = needs_vm(cfg) if cfg.env == "auto" else []
        if cfg.env == "vm" or missing:
            if missing:
                console.log(f"[vm] needed for: {', '.join(missing)}")
            run_vm(cfg, state, console, vm_fault)
        state.document["complete"] = True
        state.document["wall_s"] = round(time.monotonic() - started, 1)
        path = state.save()
    except KeyboardInterrupt:
        state.save()
        console.log(f"interrupted: partial results (marked incomplete) in {state.run_dir}")
        raise
    console.print(summary_table(state.document))
    for line in footnotes(state.document):
        console.print(line)
    for failure in state.failures:
        console.print(f"[red]failed: {failure}[/red]")
    console.print(f"results: {path}")
    if render:
        from bench.report import render_report

        console.print(f"report: {render_report(state.run_dir)}")
    return EXIT_FAILED if state.failures else EXIT_OK
