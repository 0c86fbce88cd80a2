"""Valid HELLOs from hostile sources: a phase of ``bench fuzz`` that no server may answer.

Each frame is built here (Ethernet, IPv4 and UDP with valid checksums) and injected on the
client's interface with AF_PACKET, so that it carries a source no socket could send from:

- ``source-ip-broadcast``           IP source 255.255.255.255;
- ``source-ip-directed-broadcast``  the broadcast address of the client's subnet
                                    (127.255.255.255 on lo);
- ``source-ip-multicast``           IP source 224.0.0.1;
- ``source-ip-zero``                IP source 0.0.0.0;
- ``source-port-zero``              UDP source port 0;
- ``source-mac-broadcast``          Ethernet source ff:ff:ff:ff:ff:ff, and
- ``source-mac-multicast``          01:00:5e:00:00:01 (group bit set), both with the client's
                                    normal address and port.

A reply to any of them would go to a broadcast or multicast destination (flooding the
segment), to nobody, or to port 0: the stack never delivers the first four to a socket
(martian sources), udp_sendmsg refuses port 0, and a socket's reply to the MAC categories
goes to the address's neighbour entry, never to the group address.  In-place reflectors
(XDP, tc, AF_XDP) must refuse them themselves.

Replies are seen by an AF_PACKET capture on the client's interface, filtered in the kernel
to UDP frames from the server's port.  After each category's frames a control datagram
from the client's normal source must be answered, so that a server that answers nothing (or has
stopped) cannot pass.  The control is an ordinary datagram from the client's socket: on
lo the stack would drop an injected frame from 127.0.0.1 as a martian (route_localnet is
off), so a socket server could never answer an injected control.  Any reply to a hostile
frame seen before the control's reply, or later, counts.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import select
import socket
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from bench.protocol import make_reply
from bench.system.netns import entered

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
SO_ATTACH_FILTER = 26
PACKET_OUTGOING = 4
SIOCGIFHWADDR = 0x8927
SIOCGIFNETMASK = 0x891B

BROADCAST_MAC = b"\xff" * 6
MULTICAST_MAC = bytes.fromhex("01005e000001")
FRAMES_PER_CATEGORY = 3
CONTROL_TRIES = 3
CONTROL_WAIT_S = 1.0
LATE_WAIT_S = 0.2
EXAMPLES_KEPT = 5

CATEGORIES = (
    "source-ip-broadcast",
    "source-ip-directed-broadcast",
    "source-ip-multicast",
    "source-ip-zero",
    "source-port-zero",
    "source-mac-broadcast",
    "source-mac-multicast",
)

MAC_CATEGORIES = ("source-mac-broadcast", "source-mac-multicast")


# -- frames -----------------------------------------------------------------------------


def ones_sum(data: bytes) -> int:
    """The folded 16-bit one's complement sum of ``data`` (zero-padded to even length)."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def udp_ipv4_frame(
    *,
    dst_mac: bytes,
    src_mac: bytes,
    src: str,
    dst: str,
    sport: int,
    dport: int,
    payload: bytes,
    ident: int = 0,
) -> bytes:
    """An Ethernet frame holding one IPv4/UDP datagram, both checksums valid (a UDP sum that
    comes out zero is sent as 0xffff, RFC 768)."""
    saddr, daddr = socket.inet_aton(src), socket.inet_aton(dst)
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    pseudo = saddr + daddr + struct.pack("!BBH", 0, socket.IPPROTO_UDP, len(udp))
    check = (0xFFFF - ones_sum(pseudo + udp)) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", check) + udp[8:]
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        ident & 0xFFFF,
        0x4000,  # DF
        64,
        socket.IPPROTO_UDP,
        0,
        saddr,
        daddr,
    )
    header = header[:10] + struct.pack("!H", 0xFFFF - ones_sum(header)) + header[12:]
    return dst_mac + src_mac + struct.pack("!H", ETH_P_IP) + header + udp


def directed_broadcast(addr: str, netmask: str) -> str:
    """The broadcast address of ``addr``'s subnet."""
    (a,) = struct.unpack("!I", socket.inet_aton(addr))
    (m,) = struct.unpack("!I", socket.inet_aton(netmask))
    return socket.inet_ntoa(struct.pack("!I", (a & m) | (~m & 0xFFFFFFFF)))


@dataclass(frozen=True)
class Spoof:
    """How one category's frames differ from the client's normal ones (None: unchanged)."""

    category: str
    src: str | None = None
    sport: int | None = None
    src_mac: bytes | None = None


