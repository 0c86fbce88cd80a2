"""Calibration returns positive finite figures (never a speed threshold: the machine is shared)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.calibration import ctxswitch, syscall
from bench.native.build import BuildError


@pytest.fixture(scope="module", autouse=True)
def _helper_builds() -> None:
    try:
        syscall.calib_binary()
    except BuildError as e:
        pytest.skip(f"cannot build hello-calib: {e}")


def _positive(value: object) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


def test_null_syscall() -> None:
    result = syscall.measure_null_syscall(iters=20_000, reps=3)
    assert _positive(result["null_syscall_ns"])
    assert _positive(result["null_syscall_median_ns"])
    samples = result["samples"]
    assert isinstance(samples, list) and len(samples) == 3
    assert result["null_syscall_ns"] == min(samples)
    assert isinstance(result["method"], str) and "getppid" in result["method"]


def test_context_switch_and_wakeup() -> None:
    result = ctxswitch.measure_context_switch(0, 1, reps=2)
    assert _positive(result["context_switch_ns"])
    assert _positive(result["pipe_overhead_ns"])
    assert isinstance(result["method"], str)
    if len(ctxswitch._allowed_cpus()) > 1:
        assert _positive(result["wakeup_ns"])
        assert _positive(result["wakeup_oneway_ns"])
        if Path("/dev/cpu_dma_latency").exists():  # the wake-up again, idle states held off
            assert _positive(result["wakeup_poll_median_ns"])
            assert len(result["cross_cpu_poll_roundtrip_ns"]) == 2  # type: ignore[arg-type]
        else:
            assert result["wakeup_poll_ns"] is None and result["wakeup_poll_reason"]
        cpus = result["cpus"]
        assert isinstance(cpus, list) and len(set(cpus)) == 2
    else:
        assert result["wakeup_ns"] is None and result["wakeup_reason"]


def test_same_cpu_pair_uses_another_cpu_for_wakeups() -> None:
    assert ctxswitch._other_cpu(0, 0, [0, 1]) == 1
    assert ctxswitch._other_cpu(0, 5, [0, 1]) == 1
    assert ctxswitch._other_cpu(1, 0, [0, 1]) == 0
    assert ctxswitch._other_cpu(0, 1, [0]) is None


def test_single_cpu_has_no_wakeup(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = ctxswitch._allowed_cpus()[0]
    monkeypatch.setattr(ctxswitch, "_allowed_cpus", lambda: [cpu])
    result = ctxswitch.measure_context_switch(cpu, cpu + 1, reps=1)
    assert result["wakeup_ns"] is None
    assert isinstance(result["wakeup_reason"], str) and "one CPU" in result["wakeup_reason"]
    assert _positive(result["context_switch_ns"])


def test_net_cost_is_never_negative() -> None:
    assert ctxswitch._net(1000.0, 200.0) == 300.0
    assert ctxswitch._net(300.0, 200.0) is None


def test_helper_rejects_bad_arguments() -> None:
    with pytest.raises(syscall.CalibrationError):
        syscall.calib_samples(["pingpong", "x", "0", "1", "1"])
