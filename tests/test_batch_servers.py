"""recvmmsg-c and epoll-c beyond conformance: bursts answered completely and exactly (one
recvmmsg() then serves many requests), malformed datagrams skipped inside a batch, the
batch option checked, counters kept, a clean exit on SIGTERM and SIGINT."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.impl.api import ImplError, RunningServer, ServerConfig
from bench.impl.memfd_counters import MEMFD_NAME, CountedServerProcess, find_memfd, read_counters
from bench.impl.registry import Entry, discover
from bench.native.build import build_server
from bench.protocol import make_reply, make_request
from tests.conftest import free_udp_port, unrunnable_reason

ENTRIES = discover()
Starter = Callable[..., tuple[RunningServer, int]]
BATCH_IMPLS = ["recvmmsg-c", "epoll-c"]
BURST = 200
REPLY_WAIT_S = 3.0  # for the first missing reply; a bound, not a timing check
SILENCE_WAIT_S = 0.3
EXIT_WAIT_S = 10.0
RCVBUF = 4 << 20  # the kernel caps it at rmem_max; the reader thread drains it anyway
MALFORMED = [
    b"",
    b"HELLO",
    b"HOWDY there",
    b"hello world",
    b"GOT IT and more",
    b"HELLO " + b"x" * 1467,  # 1473 bytes: one too many
    b"HELL0 world",
]


def _entry(name: str) -> Entry:
    entry = ENTRIES[name]
    reason = unrunnable_reason(entry)
    if reason:
        pytest.skip(f"{name}: {reason}")
    assert entry.impl is not None
    return entry


def _binary(name: str) -> Path:
    """The server binary, built as its controller builds it (the same cached file)."""
    folder = _entry(name).manifest.folder
    return build_server(f"hello-{name}", folder)


@pytest.fixture
def start() -> Iterator[Starter]:
    started: list[RunningServer] = []

    def _start(name: str, **options: str) -> tuple[RunningServer, int]:
        impl = _entry(name).impl
        assert impl is not None
        port = free_udp_port()
        server = impl.start(ServerConfig(port=port, options=options))
        started.append(server)
        return server, port

    yield _start
    for server in started:
        server.stop()


def _exchange(port: int, datagrams: list[bytes], expected: int) -> list[bytes]:
    """Send ``datagrams`` back to back while a thread collects replies; every reply that
    comes, until ``expected`` have come and then a short silence, or a timeout."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    sock.connect(("127.0.0.1", port))
    replies: list[bytes] = []

    def collect() -> None:
        sock.settimeout(REPLY_WAIT_S)
        while True:
            if len(replies) >= expected:
                sock.settimeout(SILENCE_WAIT_S)
            try:
                replies.append(sock.recv(65536))
            except (TimeoutError, ConnectionRefusedError):
                return

    reader = threading.Thread(target=collect)
    reader.start()
    try:
        for datagram in datagrams:
            sock.send(datagram)
    finally:
        reader.join(REPLY_WAIT_S + SILENCE_WAIT_S + 60.0)
        sock.close()
    assert not reader.is_alive()
    return replies


def _burst(count: int) -> list[bytes]:
    return [make_request(24 + i % 200, seq=i, timestamp_ns=i * 7) for i in range(count)]


@pytest.mark.parametrize("name", BATCH_IMPLS)
def test_burst_is_answered_completely_and_exactly(start: Starter, name: str) -> None:
    server, port = start(name)
    requests = _burst(BURST)
    replies = _exchange(port, requests, BURST)
    expected = [make_reply(r) for r in requests]
    assert Counter(replies) == Counter(expected)
    assert server.counters()["answered"] == BURST


@pytest.mark.parametrize("batch", ["1", "8", "1024"])
def test_recvmmsg_burst_with_each_batch_size(start: Starter, batch: str) -> None:
    server, port = start("recvmmsg-c", batch=batch)
    requests = _burst(BURST)
    replies = _exchange(port, requests, BURST)
    assert Counter(replies) == Counter(make_reply(r) for r in requests)
    counters = server.counters()
    assert counters["answered"] == BURST
    # one datagram per call at batch 1; never more than the batch in any call
    assert counters["batches"] * int(batch) >= BURST
    if batch == "1":
        assert counters["batches"] == BURST