def spoofs(directed: str | None) -> list[Spoof]:
    """The hostile sources; the directed broadcast only where the client has a prefix."""
    found = [
        Spoof("source-ip-broadcast", src="255.255.255.255"),
        Spoof("source-ip-directed-broadcast", src=directed) if directed else None,
        Spoof("source-ip-multicast", src="224.0.0.1"),
        Spoof("source-ip-zero", src="0.0.0.0"),
        Spoof("source-port-zero", sport=0),
        Spoof("source-mac-broadcast", src_mac=BROADCAST_MAC),
        Spoof("source-mac-multicast", src_mac=MULTICAST_MAC),
    ]
    return [s for s in found if s is not None]


def payload_for(category: str, n: int) -> bytes:
    """A valid HELLO request naming its category (so that a reply can be attributed)."""
    return f"HELLO spoofed {category} {n}".encode()


# -- interfaces and capture -------------------------------------------------------------


def _ifreq(sock: socket.socket, request: int, ifname: str) -> bytes:
    return fcntl.ioctl(sock.fileno(), request, struct.pack("16s16x", ifname.encode()[:15]))


def link_mac(netns: str | None, ifname: str) -> bytes:
    """The hardware address of ``ifname`` in ``netns`` (all zeros on lo)."""
    with entered(netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        return _ifreq(sock, SIOCGIFHWADDR, ifname)[18:24]


def link_netmask(netns: str | None, ifname: str) -> str | None:
    """The netmask of ``ifname``'s primary IPv4 address, None without one."""
    with entered(netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        try:
            return socket.inet_ntoa(_ifreq(sock, SIOCGIFNETMASK, ifname)[20:24])
        except OSError:
            return None


def source_port_filter(port: int) -> bytes:
    """A classic BPF socket filter: IPv4 UDP frames whose source port is ``port``."""
    code = [
        (0x28, 0, 0, 12),  # ldh [12]            ethertype
        (0x15, 0, 6, ETH_P_IP),  # jeq IPv4, else drop
        (0x30, 0, 0, 23),  # ldb [23]            IP protocol
        (0x15, 0, 4, socket.IPPROTO_UDP),
        (0xB1, 0, 0, 14),  # ldxb 4*([14]&0xf)   IP header length
        (0x48, 0, 0, 14),  # ldh [x + 14]        source port
        (0x15, 0, 1, port),
        (0x06, 0, 0, 0x40000),  # accept
        (0x06, 0, 0, 0),  # drop
    ]
    return b"".join(struct.pack("=HBBI", *insn) for insn in code)


@dataclass(frozen=True)
class Reply:
    dst_mac: bytes
    payload: bytes

    @property
    def to_group(self) -> bool:
        """Sent to a broadcast or multicast MAC (the group bit of the first octet)."""
        return bool(self.dst_mac[0] & 1)


class ReplyCapture:
    """Destination MAC and UDP payload of frames from the server's port arriving on one
    interface (frames this host sends out of it, PACKET_OUTGOING, are left out: on lo each
    is seen twice)."""

    def __init__(self, netns: str | None, ifname: str, port: int) -> None:
        with entered(netns):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            program = ctypes.create_string_buffer(source_port_filter(port))
            fprog = struct.pack("@HP", len(program.raw) // 8, ctypes.addressof(program))
            self.sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
            self.sock.bind((ifname, 0))
            self.sock.setblocking(False)
            self.replies()  # whatever arrived before the filter was attached
        except BaseException:
            self.sock.close()
            raise

    def close(self) -> None:
        self.sock.close()

    def replies(self, timeout: float = 0.0) -> list[Reply]:
        """What arrived so far, waiting up to ``timeout`` for the first frame."""
        found: list[Reply] = []
        if timeout > 0:
            select.select([self.sock], [], [], timeout)
        for _ in range(10_000):  # bounded drain
            try:
                frame, addr = self.sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            if addr[2] == PACKET_OUTGOING or len(frame) < 34:
                continue
            ip = frame[14:]
            ihl = (ip[0] & 0x0F) * 4
            if len(ip) < ihl + 8:
                continue
            (length,) = struct.unpack("!H", ip[ihl + 4 : ihl + 6])
            found.append(Reply(bytes(frame[:6]), bytes(ip[ihl + 8 : ihl + max(length, 8)])))
        return found


# -- the phase --------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoints:
    """Where the frames go: the client's interface and source, the server's address."""

    client_netns: str | None
    client_interface: str
    client_addr: str
    server_netns: str | None
    server_interface: str
    server_addr: str
    port: int


@dataclass
class SpoofedTally:
    sent: dict[str, int] = field(default_factory=dict)
    answered: dict[str, int] = field(default_factory=dict)
    control_sent: int = 0
    control_answered: int = 0
    unicast: dict[str, int] = field(default_factory=dict)  # see _count
    unconfirmed: list[str] = field(default_factory=list)  # categories without a control reply
    unattributed: int = 0  # replies from the server's port matching no frame sent here
    notes: list[str] = field(default_factory=list)


@contextmanager
def _client_socket(ends: Endpoints) -> Iterator[socket.socket]:
    """The client's socket, bound for the whole phase: it sends the control datagrams, and
    replies to the normal source reach it (no ICMP error goes back to the server)."""
    with entered(ends.client_netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.bind((ends.client_addr, 0))
        sock.connect((ends.server_addr, ends.port))
        sock.setblocking(False)
        yield sock


@contextmanager
def _one_cpu() -> Iterator[None]:
    """Keep this thread on one CPU, so that an injected frame and the control datagram sent
    after it cannot overtake each other in two CPUs' backlogs."""
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(affinity)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, affinity)


def run_spoofed(ends: Endpoints, frames_per_category: int = FRAMES_PER_CATEGORY) -> SpoofedTally:
    """Send every category's frames, each followed by a control datagram; count replies."""
    tally = SpoofedTally()
    netmask = link_netmask(ends.client_netns, ends.client_interface)
    directed = directed_broadcast(ends.client_addr, netmask) if netmask else None
    if directed is None or directed == ends.client_addr:
        tally.notes.append(f"{ends.client_interface} has no subnet: no directed broadcast sent")
        directed = None
    client_mac = link_mac(ends.client_netns, ends.client_interface)
    server_mac = link_mac(ends.server_netns, ends.server_interface)
    expected: dict[bytes, str] = {}
    with entered(ends.client_netns):
        inject = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    capture: ReplyCapture | None = None
    try:
        inject.bind((ends.client_interface, 0))
        capture = ReplyCapture(ends.client_netns, ends.client_interface, ends.port)
        with _client_socket(ends) as client, _one_cpu():
            sport = client.getsockname()[1]
            ident = os.getpid() & 0xFFFF
            for spoof in spoofs(directed):
                tally.sent[spoof.category] = 0
                tally.answered[spoof.category] = 0
                for n in range(frames_per_category):
                    payload = payload_for(spoof.category, n)
                    reply = make_reply(payload)
                    assert reply is not None
                    expected[reply] = spoof.category
                    ident += 1
                    frame = udp_ipv4_frame(
                        dst_mac=server_mac,
                        src_mac=client_mac if spoof.src_mac is None else spoof.src_mac,
                        src=spoof.src or ends.client_addr,
                        dst=ends.server_addr,
                        sport=sport if spoof.sport is None else spoof.sport,
                        dport=ends.port,
                        payload=payload,
                        ident=ident,
                    )
                    inject.send(frame)
                    tally.sent[spoof.category] += 1
                _control(client, capture, tally, expected, spoof.category)
            for late in capture.replies(LATE_WAIT_S):
                _count(tally, expected, late)
            _drain(client)
    finally:
        inject.close()
        if capture is not None:
            capture.close()
    return tally


def _drain(sock: socket.socket) -> None:
    for _ in range(10_000):
        try:
            sock.recv(65536)
        except (BlockingIOError, InterruptedError, ConnectionRefusedError):
            return


def _count(tally: SpoofedTally, expected: dict[bytes, str], reply: Reply) -> bool:
    """Count one reply; True when it is a control reply.

    A reply to a source-MAC category sent to a unicast MAC went where the stack's neighbour
    entry for the (normal) source address says, as a socket server's reply does: nothing
    floods, so it is counted apart (``unicast``), not as answering the hostile source."""
    category = expected.get(reply.payload)
    if category == "control":
        tally.control_answered += 1
        return True
    if category is None:
        tally.unattributed += 1
        if len(tally.notes) < EXAMPLES_KEPT:
            tally.notes.append(
                f"unattributed reply: {len(reply.payload)} bytes {reply.payload[:32]!r}"
            )
    elif category in MAC_CATEGORIES and not reply.to_group:
        tally.unicast[category] = tally.unicast.get(category, 0) + 1
    else:
        tally.answered[category] += 1
    return False


def _control(
    client: socket.socket,
    capture: ReplyCapture,
    tally: SpoofedTally,
    expected: dict[bytes, str],
    after: str,
) -> None:
    """A datagram from the normal source; its reply proves the server read what came before
    (and that it answers at all)."""
    for attempt in range(CONTROL_TRIES):
        payload = f"HELLO control after {after} {attempt}".encode()
        reply = make_reply(payload)
        assert reply is not None
        expected[reply] = "control"
        try:
            client.send(payload)
        except OSError as exc:
            tally.notes.append(f"control datagram after {after} not sent: {exc}")
            continue
        tally.control_sent += 1
        until = time.monotonic() + CONTROL_WAIT_S
        while (left := until - time.monotonic()) > 0:
            if [r for r in capture.replies(left) if _count(tally, expected, r)]:
                _drain(client)
                return
    tally.unconfirmed.append(after)
