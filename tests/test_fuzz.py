"""Hostile input: every available impl survives a seeded stream of malformed datagrams, and
the fuzzer itself notices a server that answers what it must not, or loses what it must
answer.  Parametrised over the registry like tests/test_conformance.py."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from bench import PROJECT_ROOT
from bench.fuzz import campaign, checks, spoofed
from bench.fuzz import exchange as fuzz_exchange
from bench.fuzz.campaign import fuzz_impl
from bench.fuzz.checks import FuzzResult
from bench.fuzz.corpus import CATEGORIES, MAX_UDP_PAYLOAD, Corpus, Datagram
from bench.fuzz.exchange import Exchange, Tally, client_socket
from bench.impl.api import ImplError, ServerConfig
from bench.impl.registry import discover
from bench.protocol import DEFAULT_ADDR, MAX_REQUEST, is_request, make_reply
from bench.topology import LOOPBACK, TopologyError, open_topology
from tests.conftest import free_udp_port, unrunnable_reason

ENTRIES = discover()
SHORT_COUNT = 5_000
SEED = 20_240_601


def _skip_reason(name: str) -> str | None:
    return unrunnable_reason(ENTRIES[name])


# -- every impl -----------------------------------------------------------------------


def _fuzz_in(name: str, topology: str) -> FuzzResult:
    if topology == "lo":
        return fuzz_impl(ENTRIES[name], LOOPBACK, SHORT_COUNT, SEED)
    if os.geteuid() != 0:
        pytest.skip(f"topology {topology} needs root")
    try:
        with open_topology(topology) as topo:
            return fuzz_impl(ENTRIES[name], topo, SHORT_COUNT, SEED)
    except TopologyError as exc:
        pytest.skip(f"topology {topology}: {exc}")


@pytest.mark.parametrize("topology", ["lo", "veth"])
@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_impl_survives_fuzz(name: str, topology: str) -> None:
    reason = _skip_reason(name)
    if reason:
        pytest.skip(f"{name}: {reason}")
    result = _fuzz_in(name, topology)
    if result.reason and "already has an XDP program" in result.reason:
        pytest.skip(f"{name}: the machine is shared and {result.reason}")
    summary = f"{name}: {result.failures} {result.unexpected_examples}"
    assert result.malformed_sent == SHORT_COUNT, summary
    assert result.malformed_replied == 0, summary
    assert result.valid_sent + result.sync_sent > 0, summary
    assert result.valid_missing == 0, summary
    assert result.valid_answered == result.valid_sent + result.sync_sent, summary
    assert result.alive is True, summary
    assert result.final_hello is True, summary
    if ENTRIES[name].manifest.kind == "ebpf":
        assert result.bpf_attached is True, summary
    if os.geteuid() == 0:  # AF_PACKET: the spoofed sources run as root only
        assert result.spoofed_sent is not None, (result.spoofed_notes, summary)
        assert set(result.spoofed_sent) == set(spoofed.CATEGORIES), summary
        assert result.spoofed_answered == dict.fromkeys(spoofed.CATEGORIES, 0), summary
        assert not result.spoofed_unconfirmed and not result.spoofed_unattributed, summary
    # The impl's own count agrees (on lo: on veth, oversized datagrams arrive as fragments)
    if topology == "lo" and result.counters and "rejected" in result.counters:
        assert result.counters["rejected"] == SHORT_COUNT, (result.counters, summary)
    assert result.status == "pass", summary


def test_default_server_config_binds_loopback() -> None:
    assert ServerConfig().addr == DEFAULT_ADDR == "127.0.0.1"


@pytest.mark.parametrize(
    "name", sorted(n for n, e in ENTRIES.items() if e.manifest.kind == "userspace")
)
def test_userspace_server_listens_on_loopback_only(name: str) -> None:
    reason = _skip_reason(name)
    if reason:
        pytest.skip(f"{name}: {reason}")
    impl = ENTRIES[name].impl
    assert impl is not None
    impl.prepare()
    server = impl.start(ServerConfig(port=free_udp_port()))
    try:
        for pid in server.accounting().pids:
            sockets = psutil.Process(pid).net_connections(kind="inet")
            assert sockets, f"{name}: pid {pid} has no socket"
            for conn in sockets:
                assert conn.laddr.ip == "127.0.0.1", f"{name} listens on {conn.laddr}"
    finally:
        server.stop()


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_impl_answers_only_on_its_own_address(name: str) -> None:
    """A server told to use 127.0.0.1 ignores a HELLO sent to another loopback address on
    its port (an XDP or tc program sees every packet on lo, so it must check)."""
    reason = _skip_reason(name)
    if reason:
        pytest.skip(f"{name}: {reason}")
    impl = ENTRIES[name].impl
    assert impl is not None
    impl.prepare()
    port = free_udp_port()
    try:
        server = impl.start(ServerConfig(port=port))
    except ImplError as exc:
        if "already has an XDP program" in str(exc):
            pytest.skip(f"{name}: the machine is shared and {exc}")
        raise
    try:
        request = Corpus(SEED).valid(64).data
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(0.3)
            sock.sendto(request, ("127.0.0.2", port))
            with pytest.raises((TimeoutError, ConnectionRefusedError)):
                sock.recvfrom(1 << 16)
            sock.settimeout(2.0)  # and it does answer on its own address
            sock.sendto(request, ("127.0.0.1", port))
            assert sock.recvfrom(1 << 16)[0] == make_reply(request)
    finally:
        server.stop()


# -- the fuzzer notices misbehaviour --------------------------------------------------

Responder = Callable[[bytes], list[bytes]]


@contextmanager
def fake_server(respond: Responder) -> Iterator[int]:
    """A UDP server thread on loopback that answers each datagram with ``respond(data)``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            ready, _, _ = select.select([sock], [], [], 0.05)
            if not ready:
                continue
            data, peer = sock.recvfrom(1 << 16)
            for reply in respond(data):
                sock.sendto(reply, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        sock.close()


def _exchange(port: int, count: int, seed: int = SEED) -> Tally:
    corpus = Corpus(seed)
    with client_socket("127.0.0.1", port, None) as sock:
        exchange = Exchange(sock, corpus, deadline=time.monotonic() + 60)
        return exchange.run(corpus.stream(count))


def _correct(data: bytes) -> list[bytes]:
    reply = make_reply(data)
    return [reply] if reply is not None else []


def test_correct_fake_server_passes() -> None:
    with fake_server(_correct) as port:
        tally = _exchange(port, 2_000)
    assert tally.malformed_replied == 0
    assert tally.valid_missing == 0
    assert tally.valid_answered == tally.valid_total > 0
    assert tally.stopped is None


def test_same_seed_same_stream_whatever_the_pacing() -> None:
    with fake_server(_correct) as port:
        first = _exchange(port, 3_000, seed=11)
    with fake_server(_correct) as port:
        second = _exchange(port, 3_000, seed=11)
    assert first.by_category == second.by_category
    assert first.valid_sent == second.valid_sent


def test_answering_everything_is_caught() -> None:
    def sloppy(data: bytes) -> list[bytes]:  # checks the magic, forgets the length rules
        return [b"GOT IT" + data[6:]] if data[:4] == b"HELL" or data[:3] == b"GOT" else []

    with fake_server(sloppy) as port:
        tally = _exchange(port, 2_000)
    assert tally.malformed_replied > 0
    assert {"hello-oversized", "got-it", "hell0"} <= set(tally.replied_by_category)
    assert tally.valid_missing == 0


def test_larger_reply_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fuzz_exchange, "RETRY_AFTER_S", 0.1)
    monkeypatch.setattr(fuzz_exchange, "GIVE_UP_AFTER_S", 0.1)

    def amplifier(data: bytes) -> list[bytes]:
        reply = make_reply(data)
        return [reply + b"!"] if reply is not None else []

    with fake_server(amplifier) as port:
        tally = _exchange(port, 300)
    assert tally.valid_answered == 0
    assert tally.valid_missing == tally.valid_total > 0
    # each reply, one byte longer than its request, is the reply of no request
    assert tally.malformed_replied == tally.valid_total + tally.retries


