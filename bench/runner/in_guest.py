"""The vm environment of a run: the same ``bench run`` inside a disposable guest with a stock
modular kernel, its results merged into the host's run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from bench.anatomy.build import PREBUILT_OBJECT_ENV, build_object
from bench.errors import HellobenchError
from bench.impl.registry import discover
from bench.kmod.impl import prebuild
from bench.results.run import Run
from bench.runner.config import RunConfig, level_combinations
from bench.runner.design import blocks
from bench.runner.progress import ConsoleRelay, Progress, Step
from bench.runner.recording import Recording
from bench.runner.validity import RETRY_SHARE
from bench.system.files import write_atomic
from bench.vm.bench_run import VM_SUBDIR, run_bench_in_vm
from bench.vm.kernel import find_guest_kernel

# The watchdog's allowance: per phase (a timed and a counting run, each with its warm-up,
# plus server start and the probes, as measured under TCG: 6.6 s for 0.5 s phases), and
# once for boot, calibration and the cross-checks.
GUEST_PHASE_OVERHEAD_S = 8.0
GUEST_FIXED_S = 900.0
GUEST_ANATOMY_BUILD_S = 300.0  # vmlinux.h and the anatomy's object, if built in the guest
GUEST_ANATOMY_PASS_S = 60.0  # a traced pass: server start, loader, untraced and traced runs
MIN_GUEST_TIMEOUT_S = 1800.0


def guest_design(cfg: RunConfig) -> str:
    """What the guest measures: the vm environment is there for the comparisons the host
    kernel cannot make, so the standard design's survey runs on the host only, and unless
    the budget is ``full`` the claim becomes its ladder (design.py: both receive-CPU
    levels, the default idle policy; under TCG a phase costs seconds, so the idle policy's
    second level and the dose-response are measured on the host)."""
    if cfg.design not in ("standard", "claim"):
        return cfg.design
    return "claim" if cfg.budget == "full" else "ladder"


def guest_phases(cfg: RunConfig) -> int:
    """How many phases the guest will measure (every registered impl where a block names
    none; rate mode once per offered load)."""
    every = len(discover())
    total = 0
    for block in blocks(guest_config(cfg)):
        loads = len(cfg.rates or cfg.rate_fractions)
        phases = sum(
            (loads if mode == "rate" else 1) * len(block.settings(mode)) for mode in block.modes
        )
        levels = len(level_combinations(block.server_levels))
        impls = len(block.impls) or every
        total += block.rounds * impls * levels * len(block.sizes) * phases * len(cfg.topologies)
    return total


def guest_anatomy_passes(cfg: RunConfig) -> int:
    """How many anatomy passes the guest will trace (runner/anatomy.py: the claim's ladder
    at each of its pingpong levels)."""
    if not cfg.anatomy_requests:
        return 0
    every = len(discover())
    return sum(
        (len(block.impls) or every) * len(block.settings("pingpong")) * len(cfg.topologies)
        for block in blocks(guest_config(cfg))
        if block.name == "claim"
    )


def guest_timeout(cfg: RunConfig) -> float:
    """The guest watchdog: as given, or enough for every phase the guest will run."""
    if cfg.vm_timeout_s is not None:
        return cfg.vm_timeout_s
    per_phase = 2 * (max(cfg.duration_s, cfg.claim_duration_s) + cfg.warmup_s)
    phases = guest_phases(cfg) * (1.0 + RETRY_SHARE)  # re-runs of failed gates
    estimate = phases * (per_phase + GUEST_PHASE_OVERHEAD_S) + GUEST_FIXED_S
    passes = guest_anatomy_passes(cfg)
    if passes:
        estimate += GUEST_ANATOMY_BUILD_S + passes * GUEST_ANATOMY_PASS_S
    return max(MIN_GUEST_TIMEOUT_S, estimate)


def guest_config(cfg: RunConfig) -> RunConfig:
    """What the guest measures: ``cfg`` in its own environment (it measures "here", as
    ``--env host``), with the guest's design."""
    return replace(cfg, env="host", design=guest_design(cfg), vm_timeout_s=None)


GUEST_CONFIG_NAME = "config.json"


def guest_args(cfg: RunConfig, folder: Path) -> list[str]:
    """Write the guest's RunConfig (its JSON, as results.json records a run's) into
    ``folder``, which the guest sees, and return the ``bench run`` arguments that make the
    guest measure it."""
    path = folder / GUEST_CONFIG_NAME
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(guest_config(cfg).to_json(), indent=1))
    return ["--config", str(path.resolve()), "--progress-lines"]


