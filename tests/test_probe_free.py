"""Timing without probes, counting separately: in every phase the timed run has no
tracepoint, perf event or BPF statistics enabled, and a counting run of the same load has
them all on; the probes' cost is the paired difference, and it is not zero when a server
makes many syscalls (each takes the traced slow path while the tracepoint is on)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bench.analysis.probe_cost import probe_costs
from bench.driver import client as driver_client
from bench.driver.client import DriverConfig, DriverResult
from bench.impl.api import ServerConfig
from bench.impl.registry import discover
from bench.metrics.bpf import STATS_SYSCTL
from bench.runner import phase
from bench.runner.phase import PhaseSpec, measure_phase
from bench.system.ports import free_udp_port
from tests.bench_runs import bench_run

TIMEOUT_S = 300
EXTRA_SYSCALLS = 2000  # per request: a dose whose traced slow path cannot hide in noise

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="perf events and BPF stats: root")


def _fds(kind: str) -> int:
    """Descriptors of ``kind`` (an anon inode's name) this process holds."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == f"anon_inode:{kind}":
                count += 1
        except OSError:
            continue
    return count


def _perf_fds() -> int:
    return _fds("[perf_event]")


def _bpf_stats_on() -> bool:
    """On machine-wide (the sysctl) or held by this process (a BPF_ENABLE_STATS descriptor)."""
    return STATS_SYSCTL.read_text().strip() == "1" or _fds("bpf-stats") > 0


@needs_root
def test_the_timed_run_has_nothing_enabled_and_the_counting_run_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = discover()["ebpf-xdp"]
    if entry.impl is None or not entry.available:
        pytest.skip(f"ebpf-xdp: {entry.unavailable}")
    seen: list[dict[str, Any]] = []
    real = driver_client.run_driver

    def watched(config: DriverConfig, **kwargs: Any) -> DriverResult:
        start = kwargs.get("on_measure_start")

        def on_start(pid: int) -> None:
            if start is not None:
                start(pid)
            seen.append({"probed": True, "perf": _perf_fds(), "bpf_stats": _bpf_stats_on()})

        if start is None:
            seen.append({"probed": False, "perf": _perf_fds(), "bpf_stats": _bpf_stats_on()})
            return real(config, **kwargs)
        return real(config, **{**kwargs, "on_measure_start": on_start})

    monkeypatch.setattr(phase, "run_driver", watched)
    impl = entry.impl
    impl.prepare()
    port = free_udp_port()
    server = impl.start(ServerConfig(port=port))
    try:
        spec = PhaseSpec.of(
            0, "ebpf", env="host", topology="lo", impl="ebpf-xdp", mode="pingpong", size=64
        )
        dcfg = DriverConfig(
            mode="pingpong", addr="127.0.0.1", port=port, size=64, duration_s=0.3,
            warmup_s=0.05, timeout_s=0.2, sample_cap=100, seed=1,
        )  # fmt: skip
        row = measure_phase(spec, server, dcfg, tmp_path / "samples")
    finally:
        server.stop()
    assert row.ok, row.error
    assert [s["probed"] for s in seen] == [False, True]
    timed, counting = seen
    assert timed["perf"] == 0 and not timed["bpf_stats"]
    assert counting["perf"] > 0 and counting["bpf_stats"]
    assert row.timing == "probe-free" and row.counted is not None
    assert row.counted.replies > 0 and row.per_request.client_syscalls is not None
    assert not _bpf_stats_on()


@needs_root
def test_a_syscall_heavy_server_shows_what_the_probes_cost(tmp_path: Path) -> None:
    args = ["--impl", "blocking-c", "--mode", "pingpong"]
    args += ["--duration", "0.5", "--warmup", "0.1", "--trials", "3", "--no-calibrate"]
    args += ["--env", "host", "--server-option", f"extra_syscalls={EXTRA_SYSCALLS}"]
    run = bench_run(tmp_path, args)
    assert all(r.timing == "probe-free" for r in run.rows)
    syscalls = [r.per_request.server_syscalls for r in run.rows]
    assert all(s is not None and s >= EXTRA_SYSCALLS for s in syscalls), syscalls
    (cost,) = probe_costs(run)
    assert cost.estimate.n == 3 and cost.estimate.method == "paired t, 95%, n=3"
    # Each of ~2000 syscalls per request takes the traced slow path only in the counting run.
    assert cost.estimate.interval.low > 0, cost
