"""Null syscall cost: syscall(SYS_getppid) in a tight C loop (bench/native/calib.c)."""

from __future__ import annotations

import statistics
import subprocess
from collections.abc import Sequence
from pathlib import Path

from bench.errors import HellobenchError
from bench.native.build import NATIVE_DIR, build_executable

CALIB_TIMEOUT_S = 120.0
SYSCALL_ITERS = 200_000
SYSCALL_REPS = 7


class CalibrationError(HellobenchError):
    """The calibration helper failed; the message carries its output."""


def calib_binary() -> Path:
    """The hello-calib helper, built (and cached) on first use."""
    return build_executable("hello-calib", [NATIVE_DIR / "calib.c"])


def calib_samples(args: Sequence[str]) -> dict[str, list[float]]:
    """Runs hello-calib with ``args``; its "name value" lines grouped by name."""
    cmd = [str(calib_binary()), *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CALIB_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise CalibrationError(f"{' '.join(cmd)} timed out after {e.timeout} s") from None
    if proc.returncode != 0:
        raise CalibrationError(f"{' '.join(cmd)} failed: {proc.stderr.strip()[-500:]}")
    samples: dict[str, list[float]] = {}
    for line in proc.stdout.splitlines():
        name, _, value = line.partition(" ")
        samples.setdefault(name, []).append(float(value))
    return samples


def summarise(values: Sequence[float]) -> tuple[float, float]:
    """(best, median) of repetitions."""
    return min(values), statistics.median(values)


def measure_null_syscall(iters: int = SYSCALL_ITERS, reps: int = SYSCALL_REPS) -> dict[str, object]:
    """ns per null syscall: ``null_syscall_ns`` is the best repetition, the median beside it."""
    samples = calib_samples(["syscall", str(iters), str(reps)]).get("syscall_ns", [])
    if not samples:
        raise CalibrationError("hello-calib syscall printed no samples")
    best, median = summarise(samples)
    return {
        "null_syscall_ns": best,
        "null_syscall_median_ns": median,
        "samples": samples,
        "method": (
            f"syscall(SYS_getppid) in a C loop, {iters} calls per repetition, "
            f"best and median of {len(samples)} repetitions after a warm-up"
        ),
    }