def merge_guest(recording: Recording, guest_results: Path) -> None:
    """Append a guest run's environments, impls, rows and skips to the host's run."""
    guest = Run.load(guest_results)
    run = recording.run
    prefix = guest_results.parent.relative_to(recording.run_dir).as_posix()
    run.environments.update(guest.environments)
    for name, info in guest.impls.items():
        run.impls.setdefault(name, info)
    for row in guest.rows:
        if row.samples is not None:
            row = replace(row, samples=replace(row.samples, file=f"{prefix}/{row.samples.file}"))
        run.add_row(row)
    run.skipped.extend(guest.skipped)
    run.extra.setdefault("crosschecks", []).extend(guest.extra.get("crosschecks") or [])
    run.anatomy.extend(guest.anatomy)
    not_traced = guest.extra.get("anatomy_skipped") or {}
    if not_traced:
        run.extra.setdefault("anatomy_skipped", {}).update(not_traced)
    skipped = guest.extra.get("crosschecks_skipped") or {}
    if skipped:
        run.extra.setdefault("crosschecks_skipped", {}).update(skipped)
    if not guest.complete:
        run.skip("*", "vm", "the guest run did not complete")


def prebuild_modules(progress: Progress) -> None:
    """Build the kernel modules for the guest's kernel here, where compiling is fast."""
    release = find_guest_kernel().release
    progress(f"[vm] building kernel modules for the guest kernel {release}")
    prebuild(release, discover())


def prebuild_anatomy(cfg: RunConfig, progress: Progress) -> dict[str, str]:
    """Build the anatomy's BPF object here (CO-RE: it loads on the guest's kernel too) and
    return the guest's environment that hands it over; empty when the guest traces nothing
    or it cannot be built here (the guest then builds it, or says why it cannot trace)."""
    if not guest_anatomy_passes(cfg):
        return {}
    try:
        obj = build_object()
    except HellobenchError as exc:
        progress(f"[vm] the anatomy's BPF object was not built here: {exc}")
        return {}
    return {PREBUILT_OBJECT_ENV: str(obj)}


def run_vm(cfg: RunConfig, recording: Recording, progress: Progress, fault: str | None) -> None:
    """Measure ``cfg`` in a guest and merge what it measured; a failed guest fails the
    impls it did not measure, with the guest's reason."""
    try:
        prebuild_modules(progress)
    except HellobenchError as exc:  # the guest then builds (slowly) or skips the modules itself
        progress(f"[vm] module prebuild failed: {exc}")
    guest_env = prebuild_anatomy(cfg, progress)
    progress(
        f"[vm] booting a guest with a stock modular kernel to measure {guest_phases(cfg)} "
        f"phases (watchdog {guest_timeout(cfg):.0f} s; this takes a while under TCG)"
    )
    progress.step(Step("vm", "boot", "booting the guest", total=guest_phases(cfg)))
    vm = run_bench_in_vm(
        guest_args(cfg, recording.run_dir / VM_SUBDIR),
        recording.run_dir,
        timeout_s=guest_timeout(cfg),
        fault=fault,
        stream=ConsoleRelay(progress),
        env=guest_env,
    )
    outcome = vm.outcome
    console_log = outcome.console_log
    run = recording.run
    run.extra["vm"] = {
        "accel": outcome.accel,
        "accel_reason": outcome.accel_reason,
        "kernel": outcome.kernel,
        "boot_s": outcome.boot_s,
        "run_s": outcome.run_s,
        "timed_out": outcome.timed_out,
        "exit_code": outcome.exit_code,
        "console_log": console_log.relative_to(recording.run_dir).as_posix()
        if console_log.is_relative_to(recording.run_dir)
        else str(console_log),
        "kernel_log_problems": outcome.kernel_log_problems,
        "failed_reason": outcome.failed_reason or vm.error,
    }
    progress(
        f"[vm] {outcome.kernel} under {outcome.accel}: boot {outcome.boot_s:.1f} s, "
        f"run {outcome.run_s:.1f} s, console log {console_log}"
    )
    merged = vm.results_path is not None and vm.results_path.exists()
    if merged:
        assert vm.results_path is not None
        merge_guest(recording, vm.results_path)
    measured_failures = merged and outcome.exit_code == 1 and not outcome.timed_out
    failure = None if measured_failures else (outcome.failed_reason or vm.error)
    if outcome.kernel_log_problems:
        failure = "guest kernel log: " + " | ".join(outcome.kernel_log_problems)[:1000]
    if failure:
        progress(f"[vm] guest failed: {failure}")
        recording.failures.append(f"vm: {failure}")
        measured = {r.impl for r in run.rows if r.env == "vm"}
        for name in cfg.impls or ("*",):
            if name not in measured:
                run.skip(name, "vm", failure)
    for row in run.rows:
        if row.env == "vm" and not row.ok:
            recording.failures.append(f"vm {row.impl} {row.mode} trial {row.trial}: {row.error}")
    recording.save()
