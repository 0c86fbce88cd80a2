"""The io_uring servers (impls/iouring-c and its SQPOLL variant): bursts all answered,
malformed datagrams dropped among valid ones, the receive method in the accounting note,
the SQ thread gone after a SIGKILL, and the SQ thread counted as the server's."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.impl.api import Impl, RunningServer, ServerConfig
from bench.impl.process import ServerProcess
from bench.impl.registry import discover
from bench.metrics import ctxswitch, perf, taskcpu, tasks
from bench.protocol import make_reply, make_request
from tests.bench_runs import bench_run
from tests.conftest import free_udp_port, unrunnable_reason
from tests.test_conformance import MALFORMED

ENTRIES = discover()
NAMES = ("iouring-c", "iouring-sqpoll-c")
BURST = 200
REPLY_WAIT_S = 2.0  # liveness bounds, not timing checks
SILENCE_WAIT_S = 0.3
GONE_WAIT_S = 10.0
SQ_PREFIX = "iou-sqp-"

# (impl, server options): the default path and the forced plain-recvmsg fallback
CASES: list[tuple[str, dict[str, str]]] = [
    (name, options) for options in ({}, {"recv": "recvmsg"}) for name in NAMES
]


def _impl(name: str) -> Impl:
    reason = unrunnable_reason(ENTRIES[name])
    if reason:
        pytest.skip(f"{name}: {reason}")
    impl = ENTRIES[name].impl
    assert impl is not None
    return impl


@pytest.fixture(
    scope="module",
    params=CASES,
    ids=[f"{n}-{o.get('recv', 'auto')}" for n, o in CASES],
)
def server(request: pytest.FixtureRequest) -> Iterator[tuple[RunningServer, int, dict[str, str]]]:
    name, options = request.param
    impl = _impl(name)
    port = free_udp_port()
    running = impl.start(ServerConfig(port=port, cpu=_server_cpu(), options=options))
    try:
        yield running, port, options
    finally:
        running.stop()


def _server_cpu() -> int | None:
    return 1 if (os.cpu_count() or 1) >= 2 else None


def _client(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    return sock


def _replies(requests: list[bytes]) -> list[bytes]:
    out = [make_reply(r) for r in requests]
    assert all(r is not None for r in out)
    return sorted(r for r in out if r is not None)


def _drain(sock: socket.socket, want: int, wait_s: float) -> list[bytes]:
    """Replies until ``want`` have come or none came for ``wait_s``."""
    got: list[bytes] = []
    sock.settimeout(wait_s)
    while len(got) < want:
        try:
            got.append(sock.recv(65536))
        except TimeoutError:
            break
    return got


def test_a_burst_is_answered_in_full(server: tuple[RunningServer, int, Any]) -> None:
    _, port, _ = server
    requests = [make_request(24 + i % 100, seq=i, timestamp_ns=i) for i in range(BURST)]
    with _client(port) as sock:
        for req in requests:
            sock.send(req)
        replies = _drain(sock, BURST, REPLY_WAIT_S)
        assert _drain(sock, 1, SILENCE_WAIT_S) == []  # no duplicates
    assert sorted(replies) == _replies(requests)


def test_only_valid_requests_are_answered(server: tuple[RunningServer, int, Any]) -> None:
    _, port, _ = server
    valid = [make_request(64, seq=i, timestamp_ns=0) for i in range(20)]
    with _client(port) as sock:
        for i, req in enumerate(valid):
            for bad in MALFORMED.values():
                sock.send(bad)
            sock.send(req)
            if i % 5 == 0:
                sock.send(b"HELLO")  # five bytes: too short
        replies = _drain(sock, len(valid), REPLY_WAIT_S)
        assert _drain(sock, 1, SILENCE_WAIT_S) == []
    assert sorted(replies) == _replies(valid)


def test_the_receive_method_is_in_the_accounting_note(
    server: tuple[RunningServer, int, dict[str, str]],
) -> None:
    running, _, options = server
    note = running.accounting().note
    # This kernel (6.x) takes the multishot recvmsg and the buffer ring.
    method = "recvmsg" if options.get("recv") == "recvmsg" else "multishot-bufring"
    assert f"recv={method} " in note
    assert running.accounting().pids


@pytest.mark.parametrize("name", NAMES)
def test_sigterm_exits_cleanly_and_frees_the_port(name: str) -> None:
    """Requests in flight hold the socket; the server cancels them before it exits, so
    the port is free at once (a ring torn down with them armed frees it only later)."""
    impl = _impl(name)
    port = free_udp_port()
    running = impl.start(ServerConfig(port=port, cpu=_server_cpu()))
    assert isinstance(running, ServerProcess)
    with _client(port) as sock:
        sock.send(make_request(64, seq=1, timestamp_ns=0))
        assert _drain(sock, 1, REPLY_WAIT_S)
    running.stop()  # SIGTERM
    assert running._proc.returncode == 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", port))


def _sq_threads(pid: int) -> list[int]:
    return [
        tid
        for tid in tasks.thread_ids(pid)
        if (tasks.read_text(f"/proc/{pid}/task/{tid}/comm") or "").startswith(SQ_PREFIX)
    ]


def _tasks_named(comm: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        for tid in tasks.thread_ids(int(pid)):
            if (tasks.read_text(f"/proc/{pid}/task/{tid}/comm") or "").strip() == comm:
                found.append(f"{pid}/{tid}")
    return found


def test_the_sqpoll_server_has_its_sq_thread_and_says_so() -> None:
    impl = _impl("iouring-sqpoll-c")
    with impl.start(ServerConfig(port=free_udp_port(), cpu=_server_cpu())) as running:
        (pid,) = running.accounting().pids
        sq = _sq_threads(pid)
        assert len(sq) == 1
        note = running.accounting().note
        assert "submit=sqpoll" in note and f"{SQ_PREFIX}{pid} (tid {sq[0]})" in note
        if _server_cpu() is not None:
            assert os.sched_getaffinity(sq[0]) == {_server_cpu()}  # IORING_SETUP_SQ_AFF


def test_sigkill_leaves_no_sq_thread_and_no_process() -> None:
    impl = _impl("iouring-sqpoll-c")
    port = free_udp_port()
    running = impl.start(ServerConfig(port=port, cpu=_server_cpu()))
    try:
        (pid,) = running.accounting().pids
        assert _sq_threads(pid)
        with _client(port) as sock:  # a request in flight, buffers in use
            sock.send(make_request(64, seq=1, timestamp_ns=0))
            assert _drain(sock, 1, REPLY_WAIT_S)
        os.kill(pid, signal.SIGKILL)
    finally:
        running.stop()  # reaps it
    deadline = time.monotonic() + GONE_WAIT_S
    while time.monotonic() < deadline and (tasks.exists(pid) or _tasks_named(SQ_PREFIX + str(pid))):
        time.sleep(0.05)
    assert not tasks.exists(pid)
    assert _tasks_named(SQ_PREFIX + str(pid)) == []


def test_the_probes_reach_the_sq_thread() -> None:
    """The per-process probes list /proc/PID/task: the SQ thread is among the threads, its
    counters open and its switches and CPU time are readable."""
    impl = _impl("iouring-sqpoll-c")
    with impl.start(ServerConfig(port=free_udp_port(), cpu=_server_cpu())) as running:
        (pid,) = running.accounting().pids
        (sq,) = _sq_threads(pid)
        assert sq in tasks.thread_ids(pid)
        assert ctxswitch.read_thread(pid, sq) is not None
        assert taskcpu.read_thread(pid, sq) is not None
        try:
            fd = perf.open_counter(perf.PERF_TYPE_SOFTWARE, perf.PERF_COUNT_SW_TASK_CLOCK, sq)
        except perf.PerfError as exc:
            pytest.skip(f"perf counters unavailable here: {exc}")
        os.close(fd)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two CPUs")
def test_a_run_counts_the_sq_thread_as_the_server(tmp_path: Path) -> None:
    _impl("iouring-sqpoll-c")
    args = ["--impl", "iouring-sqpoll-c", "--mode", "pingpong", "--server-levels", "sq_cpu=0"]
    args += ["--duration", "0.5", "--warmup", "0.1", "--trials", "1", "--no-calibrate"]
    args += ["--env", "host", "--server-cpu", "1", "--client-cpu", "0"]
    (row,) = bench_run(tmp_path, args).rows
    assert row.accounting is not None and row.accounting.server_process
    note = row.accounting.note
    assert "recv=multishot-bufring submit=sqpoll sq_cpu=0" in note
    assert f"SQ thread {SQ_PREFIX}" in note and "is a thread of the server process" in note
    assert row.counted is not None and row.counted.replies > 0
    assert row.per_request.server_cpu_ns is not None and row.per_request.server_cpu_ns > 0


def test_disabled_io_uring_makes_the_impl_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    impl = ENTRIES["iouring-c"].impl
    assert impl is not None
    switch = tmp_path / "io_uring_disabled"
    switch.write_text("2\n")
    monkeypatch.setitem(impl.unavailable_reason.__func__.__globals__, "IO_URING_DISABLED", switch)  # type: ignore[attr-defined]
    from bench.host.capabilities import capabilities

    reason = impl.unavailable_reason(capabilities())
    assert reason is not None and "io_uring disabled" in reason
    switch.write_text("0\n")
    assert impl.unavailable_reason(capabilities()) == ENTRIES["iouring-c"].unavailable
