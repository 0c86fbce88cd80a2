"""Metric probes: counts checked against children that make a known number of syscalls,
sleeps and threads.  Count-based only; no timing thresholds (the machine is shared)."""

from __future__ import annotations

import ctypes
import dataclasses
import math
import os
import socket
import struct
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.bpf import BpfError, progstats
from bench.impl.api import Accounting
from bench.metrics import bpf, ctxswitch, perf, procstat, taskcpu, tasks
from bench.metrics.probe import PhaseMetrics, PhaseProbe
from bench.metrics.syscalls import SyscallCounter, tracepoint_id
from bench.runner.phase import per_request

N = 10_000
SLACK = 300  # the handshake's own syscalls and interpreter housekeeping

# The child waits for "go" on stdin, runs BODY, prints "done" and lingers until stdin closes.
CHILD = """
import os, sys, threading, time
{setup}
sys.stdin.readline()
{body}
sys.stdout.write("done\\n")
sys.stdout.flush()
sys.stdin.readline()
"""


class Child:
    def __init__(self, body: str, setup: str = "") -> None:
        code = CHILD.format(setup=textwrap.dedent(setup), body=textwrap.dedent(body))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.pid = self.proc.pid

    def ready(self) -> None:
        """Blocks until the setup has run (the child prints "ready" at its end)."""
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"

    def run(self) -> None:
        """Lets the child run its body and waits until it is done."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "done"

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def spawn() -> Iterator[type[Child]]:
    children: list[Child] = []

    class Tracked(Child):
        def __init__(self, body: str, setup: str = "") -> None:
            super().__init__(body, setup)
            children.append(self)

    yield Tracked
    for child in children:
        child.close()


def _need_syscall_counting() -> None:
    tp, why = tracepoint_id()
    if tp is None:
        pytest.skip(why)
    try:
        with SyscallCounter([os.getpid()]):
            pass
    except OSError as e:
        pytest.skip(f"perf_event_open on tracepoints refused: {e}")


def measure(child: Child, **kw: object) -> PhaseMetrics:
    probe = PhaseProbe(Accounting(pids=(child.pid,)), **kw)  # type: ignore[arg-type]
    probe.start()
    child.run()
    return probe.stop()


SETUP_READY = 'print("ready", flush=True)'

# -- syscalls ------------------------------------------------------------------------------


def test_syscalls_of_a_process(spawn: type[Child]) -> None:
    _need_syscall_counting()
    child = spawn(f"for _ in range({N}): os.getppid()", SETUP_READY)
    child.ready()
    m = measure(child)
    assert m.server_syscalls is not None
    assert N <= m.server_syscalls < N + SLACK


def test_syscalls_of_threads_present_at_start(spawn: type[Child]) -> None:
    _need_syscall_counting()
    setup = f"""
    go = threading.Event()
    def work():
        go.wait()
        for _ in range({N}):
            os.getppid()
    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    print("ready", flush=True)
    """
    body = """
    go.set()
    for t in threads:
        t.join()
    """
    child = spawn(body, setup)
    child.ready()
    assert len(tasks.thread_ids(child.pid)) == 4
    m = measure(child)
    assert m.server_syscalls is not None
    assert 3 * N <= m.server_syscalls < 3 * N + SLACK


def test_syscalls_of_threads_born_during_the_phase(spawn: type[Child]) -> None:
    _need_syscall_counting()
    body = f"""
    def work():
        for _ in range({N}):
            os.getppid()
    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    """
    child = spawn(body, SETUP_READY)
    child.ready()
    m = measure(child)
    assert m.server_syscalls is not None
    # thread creation and exit add a few dozen syscalls per thread
    assert 3 * N <= m.server_syscalls < 3 * N + 3 * SLACK


def test_client_syscalls(spawn: type[Child]) -> None:
    _need_syscall_counting()
    server = spawn("pass", SETUP_READY)
    client = spawn(f"for _ in range({N}): os.getppid()", SETUP_READY)
    server.ready()
    client.ready()
    probe = PhaseProbe(Accounting(pids=(server.pid,)), client_pid=client.pid)
    probe.start()
    client.run()
    server.run()
    m = probe.stop()
    assert m.client_syscalls is not None and m.server_syscalls is not None
    assert N <= m.client_syscalls < N + SLACK
    assert m.server_syscalls < SLACK


# -- context switches ------------------------------------------------------------------------

SLEEPS = 200


def test_sleeps_are_voluntary_switches(spawn: type[Child]) -> None:
    child = spawn(f"for _ in range({SLEEPS}): time.sleep(0.001)", SETUP_READY)
    child.ready()
    m = measure(child)
    assert m.server_ctx_switches is not None
    assert m.server_ctx_switches >= SLEEPS
    assert m.system_ctx_switches >= SLEEPS


def test_probe_falls_back_to_proc_without_perf(
    spawn: type[Child], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(pids: object) -> perf.TaskCounters:
        raise perf.PerfError(1, "perf_event_open refused")

    import bench.metrics.probe as phase

    monkeypatch.setattr(phase, "SyscallCounter", refuse)
    monkeypatch.setattr(ctxswitch, "counters", refuse)
    monkeypatch.setattr(taskcpu, "counters", refuse)
    child = spawn(f"for _ in range({SLEEPS}): time.sleep(0.001)", SETUP_READY)
    child.ready()
    m = measure(child)
    assert m.server_syscalls is None
    assert any("server syscalls not measurable" in n for n in m.notes)
    assert m.server_ctx_switches is not None and m.server_ctx_switches >= SLEEPS
    assert m.server_cpu_ns is not None and m.server_cpu_ns >= 0


def test_proc_fallback_sums_all_threads(spawn: type[Child]) -> None:
    # The workers sleep, then stay alive (blocked) so that the final snapshot sees them.
    setup = f"""
    go, slept, finish = threading.Event(), threading.Barrier(4), threading.Event()
    def work():
        go.wait()
        for _ in range({SLEEPS}):
            time.sleep(0.001)
        slept.wait()
        finish.wait()
    threads = [threading.Thread(target=work, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    print("ready", flush=True)
    """
    body = """
    go.set()
    slept.wait()
    """
    child = spawn(body, setup)
    child.ready()
    start = ctxswitch.snapshot([child.pid])
    child.run()
    stop = ctxswitch.snapshot([child.pid])
    d = tasks.delta(start, stop)
    assert d.lost == 0
    assert d.value >= 3 * SLEEPS
    # the main thread alone (what psutil reports) misses the workers' switches
    main = {k: v - start.get(k, 0) for k, v in stop.items() if k[1] == child.pid}
    assert sum(main.values()) < 3 * SLEEPS


def test_parse_status() -> None:
    text = "Name:\tx\nvoluntary_ctxt_switches:\t12\nnonvoluntary_ctxt_switches:\t3\n"
    assert ctxswitch.parse_status(text) == (12, 3)


def test_kernel_thread_switches() -> None:
    kthreadd = 2
    if "kthreadd" not in (tasks.read_text(f"/proc/{kthreadd}/comm") or ""):
        pytest.skip("pid 2 is not kthreadd here")
    probe = PhaseProbe(Accounting(kernel_tids=(kthreadd,)))
    probe.start()
    m = probe.stop()
    assert m.kernel_thread_ctx_switches is not None and m.kernel_thread_ctx_switches >= 0
    assert m.server_cpu_ns is not None and m.server_cpu_ns >= 0
    assert m.server_syscalls is None and m.server_ctx_switches is None


# -- CPU time ------------------------------------------------------------------------------


def test_cpu_ns_parts_and_total(spawn: type[Child]) -> None:
    child = spawn("x = sum(i * i for i in range(300_000))", SETUP_READY)
    child.ready()
    m = measure(child)
    for part in ("user", "system", "softirq", "irq", "total"):
        assert m.cpu_ns[part] >= 0
    busy = ("user", "system", "softirq", "irq", "steal")
    assert math.isclose(m.cpu_ns["total"], sum(m.cpu_ns[k] for k in busy))
    assert m.cpu_ns_by_cpu
    for per_cpu in m.cpu_ns_by_cpu.values():
        assert all(v >= 0 for v in per_cpu.values())
        assert math.isclose(per_cpu["total"], sum(per_cpu[k] for k in busy))
    assert m.server_cpu_ns is not None and m.server_cpu_ns > 0


def test_procstat_delta_in_ns() -> None:
    a = procstat.parse("cpu 1 2 3 4 5 6 7 8 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nctxt 100\n")
    b = procstat.parse(
        "cpu 11 12 13 14 15 16 17 18 0 0\ncpu0 11 12 13 14 15 16 17 18 0 0\nctxt 150\n"
    )
    d = procstat.delta(a, b)
    tick = 1e9 / os.sysconf("SC_CLK_TCK")
    assert d.ctxt == 50
    assert d.cpu_ns["user"] == 20 * tick  # user + nice
    assert d.cpu_ns["system"] == 10 * tick
    assert d.cpu_ns["total"] == 60 * tick  # user+nice, system, irq, softirq, steal
    assert d.cpu_ns_by_cpu[0] == d.cpu_ns


def test_thread_delta_counts_newborn_and_lost_threads() -> None:
    start = {(1, 1): 10, (1, 2): 5, (1, 3): 7}
    stop = {(1, 1): 15, (1, 2): 9, (1, 4): 3}  # 3 exited, 4 was born
    d = tasks.delta(start, stop)
    assert d.value == 5 + 4 + 3
    assert d.lost == 1


def test_task_cpu_tick_fallback_reads_self() -> None:
    me = os.getpid()
    value = taskcpu._stat_ns(me, me)
    assert value is not None and value >= 0


def test_task_cpu_of_self_grows() -> None:
    me = os.getpid()
    before = taskcpu.read_thread(me, me)
    sum(i for i in range(200_000))
    after = taskcpu.read_thread(me, me)
    assert before is not None and after is not None and after >= before


# -- the probe -----------------------------------------------------------------------------


def test_empty_accounting_gives_none_with_notes() -> None:
    acc = Accounting(note="the reply is written by an XDP program")
    probe = PhaseProbe(acc)
    probe.start()
    m = probe.stop()
    for name in (
        "server_syscalls",
        "client_syscalls",
        "server_ctx_switches",
        "client_ctx_switches",
        "kernel_thread_ctx_switches",
        "server_cpu_ns",
        "client_cpu_ns",
        "bpf_run_ns",
        "bpf_run_cnt",
    ):
        assert getattr(m, name) is None, name
    assert any("no server process" in n and "XDP" in n for n in m.notes)
    assert any("client" in n for n in m.notes)
    assert m.system_ctx_switches >= 0
    assert m.wall_s >= 0


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_probe_releases_fds(spawn: type[Child]) -> None:
    child = spawn("pass", SETUP_READY)
    child.ready()
    before = _open_fds()
    with PhaseProbe(Accounting(pids=(child.pid,)), client_pid=child.pid) as probe:
        child.run()
        probe.stop()
    leaked = _open_fds() - before  # others may close fds meanwhile (GC); none may stay open
    assert not leaked


def test_probe_releases_fds_on_error(spawn: type[Child]) -> None:
    child = spawn("pass", SETUP_READY)
    child.ready()
    before = _open_fds()
    with pytest.raises(KeyError), PhaseProbe(Accounting(pids=(child.pid,))):
        raise KeyError("phase failed")
    leaked = _open_fds() - before  # others may close fds meanwhile (GC); none may stay open
    assert not leaked


def test_server_exit_is_noted(spawn: type[Child]) -> None:
    child = spawn("pass", SETUP_READY)
    child.ready()
    probe = PhaseProbe(Accounting(pids=(child.pid,)))
    probe.start()
    child.run()
    child.close()
    m = probe.stop()
    exited = [n for n in m.notes if "exited during the phase" in n]
    assert len(exited) == 1


def test_missing_server_process() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    probe = PhaseProbe(Accounting(pids=(proc.pid,)))
    probe.start()
    m = probe.stop()
    assert m.server_syscalls is None and m.server_ctx_switches is None
    assert m.notes


# -- per request ---------------------------------------------------------------------------


def _metrics(**kw: object) -> PhaseMetrics:
    base = PhaseMetrics(
        wall_s=1.0,
        server_syscalls=2000,
        client_syscalls=None,
        server_ctx_switches=100,
        client_ctx_switches=50,
        kernel_thread_ctx_switches=None,
        system_ctx_switches=400,
        cpu_ns={"user": 1e6, "system": 2e6, "softirq": 3e6, "irq": 0.0, "steal": 0.0, "total": 6e6},
        cpu_ns_by_cpu={},
        server_cpu_ns=5_000_000,
        client_cpu_ns=None,
        bpf_run_ns=12_000,
        bpf_run_cnt=300,
        notes=(),
    )
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def test_per_request_divides_and_keeps_none() -> None:
    pr = per_request(_metrics(), 1000).to_json()
    assert pr["server_syscalls"] == 2.0
    assert pr["client_syscalls"] is None
    assert pr["server_ctx_switches"] == 0.1
    assert pr["client_ctx_switches"] == 0.05
    assert pr["kernel_thread_ctx_switches"] is None
    assert pr["system_ctx_switches"] == 0.4
    assert pr["server_cpu_ns"] == 5000.0
    assert pr["client_cpu_ns"] is None
    assert pr["bpf_run_ns"] == 40.0  # per program run, not per request
    assert pr["cpu_ns"] == {
        "user": 1000.0,
        "system": 2000.0,
        "softirq": 3000.0,
        "irq": 0.0,
        "total": 6000.0,
    }


def test_per_request_without_requests_is_all_none() -> None:
    pr = per_request(_metrics(), 0).to_json()
    assert all(v is None for k, v in pr.items() if k != "cpu_ns")
    assert all(v is None for v in pr["cpu_ns"].values())


def test_per_request_without_bpf_runs() -> None:
    assert per_request(_metrics(bpf_run_cnt=0), 10).bpf_run_ns is None
    assert per_request(_metrics(bpf_run_ns=None, bpf_run_cnt=None), 10).bpf_run_ns is None


# -- BPF -----------------------------------------------------------------------------------


@pytest.mark.parametrize("old", ["0", "1"])
def test_bpf_stats_enabled_restores(
    old: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "bpf_stats_enabled"
    fake.write_text(f"{old}\n")
    monkeypatch.setattr(bpf, "STATS_SYSCTL", fake)
    with bpf.bpf_stats_enabled(use_descriptor=False) as on:
        assert on
        assert fake.read_text().strip() == "1"
    assert fake.read_text().strip() == old


@pytest.mark.root
def test_bpf_stats_enabled_restores_the_real_sysctl() -> None:
    old = bpf.stats_enabled()
    if old is None or not os.access(bpf.STATS_SYSCTL, os.W_OK):
        pytest.skip("kernel.bpf_stats_enabled not writable here")
    with bpf.bpf_stats_enabled(use_descriptor=False) as on:
        assert on and bpf.stats_enabled() is True
    assert bpf.stats_enabled() is old


@pytest.mark.root
@pytest.mark.bpf
def test_bpf_stats_by_descriptor_count_and_leave_the_sysctl_alone() -> None:
    """Statistics held by a descriptor count a program's runs, never touch the sysctl, and
    stop with the descriptor: after the block the same program's run time stays put."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if bpf.stats_enabled():
        pytest.skip("kernel.bpf_stats_enabled is on machine-wide: run time always counts")
    try:
        prog = _load_socket_filter()
    except (OSError, BpfError) as e:
        pytest.skip(f"cannot load a BPF program: {e}")
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        try:
            rx.bind(("127.0.0.1", 0))
            rx.setsockopt(socket.SOL_SOCKET, 50, prog)  # SO_ATTACH_BPF
            prog_id = progstats.prog_id_of_fd(prog)
            with bpf.bpf_stats_enabled() as on:
                assert on and bpf.stats_enabled() is False
                for _ in range(50):
                    tx.sendto(b"HELLO", rx.getsockname())
                inside = progstats.total_stats((prog_id,)).run_time_ns
            for _ in range(50):
                tx.sendto(b"HELLO", rx.getsockname())
            after = progstats.total_stats((prog_id,)).run_time_ns
        finally:
            os.close(prog)
    assert inside > 0  # counted while the descriptor was open
    assert after == inside  # and not once it closed


def _load_socket_filter() -> int:
    """A BPF socket filter that accepts every packet (r0 = -1; exit); returns its fd."""
    insns = struct.pack("=BBhi", 0xB7, 0, 0, -1) + struct.pack("=BBhi", 0x95, 0, 0, 0)
    code = ctypes.create_string_buffer(insns, len(insns))
    license_ = ctypes.create_string_buffer(b"GPL")
    attr = ctypes.create_string_buffer(144)
    prog_type_socket_filter, bpf_prog_load = 1, 5
    struct.pack_into(
        "=IIQQ",
        attr,
        0,
        prog_type_socket_filter,
        2,
        ctypes.addressof(code),
        ctypes.addressof(license_),
    )
    return progstats._bpf(bpf_prog_load, attr)


@pytest.mark.root
@pytest.mark.bpf
def test_bpf_run_count_of_a_socket_filter() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    try:
        prog = _load_socket_filter()
    except (OSError, BpfError) as e:
        pytest.skip(f"cannot load a BPF program: {e}")
    packets = 100
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        try:
            rx.bind(("127.0.0.1", 0))
            so_attach_bpf = 50
            rx.setsockopt(socket.SOL_SOCKET, so_attach_bpf, prog)
            prog_id = progstats.prog_id_of_fd(prog)
            probe = PhaseProbe(Accounting(bpf_prog_ids=(prog_id,)))
            probe.start()
            for _ in range(packets):
                tx.sendto(b"HELLO", rx.getsockname())
            m = probe.stop()
        finally:
            os.close(prog)
    assert m.bpf_run_cnt == packets
    assert m.bpf_run_ns is not None and m.bpf_run_ns >= 0
    assert m.server_syscalls is None


def test_unknown_bpf_program_is_noted() -> None:
    probe = PhaseProbe(Accounting(bpf_prog_ids=(2**31 - 1,)))
    probe.start()
    m = probe.stop()
    assert m.bpf_run_ns is None and m.bpf_run_cnt is None
    assert any("BPF" in n for n in m.notes)


def test_perf_counter_reads_its_own_task() -> None:
    try:
        counters = ctxswitch.counters([os.getpid()])
        counters.open()
    except OSError as e:
        pytest.skip(f"perf software counters unavailable: {e}")
    try:
        counters.start()
        for _ in range(5):
            os.sched_yield()
        value = counters.stop()
    finally:
        counters.close()
    assert value >= 0
    assert isinstance(perf.syscall_number(), int)
