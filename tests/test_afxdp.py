"""afxdp-c: the AF_XDP server answers requests byte-exact on lo and veth with valid
checksums on the wire, leaves everything else to the stack, and a SIGKILL of it leaves no
XDP program, no process and no changed sysctl behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from bench.fuzz import spoofed
from bench.impl.api import RunningServer, ServerConfig
from bench.impl.registry import discover
from bench.protocol import make_reply, make_request
from bench.system.netns import entered, exec_prefix
from bench.topology import Topology, TopologyError, open_topology
from tests.conftest import free_udp_port, unrunnable_reason

NAME = "afxdp-c"
ENTRY = discover().get(NAME)
WAIT_S = 2.0
SILENCE_S = 0.3
ETH_P_ALL = 0x0003
SO_NO_CHECK = 11
LO_SYSCTLS = ("route_localnet", "accept_local")

pytestmark = pytest.mark.skipif(
    ENTRY is None or unrunnable_reason(ENTRY) is not None,
    reason=f"{NAME}: {unrunnable_reason(ENTRY) if ENTRY else 'not found'}",
)


def _start(config: ServerConfig) -> RunningServer:
    assert ENTRY is not None and ENTRY.impl is not None
    ENTRY.impl.prepare()
    return ENTRY.impl.start(config)


@pytest.fixture
def lo_server() -> Iterator[tuple[RunningServer, int]]:
    port = free_udp_port()
    server = _start(ServerConfig(port=port))
    try:
        yield server, port
    finally:
        server.stop()


@pytest.fixture(scope="module")
def veth() -> Iterator[Topology]:
    try:
        with open_topology("veth") as topo:
            yield topo
    except TopologyError as exc:
        pytest.skip(f"veth topology: {exc}")


# -- checksums, computed here -----------------------------------------------------------


def _udp_checksum(src: bytes, dst: bytes, udp: bytes) -> int:
    """The checksum field ``udp`` (its field zeroed) must carry."""
    pseudo = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_UDP, len(udp))
    check = 0xFFFF ^ spoofed.ones_sum(pseudo + udp)
    return check or 0xFFFF


def _frames_from(cap: socket.socket, port: int, deadline: float) -> list[bytes]:
    """The IPv4/UDP frames with source port ``port`` captured until ``deadline``."""
    found = []
    while time.monotonic() < deadline:
        cap.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            frame = cap.recv(1 << 16)
        except TimeoutError:
            break
        if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != socket.IPPROTO_UDP:
            continue
        ihl = (frame[14] & 0xF) * 4
        if struct.unpack("!H", frame[14 + ihl : 16 + ihl])[0] == port:
            found.append(frame)
    return found


def _check_frame(frame: bytes) -> bytes:
    """Assert both checksums of a captured frame are valid; return its UDP payload."""
    ip = frame[14:34]
    assert frame[14] == 0x45, "IPv4 without options"
    assert spoofed.ones_sum(ip) == 0xFFFF, f"IPv4 header checksum wrong: {ip.hex()}"
    tot_len = struct.unpack("!H", ip[2:4])[0]
    udp = frame[34 : 14 + tot_len]
    ulen, check = struct.unpack("!HH", udp[4:8])
    assert ulen == len(udp)
    assert check != 0, "the reply carries a checksum"
    want = _udp_checksum(ip[12:16], ip[16:20], udp[:6] + bytes(2) + udp[8:])
    assert check == want, f"UDP checksum {check:#06x}, want {want:#06x}"
    return udp[8:]


def _raw_request(port: int, src_port: int, payload: bytes, bad: bool = False) -> bytes:
    """An IPv4/UDP datagram 127.0.0.1 -> 127.0.0.1:port with a full checksum (wrong if
    ``bad``), for a raw socket with IP_HDRINCL."""
    addr = socket.inet_aton("127.0.0.1")
    udp = struct.pack("!HHHH", src_port, port, 8 + len(payload), 0) + payload
    check = _udp_checksum(addr, addr, udp) ^ (0x0101 if bad else 0)
    udp = udp[:6] + struct.pack("!H", check) + udp[8:]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, addr, addr)
    header = header[:10] + struct.pack("!H", 0xFFFF ^ spoofed.ones_sum(header)) + header[12:]
    return header + udp


# -- lo -----------------------------------------------------------------------------------


def test_startup_reports_copy_mode_generic_xdp_on_lo(
    lo_server: tuple[RunningServer, int],
) -> None:
    server, _ = lo_server
    note = server.accounting().note
    assert "skb XDP, copy AF_XDP" in note
    assert server.accounting().bpf_prog_ids
    for name in LO_SYSCTLS:
        assert _lo_sysctl(name) == "1", f"{name} held while serving on lo"


def test_every_reply_has_valid_checksums_on_the_wire(
    lo_server: tuple[RunningServer, int],
) -> None:
    """Requests with a partial checksum (a local socket), none (SO_NO_CHECK) and a full one
    (a raw socket): every reply captured on lo carries a valid IPv4 and UDP checksum."""
    _, port = lo_server
    sizes = [6, 7, 24, 63, 64, 1471, 1472]
    cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    cap.bind(("lo", 0))
    expected: list[bytes] = []
    with cap, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as plain:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as nocheck:
            nocheck.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
            plain.settimeout(WAIT_S)
            nocheck.settimeout(WAIT_S)
            for sock in (plain, nocheck):
                for size in sizes:
                    request = make_request(size, seq=size)
                    sock.sendto(request, ("127.0.0.1", port))
                    reply = sock.recv(1 << 16)
                    assert reply == make_reply(request)
                    expected.append(reply)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
            listener.bind(("127.0.0.1", 0))
            listener.settimeout(WAIT_S)
            src_port = listener.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw:
                for size in sizes:
                    request = make_request(size, seq=1000 + size)
                    raw.sendto(_raw_request(port, src_port, request), ("127.0.0.1", 0))
                    assert listener.recv(1 << 16) == make_reply(request)
                    expected.append(make_reply(request) or b"")
                # a wrong full checksum is dropped, as the stack drops it
                raw.sendto(_raw_request(port, src_port, b"HELLO bad sum", True), ("127.0.0.1", 0))
                listener.settimeout(SILENCE_S)
                with pytest.raises(TimeoutError):
                    listener.recv(1 << 16)
        frames = _frames_from(cap, port, time.monotonic() + SILENCE_S)
    payloads = [_check_frame(frame) for frame in frames]
    assert sorted(payloads) == sorted(expected)


def test_other_traffic_goes_to_the_stack(lo_server: tuple[RunningServer, int]) -> None:
    """Datagrams for the port that are not requests are passed (and counted rejected), not
    answered; a HELLO to another port reaches that port's socket untouched."""
    server, port = lo_server
    before = server.counters()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(SILENCE_S)
        for data in (b"HOWDY there", b"HELLO", b"", b"hello world"):
            sock.sendto(data, ("127.0.0.1", port))
            with pytest.raises(TimeoutError):
                sock.recv(1 << 16)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
            other.bind(("127.0.0.1", 0))
            other.settimeout(WAIT_S)
            request = make_request(64, seq=7)
            sock.sendto(request, other.getsockname())
            data, source = other.recvfrom(1 << 16)
            assert (data, source[1]) == (request, sock.getsockname()[1])
    after = server.counters()
    assert after["rejected"] - before["rejected"] == 4
    assert after["answered"] == before["answered"]
    assert after["passed"] > before["passed"]  # the HELLO to the other port
    assert server.health() is None