def _stopped(pid: int) -> bool:
    """True once the process sits in a job-control stop (state T in /proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rpartition(")")[2].split()[0] == "T"


def _queued_burst(server: RunningServer, port: int, count: int) -> tuple[int, int]:
    """Queue ``count`` requests while the server is stopped (SIGSTOP, and seen stopped, so
    no call of its own takes part of them), resume it and take every reply; the counter
    that tells calls (recvmmsg) or wake-ups (epoll) before and after."""
    assert isinstance(server, CountedServerProcess)
    key = "batches" if "batches" in server.counters() else "wakeups"
    os.kill(server.pid, signal.SIGSTOP)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _ in range(10_000):
            if _stopped(server.pid):
                break
            time.sleep(0.001)
        assert _stopped(server.pid)
        before = server.counters()[key]
        sock.connect(("127.0.0.1", port))
        requests = _burst(count)
        for request in requests:
            sock.send(request)  # on lo, queued at the server when send() returns
        os.kill(server.pid, signal.SIGCONT)
        sock.settimeout(REPLY_WAIT_S)
        replies = [sock.recv(65536) for _ in requests]
    finally:
        os.kill(server.pid, signal.SIGCONT)
        sock.close()
    assert Counter(replies) == Counter(make_reply(r) for r in requests)
    return before, server.counters()[key]


def test_recvmmsg_takes_a_queued_burst_in_full_batches(start: Starter) -> None:
    server, port = start("recvmmsg-c", batch="32")
    before, after = _queued_burst(server, port, 64)
    assert after - before == 2  # 64 queued, 32 per call


def test_epoll_drains_a_queued_burst_in_one_wakeup(start: Starter) -> None:
    server, port = start("epoll-c")
    before, after = _queued_burst(server, port, 64)
    assert after - before == 1  # level-triggered, drained to EAGAIN


def test_recvmmsg_passes_the_batch_option(start: Starter) -> None:
    server, _ = start("recvmmsg-c", batch="8")
    assert isinstance(server, CountedServerProcess)
    argv = Path(f"/proc/{server.pid}/cmdline").read_bytes().split(b"\0")
    assert argv[argv.index(b"--batch") + 1] == b"8"


def test_recvmmsg_default_batch_comes_from_the_manifest(start: Starter) -> None:
    assert _entry("recvmmsg-c").manifest.options["batch"] == "32"
    server, _ = start("recvmmsg-c")
    assert isinstance(server, CountedServerProcess)
    argv = Path(f"/proc/{server.pid}/cmdline").read_bytes().split(b"\0")
    assert argv[argv.index(b"--batch") + 1] == b"32"


@pytest.mark.parametrize("value", ["0", "1025", "-1", "eight", ""])
def test_recvmmsg_rejects_a_bad_batch_option(value: str) -> None:
    impl = _entry("recvmmsg-c").impl
    assert impl is not None
    with pytest.raises(ImplError, match="batch"):
        impl.start(ServerConfig(port=free_udp_port(), options={"batch": value}))


@pytest.mark.parametrize("value", ["0", "1025", "x"])
def test_recvmmsg_binary_rejects_a_bad_batch(value: str) -> None:
    binary = _binary("recvmmsg-c")
    proc = subprocess.run(
        [str(binary), "--port", str(free_udp_port()), "--batch", value],
        capture_output=True,
        text=True,
        timeout=EXIT_WAIT_S,
    )
    assert proc.returncode == 2
    assert "--batch" in proc.stderr
    assert "READY" not in proc.stdout


@pytest.mark.parametrize("name", BATCH_IMPLS)
def test_mixed_burst_answers_only_requests(start: Starter, name: str) -> None:
    server, port = start(name, **({"batch": "16"} if name == "recvmmsg-c" else {}))
    valid = _burst(100)
    mixed: list[bytes] = []
    for i, request in enumerate(valid):
        mixed.append(request)
        mixed.append(MALFORMED[i % len(MALFORMED)])
    replies = _exchange(port, mixed, len(valid))
    assert Counter(replies) == Counter(make_reply(r) for r in valid)
    assert server.health() is None
    counters = server.counters()
    assert counters["answered"] == len(valid)
    assert counters["rejected"] == len(valid)
    # still serving afterwards
    again = _exchange(port, [b"HELLO\n"], 1)
    assert again == [b"GOT IT"]


@pytest.mark.parametrize("name", BATCH_IMPLS)
def test_ipv6(start: Starter, name: str) -> None:
    if not socket.has_ipv6 or not Path("/proc/net/if_inet6").exists():
        pytest.skip("no IPv6 here")
    impl = _entry(name).impl
    assert impl is not None
    port = free_udp_port()
    try:
        server = impl.start(ServerConfig(addr="::1", port=port))
    except ImplError as exc:
        if "Cannot assign" in str(exc):
            pytest.skip("::1 not configured")
        raise
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.settimeout(REPLY_WAIT_S)
            request = make_request(64, seq=6)
            sock.sendto(request, ("::1", port))
            assert sock.recv(100) == make_reply(request)
    finally:
        server.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("name", BATCH_IMPLS)
def test_signal_stops_cleanly(name: str, sig: signal.Signals) -> None:
    binary = _binary(name)
    port = free_udp_port()
    proc = subprocess.Popen(
        [str(binary), "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"READY"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(REPLY_WAIT_S)
            sock.sendto(b"HELLO there", ("127.0.0.1", port))
            assert sock.recv(100) == make_reply(b"HELLO there")
        proc.send_signal(sig)
        assert proc.wait(EXIT_WAIT_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("name", BATCH_IMPLS)
def test_counters_survive_the_stop(start: Starter, name: str) -> None:
    server, port = start(name)
    assert _exchange(port, [b"HELLO 1", b"nope", b"HELLO 2"], 2)
    server.stop()
    counters = server.counters()
    assert counters["answered"] == 2
    assert counters["rejected"] == 1


def test_memfd_counters_read_native_u64s(tmp_path: Path) -> None:
    path = tmp_path / "counters"
    path.write_bytes(struct.pack("=2Q", 7, 2**40 + 1))
    assert read_counters(path, ("answered", "rejected")) == {
        "answered": 7,
        "rejected": 2**40 + 1,
    }
    assert read_counters(path, ("a", "b", "c")) is None  # shorter than the names
    assert read_counters(tmp_path / "absent", ("a",)) is None


def test_memfd_is_found_only_where_one_is_open() -> None:
    assert find_memfd(os.getpid()) is None
    fd = os.memfd_create(MEMFD_NAME)
    try:
        found = find_memfd(os.getpid())
        assert found is not None and found.name == str(fd)
    finally:
        os.close(fd)