def test_lost_reply_is_retried_once_then_counted_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fuzz_exchange, "RETRY_AFTER_S", 0.2)
    monkeypatch.setattr(fuzz_exchange, "GIVE_UP_AFTER_S", 0.3)
    seen: Counter[bytes] = Counter()
    lock = threading.Lock()

    def forgetful(data: bytes) -> list[bytes]:
        reply = make_reply(data)
        if reply is None:
            return []
        with lock:
            seen[data] += 1
            times = seen[data]
        serial = int.from_bytes(data[7:15], "big")
        if serial % 5 == 0 and times == 1:
            return []  # first copy lost: the retry is answered
        if serial % 7 == 0:
            return []  # never answered
        return [reply]

    with fake_server(forgetful) as port:
        tally = _exchange(port, 400)
    assert tally.retries > 0
    assert tally.valid_missing > 0
    assert tally.valid_answered + tally.valid_missing == tally.valid_total
    assert tally.malformed_replied == 0


def test_duplicate_replies_are_counted() -> None:
    def stutter(data: bytes) -> list[bytes]:
        reply = make_reply(data)
        return [reply, reply] if reply is not None else []

    with fake_server(stutter) as port:
        tally = _exchange(port, 500)
    assert tally.duplicates > 0
    assert tally.valid_missing == 0
    result = FuzzResult("fake", "lo", "fail")
    checks.judge(result, tally)
    assert result.status == "fail"
    assert any("duplicate" in f for f in result.failures)