@contextmanager
def _forwarding(netns: str | None) -> Iterator[None]:
    """IPv4 forwarding on in the server's namespace (never the host's), so that the XDP
    program's route lookups answer (bpf_fib_lookup() looks nothing up without it)."""
    if netns is None:
        yield
        return
    path = Path("/proc/sys/net/ipv4/conf/all/forwarding")
    with entered(netns):
        before = path.read_text()
        path.write_text("1")
    try:
        yield
    finally:
        with entered(netns):
            path.write_text(before)


def _spoofed_ends(topo: Topology | None, port: int) -> spoofed.Endpoints:
    if topo is None:
        return spoofed.Endpoints(None, "lo", "127.0.0.1", None, "lo", "127.0.0.1", port)
    assert topo.client_interface is not None and topo.client_addr is not None
    return spoofed.Endpoints(
        topo.client_netns, topo.client_interface, topo.client_addr,
        topo.server_netns, topo.server_interface, topo.server_addr, port,
    )  # fmt: skip


@pytest.mark.parametrize("where", ["lo", "veth"])
def test_hostile_sources_get_no_reply(where: str, request: pytest.FixtureRequest) -> None:
    """Valid HELLOs from a group source MAC, source port 0, a broadcast, multicast, zero or
    (veth) directed-broadcast source address: none is answered, and a normal request after
    each one is (bench/fuzz/spoofed.py)."""
    topo: Topology | None = request.getfixturevalue("veth") if where == "veth" else None
    port = free_udp_port()
    with _forwarding(topo.server_netns if topo else None):
        server = _start(topo.server_config(port) if topo else ServerConfig(port=port))
        try:
            tally = spoofed.run_spoofed(_spoofed_ends(topo, port))
        finally:
            server.stop()
    assert set(tally.sent) == set(spoofed.CATEGORIES)
    assert not tally.unconfirmed and not tally.unattributed, tally
    assert tally.answered == dict.fromkeys(spoofed.CATEGORIES, 0), tally


