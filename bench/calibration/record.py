"""Calibration of the machine a run measures on: what a null syscall and a context switch
cost, and how our driver compares with sockperf.  Every part that fails is recorded as
None with its reason, never guessed."""

from __future__ import annotations

from typing import Any

from bench.calibration.ctxswitch import measure_context_switch
from bench.calibration.fidelity import measure_fidelity
from bench.calibration.syscall import measure_null_syscall


def _attempt(errors: list[str], what: str, fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = fn(*args, **kwargs)
        return result
    except Exception as exc:
        errors.append(f"{what}: {exc}")
        return {}


def run_calibration(
    *, client_cpu: int | None, server_cpu: int | None, fidelity: bool = True, quick: bool = False
) -> dict[str, Any]:
    """The ``calibration`` record of an environment."""
    errors: list[str] = []
    syscall = _attempt(errors, "null syscall", measure_null_syscall)
    cpu_a = client_cpu if client_cpu is not None else 0
    cpu_b = server_cpu if server_cpu is not None else cpu_a
    switch = _attempt(errors, "context switch", measure_context_switch, cpu_a, cpu_b)
    fid: dict[str, Any] | None = None
    if fidelity:
        fid = _attempt(
            errors,
            "driver fidelity",
            measure_fidelity,
            duration_s=1.0,
            client_cpu=client_cpu,
            server_cpu=server_cpu,
            repetitions=1 if quick else 2,
            rtt_repetitions=2 if quick else 8,
        ) or {"available": False, "reason": errors[-1] if errors else "failed"}
    return {
        "null_syscall_ns": syscall.get("null_syscall_ns"),
        "context_switch_ns": switch.get("context_switch_ns"),
        "wakeup_ns": switch.get("wakeup_ns"),
        "wakeup_median_ns": switch.get("wakeup_median_ns"),
        "wakeup_poll_median_ns": switch.get("wakeup_poll_median_ns"),
        "driver_fidelity": fid,
        "details": {"null_syscall": syscall, "context_switch": switch},
        "errors": errors,
    }