def test_dead_server_stops_the_exchange() -> None:
    with fake_server(_correct) as port:
        corpus = Corpus(SEED)
        with client_socket("127.0.0.1", port, None) as sock:
            exchange = Exchange(
                sock, corpus, health=lambda: "exited with status 9", deadline=time.monotonic() + 60
            )
            tally = exchange.run(corpus.stream(100_000))
    assert tally.stopped is not None and "exited with status 9" in tally.stopped
    assert tally.malformed_sent < 100_000


def test_fuzz_of_a_crashed_server_fails() -> None:
    entry = ENTRIES["blocking-c"]
    if not entry.available or entry.impl is None:
        pytest.skip(f"blocking-c: {entry.unavailable}")
    entry.impl.prepare()
    port = free_udp_port()
    server = entry.impl.start(ServerConfig(port=port))
    try:
        (pid,) = server.accounting().pids
        psutil.Process(pid).kill()
        psutil.Process(pid).wait(10)
        result = campaign.fuzz_server(
            server, impl="blocking-c", kind="userspace", topology="lo", addr="127.0.0.1",
            port=port, client_netns=None, server_netns=None, interface="lo", count=50_000,
            seed=SEED,
        )  # fmt: skip
    finally:
        server.stop()
    assert result.status == "fail"
    assert result.alive is False and result.final_hello is False
    assert result.malformed_sent < 50_000
    assert any("server stopped" in f for f in result.failures), result.failures


# -- spoofed sources ------------------------------------------------------------------


def test_spoofed_frames_carry_valid_checksums() -> None:
    frame = spoofed.udp_ipv4_frame(
        dst_mac=b"\x02" * 6, src_mac=spoofed.BROADCAST_MAC, src="255.255.255.255",
        dst="198.18.0.1", sport=0, dport=3000, payload=b"HELLO x", ident=7,
    )  # fmt: skip
    assert frame[:6] == b"\x02" * 6 and frame[6:12] == spoofed.BROADCAST_MAC
    ip, udp = frame[14:34], frame[34:]
    assert spoofed.ones_sum(ip) == 0xFFFF
    pseudo = ip[12:20] + bytes([0, socket.IPPROTO_UDP]) + len(udp).to_bytes(2, "big")
    assert spoofed.ones_sum(pseudo + udp) == 0xFFFF and udp[6:8] != b"\0\0"
    assert udp[:2] == b"\0\0" and udp[8:] == b"HELLO x"


def test_directed_broadcast_of_a_subnet() -> None:
    assert spoofed.directed_broadcast("127.0.0.1", "255.0.0.0") == "127.255.255.255"
    assert spoofed.directed_broadcast("198.18.0.2", "255.255.255.252") == "198.18.0.3"
    assert [s.category for s in spoofed.spoofs("127.255.255.255")] == list(spoofed.CATEGORIES)
    assert "source-ip-directed-broadcast" not in {s.category for s in spoofed.spoofs(None)}
    for spoof in spoofed.spoofs("127.255.255.255"):
        assert is_request(spoofed.payload_for(spoof.category, 0))


def _lo_ends(port: int) -> spoofed.Endpoints:
    return spoofed.Endpoints(None, "lo", "127.0.0.1", None, "lo", "127.0.0.1", port)


