"""Calibration of the machine a run measures on: what a null syscall and a context switch
cost, and how our driver compares with sockperf.  Every part that fails is recorded as
None with its reason, never guessed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bench.calibration.ctxswitch import measure_context_switch
from bench.calibration.fidelity import (
    Fidelity,
    FidelityUnavailable,
    Setup,
    compare_with_sockperf,
)
from bench.calibration.syscall import SYSCALL_ITERS, measure_null_syscall
from bench.host.metadata import number

T = TypeVar("T")


@dataclass(frozen=True)
class Calibration:
    """What :func:`calibrate` measured: each part's record as its measurement wrote it
    (empty when it failed, the reason in ``errors``), the driver's comparison with sockperf
    (None when not asked for)."""

    null_syscall: Mapping[str, Any]
    context_switch: Mapping[str, Any]
    fidelity: Fidelity | FidelityUnavailable | None
    errors: tuple[str, ...] = field(default_factory=tuple)

    @property
    def null_syscall_ns(self) -> float | None:
        return number(self.null_syscall.get("null_syscall_ns"))

    @property
    def context_switch_ns(self) -> float | None:
        return number(self.context_switch.get("context_switch_ns"))

    @property
    def wakeup_ns(self) -> float | None:
        return number(self.context_switch.get("wakeup_ns"))

    @property
    def wakeup_median_ns(self) -> float | None:
        return number(self.context_switch.get("wakeup_median_ns"))

    @property
    def wakeup_poll_median_ns(self) -> float | None:
        return number(self.context_switch.get("wakeup_poll_median_ns"))

    def record(self) -> dict[str, Any]:
        """The ``calibration`` record of an environment."""
        return {
            "null_syscall_ns": self.null_syscall.get("null_syscall_ns"),
            "context_switch_ns": self.context_switch.get("context_switch_ns"),
            "wakeup_ns": self.context_switch.get("wakeup_ns"),
            "wakeup_median_ns": self.context_switch.get("wakeup_median_ns"),
            "wakeup_poll_median_ns": self.context_switch.get("wakeup_poll_median_ns"),
            "driver_fidelity": None if self.fidelity is None else self.fidelity.record(),
            "details": {
                "null_syscall": dict(self.null_syscall),
                "context_switch": dict(self.context_switch),
            },
            "errors": list(self.errors),
        }


EMULATED_SCALE = 0.2  # of each calibration loop's iterations, under emulation


def _attempt(errors: list[str], what: str, fn: Callable[[], T]) -> T | None:
    try:
        return fn()
    except Exception as exc:
        errors.append(f"{what}: {exc}")
        return None


def calibrate(
    *,
    client_cpu: int | None,
    server_cpu: int | None,
    fidelity: bool = True,
    quick: bool = False,
    rtt_repetitions: int | None = None,
    emulated: bool = False,
) -> Calibration:
    """Null syscall, context switch and wake-up, and (unless ``fidelity`` is false) the
    driver against sockperf, shorter when ``quick``; ``rtt_repetitions`` rotations of its
    RTT timings (default: 2 when quick, else 8).  ``emulated``: each loop runs a fifth of
    its iterations (a syscall or a switch costs microseconds there, so a repetition stays
    long enough to time, and the calibration takes seconds rather than half a minute)."""
    errors: list[str] = []
    scale = EMULATED_SCALE if emulated else 1.0
    iters = max(1, int(SYSCALL_ITERS * scale))
    syscall = _attempt(errors, "null syscall", lambda: measure_null_syscall(iters)) or {}
    cpu_a = client_cpu if client_cpu is not None else 0
    cpu_b = server_cpu if server_cpu is not None else cpu_a
    switch = _attempt(
        errors, "context switch", lambda: measure_context_switch(cpu_a, cpu_b, scale=scale)
    )
    fid: Fidelity | FidelityUnavailable | None = None
    if fidelity:
        setup = Setup(
            duration_s=1,
            repetitions=1 if quick else 2,
            rtt_repetitions=rtt_repetitions or (2 if quick else 8),
            client_cpu=client_cpu,
            server_cpu=server_cpu,
        )
        fid = _attempt(errors, "driver fidelity", lambda: compare_with_sockperf(setup))
        if fid is None:
            fid = FidelityUnavailable(errors[-1] if errors else "failed")
    return Calibration(syscall, switch or {}, fid, tuple(errors))


def run_calibration(
    *,
    client_cpu: int | None,
    server_cpu: int | None,
    fidelity: bool = True,
    quick: bool = False,
    rtt_repetitions: int | None = None,
    emulated: bool = False,
) -> dict[str, Any]:
    """The ``calibration`` record of an environment (see :func:`calibrate`)."""
    return calibrate(
        client_cpu=client_cpu, server_cpu=server_cpu, fidelity=fidelity, quick=quick,
        rtt_repetitions=rtt_repetitions, emulated=emulated,
    ).record()  # fmt: skip