def test_wildcard_address_answers_only_this_host(veth: Topology) -> None:
    """Served on 0.0.0.0, a request for another (transit) address or for the subnet's
    broadcast address in a frame for the server's MAC gets no reply; one for the server's
    own address does."""
    assert veth.client_interface is not None and veth.client_addr is not None
    port = free_udp_port()
    fwd = _forwarding(veth.server_netns)
    fwd.__enter__()
    server = _start(ServerConfig(
        addr="0.0.0.0", port=port, netns=veth.server_netns, interface=veth.server_interface,
        peer=veth.peer,
    ))  # fmt: skip
    server_mac = spoofed.link_mac(veth.server_netns, veth.server_interface)
    client_mac = spoofed.link_mac(veth.client_netns, veth.client_interface)
    with entered(veth.client_netns):
        inject = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cap = spoofed.ReplyCapture(veth.client_netns, veth.client_interface, port)
    answered: list[str] = []
    try:
        inject.bind((veth.client_interface, 0))
        client.bind((veth.client_addr, 0))
        client.settimeout(WAIT_S)
        for n, dst in enumerate(("192.0.2.77", "198.18.0.3", "198.18.0.2")):
            payload = f"HELLO for {dst}".encode()
            inject.send(spoofed.udp_ipv4_frame(
                dst_mac=server_mac, src_mac=client_mac, src=veth.client_addr, dst=dst,
                sport=client.getsockname()[1], dport=port, payload=payload, ident=n,
            ))  # fmt: skip
            valid = make_request(24, seq=n)
            client.sendto(valid, (veth.server_addr, port))
            assert client.recv(1 << 16) == make_reply(valid)
            replies = [r.payload for r in cap.replies()]
            if make_reply(payload) in replies:
                answered.append(dst)
    finally:
        cap.close()
        inject.close()
        client.close()
        server.stop()
        fwd.__exit__(None, None, None)
    assert not answered, f"answered for {answered}"


def _lo_sysctl(name: str, netns: str | None = None) -> str:
    with entered(netns), open(f"/proc/sys/net/ipv4/conf/lo/{name}") as f:
        return f.read().strip()


