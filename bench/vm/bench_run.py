"""The vm environment of a run: the same ``python -m bench run`` inside a disposable guest.

The guest writes under ``<run_dir>/vm`` (shared writable, same path in the guest): its own
``<run-id>/results.json`` (``--out`` is a results root) and ``guest/`` (job, console log,
exit status, guest dmesg; see bench/vm/guest.py).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from bench.vm.guest import GUEST_DIR, GuestOutcome, run_in_guest
from bench.vm.qemu import ConsoleSink, detect_accel

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VM_SUBDIR = "vm"


@dataclass(frozen=True)
class VmRun:
    """A guest run of ``bench run``: how the guest ended, and the results it wrote.

    ``error`` is None only when the guest command succeeded and results.json exists."""

    outcome: GuestOutcome
    results_path: Path | None
    error: str | None


def find_results(out_root: Path) -> Path | None:
    """The newest results.json the guest wrote under ``out_root`` (the control folder aside)."""
    found = [
        path
        for path in out_root.rglob("results.json")
        if GUEST_DIR not in path.relative_to(out_root).parts[:1]
    ]
    return max(found, key=lambda p: p.stat().st_mtime, default=None)


def guest_bench_argv(bench_args: list[str], out_root: Path, accel: str) -> list[str]:
    """The command the guest runs: this Python, ``-m bench run``, the run's arguments."""
    return [
        sys.executable,
        "-m",
        "bench",
        "run",
        *bench_args,
        "--out",
        str(out_root),
        "--env-name",
        "vm",
        "--accel",
        accel,
    ]


def run_bench_in_vm(
    bench_args: list[str],
    run_dir: Path,
    *,
    timeout_s: float,
    accel: str | None = None,
    fault: str | None = None,
    stream: ConsoleSink | None = None,
    env: dict[str, str] | None = None,
) -> VmRun:
    """Run ``python -m bench run <bench_args>`` in a guest, writing under ``run_dir/vm``;
    ``env``: variables the guest's command gets besides PYTHONPATH."""
    out_root = (run_dir / VM_SUBDIR).resolve()
    out_root.mkdir(parents=True, exist_ok=True)
    chosen = accel or detect_accel()[0]  # probed once per process: run_in_guest agrees
    outcome = run_in_guest(
        guest_bench_argv(bench_args, out_root, chosen),
        workdir=out_root,
        timeout_s=timeout_s,
        accel=accel,
        env={**(env or {}), "PYTHONPATH": str(PROJECT_ROOT)},
        fault=fault,
        cwd=PROJECT_ROOT,
        stream=stream,
    )
    results = find_results(out_root)
    error = outcome.failed_reason
    if outcome.exit_code not in (0, None) and not outcome.timed_out:
        error = f"the guest's bench run exited with status {outcome.exit_code}" + (
            f" ({results} says what failed)" if results else " and wrote no results.json"
        )
    elif error is None and results is None:
        error = f"the guest's bench run wrote no results.json under {out_root}"
    return VmRun(outcome=outcome, results_path=results, error=error)
