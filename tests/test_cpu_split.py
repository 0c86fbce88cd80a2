"""CPU per request by CPU: the busy time of the server's and the client's pinned CPUs is
reported apart, so a server's cost does not include the client's own; steal is measured
and flags the phase."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.metrics import procstat
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
    assert (row.server_cpu, row.client_cpu) == (1, 0)
    assert pr.server_cpu_busy_ns is not None and pr.client_cpu_busy_ns is not None
    assert pr.cpu_ns.total is not None
    # spin-c never sleeps: its CPU is busy for (nearly) the whole counting run, so that
    # CPU's busy time per request is the run's length over the replies.
    assert row.counted is not None and row.counted.replies > 0
    whole_cpu_per_reply = 1e9 * row.counted.duration_s / row.counted.replies
    assert pr.server_cpu_busy_ns >= 0.8 * whole_cpu_per_reply
    # Each figure is one CPU's part of the system-wide busy time, not the whole of it:
    # together they never exceed it (but for /proc/stat's rounding of each line to ticks).
    rounding = (len(procstat.BUSY) + 1) * (os.cpu_count() or 1) * procstat.TICK_NS
    pinned = pr.server_cpu_busy_ns + pr.client_cpu_busy_ns
    assert pinned <= pr.cpu_ns.total + rounding / row.counted.replies
    # Nothing makes the client's CPU less busy than the spinning server's: its busy time
    # is everything that CPU ran, and the driver sleeps in recv.  Measured on this 2-vCPU
    # KVM guest (spin-c pingpong, 3 rounds at each --rx-cpu): the driver's own CPU time
    # was 7.6-9.0 us per request with receive processing on its CPU (the request's receive
    # softirq runs inside its sendto) and 12.0-14.2 us with it steered to the server's CPU
    # (the remote enqueue and its IPI, a VM exit), yet its CPU read 30-116 us per request,
    # 0.80-1.04 of the run: the spinning server holds one CPU, so other runnable work on
    # this shared machine runs on the client's CPU and fills every moment the driver
    # sleeps (both CPUs read 98-100 % busy just before and after).  Not the guest's
    # cpuidle driver (haltpoll): guest_halt_poll_ns is 0 here, so it halts at once, and
    # with PM QoS held at 0 the idle task polls, which /proc/stat counts as idle (an
    # otherwise idle CPU read 983-990 ms idle per second either way).
    assert row.steal_pct is not None