def _xdp_on(ifname: str, netns: str | None) -> list[object]:
    out = subprocess.run(
        [*exec_prefix(netns), "ip", "-j", "link", "show", "dev", ifname],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [link["xdp"] for link in json.loads(out) if "xdp" in link]


def _prog_exists(prog_id: int) -> bool:
    proc = subprocess.run(["bpftool", "prog", "show", "id", str(prog_id)], capture_output=True)
    return proc.returncode == 0


def _sigkill_leaves_nothing(config: ServerConfig) -> None:
    before = {name: _lo_sysctl(name, config.netns) for name in LO_SYSCTLS}
    server = _start(config)
    try:
        pid = server.accounting().pids[0]
        (prog_id,) = server.accounting().bpf_prog_ids
        assert _xdp_on(config.interface, config.netns), "attached while serving"
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the server survived SIGKILL"
            time.sleep(0.02)
        deadline = time.monotonic() + 5.0
        while _xdp_on(config.interface, config.netns) or _prog_exists(prog_id):
            assert time.monotonic() < deadline, "XDP program left attached after SIGKILL"
            time.sleep(0.05)
        assert server.health() is not None
    finally:
        server.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert {name: _lo_sysctl(name, config.netns) for name in LO_SYSCTLS} == before


def test_sigkill_on_lo_leaves_no_program_and_no_process() -> None:
    _sigkill_leaves_nothing(ServerConfig(port=free_udp_port()))


# -- veth ---------------------------------------------------------------------------------


def test_veth_replies_byte_exact_and_sigkill_leaves_nothing(veth: Topology) -> None:
    port = free_udp_port()
    config = veth.server_config(port)
    server = _start(config)
    try:
        assert "copy AF_XDP" in server.accounting().note or "zerocopy" in server.accounting().note
        with entered(veth.client_netns):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            cap.bind((veth.client_interface or "", 0))
        expected = []
        with sock, cap:
            sock.settimeout(WAIT_S)
            sock.connect((veth.server_addr, port))
            for size in (6, 7, 24, 64, 1471, veth.max_size):
                request = make_request(size, seq=size)
                sock.send(request)
                reply = sock.recv(1 << 16)
                assert reply == make_reply(request)
                expected.append(reply)
            sock.send(b"HOWDY")
            sock.settimeout(SILENCE_S)
            with pytest.raises(TimeoutError):
                sock.recv(1 << 16)
            frames = _frames_from(cap, port, time.monotonic() + SILENCE_S)
        assert sorted(_check_frame(f) for f in frames) == sorted(expected)
        assert server.counters()["rejected"] == 1
    finally:
        server.stop()
    _sigkill_leaves_nothing(config)


# -- the lo sysctls -----------------------------------------------------------------------


def test_lo_sysctls_are_in_the_ledger_while_held_and_the_cleaner_restores_them() -> None:
    from bench.system import ledger, sysctl

    key = "net.ipv4.conf.lo.accept_local"
    before = sysctl.read(None, key)
    wanted = "0" if before == "1" else "1"
    hold = sysctl.SysctlHold(None, {key: wanted})
    try:
        assert sysctl.read(None, key) == wanted
        (rec,) = [r for r in ledger.records() if r.kind == sysctl.KIND and r.details["key"] == key]
        assert rec.details["value"] == before
        sysctl.restore_recorded(rec)  # what bench cleanup does after a killed run
        assert sysctl.read(None, key) == before
    finally:
        hold.release()
    assert sysctl.read(None, key) == before
    assert not [r for r in ledger.records() if r.kind == sysctl.KIND]


@pytest.mark.parametrize("option", ["bind", "xdp_mode", "wait", "queue"])
def test_a_bad_option_on_lo_fails_before_the_sysctls_are_held(
    option: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.impl.api import ImplError
    from bench.system import ledger, sysctl

    assert ENTRY is not None and ENTRY.impl is not None
    controller = type(ENTRY.impl).start.__globals__  # the controller module's names
    holds: list[sysctl.SysctlHold] = []

    def recorded_hold(*args: object) -> sysctl.SysctlHold:
        holds.append(sysctl.SysctlHold(*args))  # type: ignore[arg-type]
        return holds[-1]

    monkeypatch.setitem(controller, "SysctlHold", recorded_hold)
    before = {name: _lo_sysctl(name) for name in LO_SYSCTLS}
    try:
        with pytest.raises(ImplError, match=f"{option} must be .*'bogus'"):
            _start(ServerConfig(port=free_udp_port(), options={option: "bogus"}))
        assert holds == [], "the lo sysctls were held before the options were checked"
        assert {name: _lo_sysctl(name) for name in LO_SYSCTLS} == before
        assert not [r for r in ledger.records() if r.kind == sysctl.KIND]
    finally:
        for hold in holds:
            hold.release()


def test_refusing_the_lo_sysctls_says_why() -> None:
    from dataclasses import replace

    from bench.host.capabilities import capabilities

    assert ENTRY is not None and ENTRY.impl is not None
    manifest = replace(ENTRY.manifest, options={**ENTRY.manifest.options, "lo_sysctls": "refuse"})
    impl = type(ENTRY.impl)(manifest)
    reason = impl.unavailable_reason(capabilities())
    assert reason is not None and "route_localnet" in reason and "veth" in reason
