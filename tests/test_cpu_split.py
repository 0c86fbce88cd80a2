"""CPU per request by CPU: the busy time of the server's and the client's pinned CPUs is
reported apart, so a server's cost does not include the client's own; steal is measured
and flags the phase."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.metrics.probe import PhaseMetrics
from bench.runner.phase import per_request, steal_pct
from tests.bench_runs import bench_run

MS = 1_000_000.0


def _metrics(by_cpu: dict[int, dict[str, float]], steal: float = 0.0) -> PhaseMetrics:
    total = {k: sum(c.get(k, 0.0) for c in by_cpu.values()) for k in ("total", "idle")}
    return PhaseMetrics(
        wall_s=1.0, server_syscalls=None, client_syscalls=None, server_ctx_switches=None,
        client_ctx_switches=None, kernel_thread_ctx_switches=None, system_ctx_switches=0,
        cpu_ns={**total, "steal": steal, "iowait": 0.0}, cpu_ns_by_cpu=by_cpu,
        server_cpu_ns=None, client_cpu_ns=None, bpf_run_ns=None, bpf_run_cnt=None,
    )  # fmt: skip


def test_each_pinned_cpu_is_divided_by_the_replies_alone() -> None:
    m = _metrics({0: {"total": 300 * MS, "idle": 700 * MS}, 1: {"total": 800 * MS, "idle": 0}})
    pr = per_request(m, 1000, server_cpu=1, client_cpu=0)
    assert pr.server_cpu_busy_ns == 800 * MS / 1000
    assert pr.client_cpu_busy_ns == 300 * MS / 1000
    unpinned = per_request(m, 1000)
    assert unpinned.server_cpu_busy_ns is None and unpinned.client_cpu_busy_ns is None
    assert per_request(m, 1000, server_cpu=7).server_cpu_busy_ns is None  # no such CPU
    assert per_request(m, 0, server_cpu=1).server_cpu_busy_ns is None


def test_steal_is_a_share_of_all_cpu_time() -> None:
    m = _metrics({0: {"total": 500 * MS, "idle": 500 * MS}}, steal=50 * MS)
    assert steal_pct(m) == pytest.approx(5.0)
    assert steal_pct(_metrics({})) is None


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two CPUs")
def test_a_run_splits_server_and_client_cpu(tmp_path: Path) -> None:
    args = ["--impl", "spin-c", "--mode", "pingpong"]
    args += ["--duration", "1", "--warmup", "0.1", "--trials", "1", "--no-calibrate"]
    args += ["--env", "host", "--server-cpu", "1", "--client-cpu", "0"]
    (row,) = bench_run(tmp_path, args).rows
    pr = row.per_request
    assert pr.server_cpu_busy_ns is not None and pr.client_cpu_busy_ns is not None
    # spin-c keeps its CPU busy all the time: that CPU's busy time per request is the
    # whole phase over the replies, far more than the client's CPU, which sleeps in recv.
    assert row.counted is not None and row.counted.replies > 0
    whole_cpu_per_reply = 1e9 * row.counted.duration_s / row.counted.replies
    assert pr.server_cpu_busy_ns > 0.8 * whole_cpu_per_reply
    assert pr.server_cpu_busy_ns > pr.client_cpu_busy_ns
    assert row.steal_pct is not None
