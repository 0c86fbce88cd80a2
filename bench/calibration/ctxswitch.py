"""Context switch and cross-CPU wake-up cost, lmbench lat_ctx style (bench/native/calib.c).

Two processes pass one byte back and forth over two pipes.  On the same CPU each round
trip is two context switches plus two pipe writes and reads; the pipe cost is measured
alone (write and read in one process, no switch) and subtracted, as lat_ctx does:
context_switch_ns = (round trip - 2 x pipe) / 2.  Pinned to two CPUs, every hop wakes a
sleeping process on the other CPU: wakeup_ns = (round trip - 2 x pipe) / 2 is the cost
of one wake-up beyond the syscalls, ``wakeup_oneway_ns`` = round trip / 2 the latency.
"""

from __future__ import annotations

import os

from bench.calibration.syscall import CalibrationError, calib_samples, summarise
from bench.system.pm_qos import PmQosError, cpu_latency_held

PIPE_ITERS = 50_000
SAME_CPU_ITERS = 20_000
CROSS_CPU_ITERS = 5_000
REPS = 5
MIN_ITERS = 500


def _allowed_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def _roundtrips(cpu_a: int, cpu_b: int, iters: int, reps: int) -> list[float]:
    args = ["pingpong", str(cpu_a), str(cpu_b), str(iters), str(reps)]
    samples = calib_samples(args).get("roundtrip_ns", [])
    if not samples:
        raise CalibrationError(f"hello-calib {' '.join(args)} printed no samples")
    return samples


def _net(roundtrip_ns: float, pipe_ns: float) -> float | None:
    """(round trip - 2 x pipe) / 2, None when noise makes it non-positive."""
    value = (roundtrip_ns - 2.0 * pipe_ns) / 2.0
    return value if value > 0 else None


def _other_cpu(cpu_a: int, cpu_b: int, allowed: list[int]) -> int | None:
    if cpu_b != cpu_a and cpu_b in allowed:
        return cpu_b
    return next((cpu for cpu in allowed if cpu != cpu_a), None)


def _scaled(iters: int, scale: float) -> int:
    return max(MIN_ITERS, int(iters * scale))


def _wakeup_polling_idle(
    cpu_a: int, peer: int, pipe_best: float, pipe_median: float, reps: int, scale: float
) -> dict[str, object]:
    """The cross-CPU wake-up again with PM QoS CPU latency held at 0 (``--idle poll``)."""
    try:
        with cpu_latency_held(0):
            cross = _roundtrips(cpu_a, peer, _scaled(CROSS_CPU_ITERS, scale), reps)
    except PmQosError as exc:
        return {"wakeup_poll_ns": None, "wakeup_poll_reason": str(exc)}
    best, median = summarise(cross)
    return {
        "wakeup_poll_ns": _net(best, pipe_best),
        "wakeup_poll_median_ns": _net(median, pipe_median),
        "cross_cpu_poll_roundtrip_ns": cross,
    }


def measure_context_switch(
    cpu_a: int = 0, cpu_b: int = 1, reps: int = REPS, scale: float = 1.0
) -> dict[str, object]:
    """ns per context switch on ``cpu_a`` and per wake-up from ``cpu_a`` to ``cpu_b``,
    with ``scale`` times the usual round trips per repetition (fewer where each costs
    tens of microseconds, as under emulation).

    A ``cpu_b`` equal to ``cpu_a`` or not allowed is replaced by another allowed CPU;
    with a single CPU ``wakeup_ns`` is None and ``wakeup_reason`` says why.
    """
    allowed = _allowed_cpus()
    if cpu_a not in allowed:
        cpu_a = allowed[0]
    same_iters, cross_iters = _scaled(SAME_CPU_ITERS, scale), _scaled(CROSS_CPU_ITERS, scale)
    pipe = calib_samples(["pipe", str(_scaled(PIPE_ITERS, scale)), str(reps)]).get("pipe_ns", [])
    if not pipe:
        raise CalibrationError("hello-calib pipe printed no samples")
    pipe_best, pipe_median = summarise(pipe)
    same = _roundtrips(cpu_a, cpu_a, same_iters, reps)
    same_best, same_median = summarise(same)
    result: dict[str, object] = {
        "context_switch_ns": _net(same_best, pipe_best),
        "context_switch_median_ns": _net(same_median, pipe_median),
        "pipe_overhead_ns": pipe_best,
        "same_cpu_roundtrip_ns": same,
        "cpus": [cpu_a],
        "wakeup_ns": None,
        "wakeup_median_ns": None,
        "wakeup_oneway_ns": None,
        "cross_cpu_roundtrip_ns": [],
        "wakeup_reason": None,
    }
    peer = _other_cpu(cpu_a, cpu_b, allowed)
    if peer is None:
        result["wakeup_reason"] = f"only one CPU available ({allowed}): no cross-CPU wake-up"
    else:
        cross = _roundtrips(cpu_a, peer, cross_iters, reps)
        cross_best, cross_median = summarise(cross)
        result.update(
            wakeup_ns=_net(cross_best, pipe_best),
            wakeup_median_ns=_net(cross_median, pipe_median),
            wakeup_oneway_ns=cross_best / 2.0,
            cross_cpu_roundtrip_ns=cross,
            cpus=[cpu_a, peer],
        )
        result.update(_wakeup_polling_idle(cpu_a, peer, pipe_best, pipe_median, reps, scale))
    if result["context_switch_ns"] is None:
        result["context_switch_reason"] = "round trip not above twice the pipe cost (noise)"
    result["method"] = (
        "lmbench lat_ctx style 1-byte pipe ping-pong between two processes: "
        f"same CPU {same_iters} and cross-CPU {cross_iters} round trips per "
        f"repetition, {reps} repetitions, best (median beside it), minus the pipe "
        "write+read cost measured in one process, halved per switch/wake-up"
    )
    return result