@contextmanager
def raw_reflector(port: int) -> Iterator[None]:
    """A reflector that answers, from an AF_PACKET socket on lo, every HELLO frame for
    ``port`` whatever its source (as an in-place reflector without source checks does)."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    sock.bind(("lo", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            if not select.select([sock], [], [], 0.05)[0]:
                continue
            frame, addr = sock.recvfrom(65536)
            if addr[2] == spoofed.PACKET_OUTGOING or frame[12:14] != b"\x08\x00":
                continue
            ip, udp = frame[14:34], frame[34:]
            if ip[9] != socket.IPPROTO_UDP or int.from_bytes(udp[2:4], "big") != port:
                continue
            reply = make_reply(udp[8 : int.from_bytes(udp[4:6], "big")])
            if reply is None:
                continue
            sock.send(
                spoofed.udp_ipv4_frame(
                    dst_mac=frame[6:12],
                    src_mac=frame[:6],
                    src=socket.inet_ntoa(ip[16:20]),
                    dst=socket.inet_ntoa(ip[12:16]),
                    sport=port,
                    dport=int.from_bytes(udp[:2], "big"),
                    payload=reply,
                )
            )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
        sock.close()


@pytest.mark.root
def test_spoofed_sources_answered_are_caught() -> None:
    if os.geteuid() != 0:
        pytest.skip("AF_PACKET needs root")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # absorbs the controls
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        with raw_reflector(port):
            tally = spoofed.run_spoofed(_lo_ends(port))
    assert tally.sent == dict.fromkeys(spoofed.CATEGORIES, spoofed.FRAMES_PER_CATEGORY)
    assert tally.answered == tally.sent, tally
    assert not tally.unconfirmed and tally.control_answered >= len(spoofed.CATEGORIES)
    result = FuzzResult("fake", "lo", "fail")
    checks.apply_spoofed(result, tally)
    checks.judge(result, Tally())
    assert result.status == "fail"
    assert any("hostile sources answered" in f for f in result.failures), result.failures


@pytest.mark.root
def test_a_silent_server_does_not_pass_the_spoofed_sources(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if os.geteuid() != 0:
        pytest.skip("AF_PACKET needs root")
    monkeypatch.setattr(spoofed, "CONTROL_WAIT_S", 0.1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        tally = spoofed.run_spoofed(_lo_ends(silent.getsockname()[1]), frames_per_category=1)
    assert sum(tally.answered.values()) == 0
    assert tally.unconfirmed == list(spoofed.CATEGORIES)
    result = FuzzResult("fake", "lo", "fail")
    checks.apply_spoofed(result, tally)
    checks.judge(result, Tally())
    assert result.status == "fail"
    assert any("no reply to the control" in f for f in result.failures), result.failures


def test_spoofed_results_survive_json() -> None:
    from bench.fuzz.in_guest import _result

    tally = spoofed.SpoofedTally(
        sent={"source-ip-zero": 3, "source-mac-broadcast": 3},
        answered={"source-ip-zero": 0, "source-mac-broadcast": 2},
        control_sent=2, control_answered=2, unicast={"source-mac-broadcast": 1},
    )  # fmt: skip
    result = FuzzResult("fake", "veth", "fail", seed=3)
    checks.apply_spoofed(result, tally)
    checks.judge(result, Tally())
    assert result.status == "fail"
    again = _result(json.loads(json.dumps(result.to_json())))
    assert again == result
    assert again.spoofed_answered == {"source-ip-zero": 0, "source-mac-broadcast": 2}
    assert FuzzResult("old", "lo", "pass").spoofed_sent is None  # documents without the phase


# -- the corpus -----------------------------------------------------------------------


def _stream(count: int, seed: int = SEED) -> list[Datagram]:
    return list(Corpus(seed).stream(count))


def test_corpus_counts_and_rate() -> None:
    items = _stream(20_000)
    malformed = [d for d in items if not d.valid]
    valid = [d for d in items if d.valid]
    assert len(malformed) == 20_000
    assert 50 < len(valid) < 600  # about one in a hundred


def test_corpus_has_every_category() -> None:
    categories = {d.category for d in _stream(2_000)}
    assert set(CATEGORIES) <= categories
    assert "valid" in categories


def test_corpus_malformed_are_never_requests_and_valid_always_are() -> None:
    for d in _stream(20_000):
        assert is_request(d.data) == d.valid, d


def test_corpus_near_misses() -> None:
    data = [d.data for d in _stream(5_000)]
    assert b"HELLO" in data  # exactly five bytes: the magic and nothing after it
    assert b"HELL" in data
    assert b"GOT IT" in data
    assert any(d.startswith(b"HELL0") for d in data)
    assert any(d.startswith(b"hello ") for d in data)
    assert any(d.startswith(b"HELLO") and len(d) > MAX_REQUEST for d in data)
    flips = [d for d in _stream(5_000) if d.category == "bitflip"]
    assert flips and all(d.data[:5] != b"HELLO" and d.data[5:6] == b" " for d in flips)


def test_corpus_lengths_cover_the_edges() -> None:
    lengths = [len(d.data) for d in _stream(5_000)]
    assert min(lengths) == 0
    assert MAX_REQUEST + 1 in lengths
    assert max(lengths) == MAX_UDP_PAYLOAD == 65_507
    assert any(MAX_REQUEST + 1 < n < MAX_UDP_PAYLOAD for n in lengths)
    assert all(0 <= n <= MAX_UDP_PAYLOAD for n in lengths)
    valid_sizes = {len(d.data) for d in _stream(50_000) if d.valid}
    assert min(valid_sizes) >= 6 and max(valid_sizes) <= MAX_REQUEST
    assert len(valid_sizes) > 100


def test_corpus_is_deterministic_for_a_seed() -> None:
    assert _stream(3_000, seed=5) == _stream(3_000, seed=5)
    assert _stream(3_000, seed=5) != _stream(3_000, seed=6)


def test_valid_requests_carry_unique_tags() -> None:
    corpus = Corpus(SEED)
    replies = [make_reply(corpus.valid(size).data) for size in range(14, 1472, 3)]
    assert len(set(replies)) == len(replies)
    in_stream = [make_reply(d.data) for d in _stream(50_000) if d.valid and len(d.data) >= 14]
    assert len(set(in_stream)) == len(in_stream)


# -- the command ----------------------------------------------------------------------


def _fuzz_cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HELLOBENCH_LEDGER": str(tmp_path / "ledger"), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "bench", "fuzz", *args, "--json"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_fuzz_command_json(tmp_path: Path) -> None:
    proc = _fuzz_cli(["--impl", "blocking-c", "--count", "2000", "--seed", "3"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert document["passed"] is True and document["seed"] == 3
    (row,) = document["results"]
    assert row["impl"] == "blocking-c" and row["topology"] == "lo"
    assert row["status"] == "pass"
    assert row["malformed_sent"] == 2000
    assert row["malformed_replied"] == 0
    assert row["valid_answered"] == row["valid_sent"] + row["sync_sent"]
    assert row["alive"] is True and row["final_hello"] is True
    if os.geteuid() == 0:
        assert sum(row["spoofed_sent"].values()) > 0
        assert set(row["spoofed_answered"].values()) == {0}
    assert not list((tmp_path / "ledger").glob("*.json"))


def test_fuzz_command_reports_unavailable_impls_as_skipped(tmp_path: Path) -> None:
    unavailable = sorted(n for n, e in ENTRIES.items() if not e.available)
    if not unavailable:
        pytest.skip("every impl runs here")
    proc = _fuzz_cli(["--impl", unavailable[0], "--count", "10"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)["results"]
    assert row["status"] == "skipped"
    assert row["reason"] == ENTRIES[unavailable[0]].unavailable


@pytest.mark.root
def test_fuzz_command_on_veth(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the veth topology needs root")
    for attempt in range(2):  # the namespaces of a second run must not clash with the first
        proc = _fuzz_cli(["--impl", "blocking-c", "--count", "500", "--topology", "veth"], tmp_path)
        assert proc.returncode == 0, proc.stderr
        (row,) = json.loads(proc.stdout)["results"]
        assert row["status"] == "pass", f"attempt {attempt}: {row['reason']}"
        assert row["topology"] == "veth"


# -- kernel modules, in a guest -------------------------------------------------------


def _guest_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "sharing the host root with a guest needs root"
    try:
        from bench.vm import qemu
        from bench.vm.initramfs import find_busybox
        from bench.vm.kernel import find_guest_kernel

        qemu.qemu_binary()
        find_guest_kernel()
        find_busybox()
    except Exception as exc:  # any missing piece: no guest here
        return str(exc)
    return None


@pytest.mark.vm
@pytest.mark.slow
def test_kernel_modules_survive_fuzz_in_a_guest(tmp_path: Path) -> None:
    reason = _guest_skip_reason()
    if reason:
        pytest.skip(f"no guest: {reason}")
    from bench.fuzz.in_guest import fuzz_in_vm

    names = sorted(n for n, e in ENTRIES.items() if e.manifest.kind == "kernel-module")
    if not names:
        pytest.skip("no kernel-module impl registered")
    run = fuzz_in_vm(names, SHORT_COUNT, SEED, timeout_s=900, workdir=tmp_path)
    assert not run.failures, run.failures
    assert {r.impl for r in run.results} == set(names)
    for r in run.results:
        summary = f"{r.impl}: {r.status} {r.reason} {r.failures}"
        assert r.status == "pass", summary
        assert r.malformed_sent == SHORT_COUNT and r.malformed_replied == 0, summary
        assert r.valid_missing == 0 and r.alive and r.final_hello, summary
        assert r.kernel_log_readable is True and not r.kernel_log_problems, summary
        assert r.counters is not None and r.counters.get("rejected") == SHORT_COUNT, summary
