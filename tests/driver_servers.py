"""HELLO servers that misbehave on purpose, to check what the driver counts.

Run one as ``python tests/driver_servers.py KIND [--port N] [--delay-ms MS] [--every N]
[--lifetime S]``; it binds 127.0.0.1 (port 0 picks a free one), prints ``READY <port>``
and serves until SIGTERM/SIGINT or ``--lifetime`` seconds, whichever comes first.

Kinds:
  correct    the reference behaviour (bench.protocol.make_reply)
  delay      every reply sent --delay-ms after its request arrived
  drop       every --every-th request (by arrival) gets no reply
  duplicate  every reply sent twice
  reorder    replies swapped in pairs (a held reply leaves after 5 ms at the latest)
  corrupt    every --every-th reply has its last byte (padding) flipped
  truncate   every --every-th reply is one byte short
  inline     an in-kernel server, as the client's CPU sees it (root; see serve_inline)

``Refuser`` (needs root) sends ICMP port-unreachable errors to one client socket as fast
as it can, so that the client's sends are refused (ECONNREFUSED) whenever it sends.
"""

from __future__ import annotations

import argparse
import heapq
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.protocol import make_reply, parse_header

KINDS = ("correct", "delay", "drop", "duplicate", "reorder", "corrupt", "truncate", "inline")
HOLD_S = 0.005
Address = tuple[str, int]


@dataclass
class Behaviour:
    kind: str
    delay_s: float = 0.02
    every: int = 10
    arrivals: int = 0
    held: tuple[float, bytes, Address] | None = None
    queue: list[tuple[float, int, bytes, Address]] = field(default_factory=list)
    seen: list[bytes] | None = None  # every datagram received, when given

    def replies(self, datagram: bytes, now: float) -> list[tuple[float, bytes]]:
        """The (send time, payload) pairs ``datagram`` gets; holding is done by the caller."""
        if self.seen is not None:
            self.seen.append(datagram)
        reply = make_reply(datagram)
        if reply is None:
            return []
        self.arrivals += 1
        nth = self.arrivals % self.every == 0
        if self.kind == "delay":
            return [(now + self.delay_s, reply)]
        if self.kind == "drop" and nth:
            return []
        if self.kind == "duplicate":
            return [(now, reply), (now, reply)]
        if self.kind == "corrupt" and nth:
            return [(now, reply[:-1] + bytes([reply[-1] ^ 0xFF]))]
        if self.kind == "truncate" and nth:
            return [(now, reply[:-1])]
        return [(now, reply)]


def serve(sock: socket.socket, behaviour: Behaviour, stop: Callable[[], bool]) -> None:
    """Answers on ``sock`` until ``stop()`` is true (checked at least every 50 ms)."""
    seq = 0
    queue = behaviour.queue
    while not stop():
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, payload, peer = heapq.heappop(queue)
            sock.sendto(payload, peer)
        if behaviour.held and behaviour.held[0] + HOLD_S <= now:
            _, payload, peer = behaviour.held
            behaviour.held = None
            sock.sendto(payload, peer)
        wake = min([0.05] + [q[0] - now for q in queue[:1]])
        if behaviour.held:
            wake = min(wake, behaviour.held[0] + HOLD_S - now)
        ready, _, _ = select.select([sock], [], [], max(wake, 0.0))
        if not ready:
            continue
        datagram, peer = sock.recvfrom(4096)
        now = time.monotonic()
        for at, payload in behaviour.replies(datagram, now):
            if behaviour.kind == "reorder":
                if behaviour.held is None:
                    behaviour.held = (now, payload, peer)
                    continue
                sock.sendto(payload, peer)
                _, older, older_peer = behaviour.held
                behaviour.held = None
                sock.sendto(older, older_peer)
                continue
            seq += 1
            heapq.heappush(queue, (at, seq, payload, peer))


def _spin(until_ns: int, at_most_ns: int) -> None:
    end = min(until_ns, time.monotonic_ns() + at_most_ns)
    while time.monotonic_ns() < end:
        pass


def serve_inline(
    sock: socket.socket, cost_s: float, hold_s: float, lead_s: float, stop: Callable[[], bool]
) -> None:
    """Answers like an in-kernel server looks from the client's CPU (run it SCHED_FIFO on
    the client's CPU): a request costs ``cost_s`` of CPU at once, inside the client's send
    (the client cannot run until it is done); its reply leaves ``lead_s`` before
    ``hold_s`` past the request's timestamp (in rate mode its scheduled send time) and the
    CPU stays taken until ``hold_s`` has passed.  With ``hold_s`` one period of the client's
    rate, the client wakes to a queued reply just when its next request is due.
    """
    held: list[tuple[int, bytes, Address]] = []
    while not stop():
        now = time.monotonic_ns()
        while held and held[0][0] <= now:
            at, payload, peer = held.pop(0)
            sock.sendto(payload, peer)
            _spin(at + int(2 * lead_s * 1e9), int(0.01e9))
            now = time.monotonic_ns()
        wait = 0.05 if not held else min(0.05, max(held[0][0] - now, 0) / 1e9)
        ready, _, _ = select.select([sock], [], [], wait)
        if not ready:
            continue
        datagram, peer = sock.recvfrom(4096)
        reply, header = make_reply(datagram), parse_header(datagram)
        if reply is None:
            continue
        _spin(time.monotonic_ns() + int(cost_s * 1e9), int(0.01e9))
        stamp = header.timestamp_ns if header is not None else 0
        now = time.monotonic_ns()
        at = stamp + int((hold_s - lead_s) * 1e9)
        held.append((min(max(at, now), now + int(1e9)), reply, peer))


@dataclass
class ThreadServer:
    """A server of ``kind`` on a thread of this process (for tests that look at traffic)."""

    kind: str = "correct"
    received: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        serve(self.sock, Behaviour(self.kind, seen=self.received), self._stop.is_set)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        self.sock.close()


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def port_unreachable(client_port: int, server_port: int, size: int = 64) -> bytes:
    """ICMP destination unreachable (port) quoting a datagram client_port -> server_port."""
    lo = socket.inet_aton("127.0.0.1")
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + size, 0, 0, 64, socket.IPPROTO_UDP, 0, lo, lo)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    quoted = ip + struct.pack("!HHHH", client_port, server_port, 8 + size, 0)
    head = struct.pack("!BBHI", 3, 3, 0, 0)
    return struct.pack("!BBHI", 3, 3, _checksum(head + quoted), 0) + quoted


def udp_ports(pid: int) -> list[int]:
    """Local ports of the IPv4 UDP sockets process ``pid`` holds."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = []
    with open(f"/proc/{pid}/net/udp") as table:
        for line in table.readlines()[1:]:
            cols = line.split()
            if cols[9] in inodes:
                ports.append(int(str(cols[1]).split(":")[1], 16))
    return ports


class Refuser:
    """Floods one client socket with port-unreachable errors until ``close`` (or 30 s)."""

    MAX_PACKETS = 5_000_000
    MAX_S = 30.0

    def __init__(self, client_port: int, server_port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        self.packet = port_unreachable(client_port, server_port)
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + self.MAX_S
        while not self._stop.is_set() and self.sent < self.MAX_PACKETS:
            for _ in range(100):
                self.sock.sendto(self.packet, ("127.0.0.1", 0))
            self.sent += 100
            if time.monotonic() >= deadline:
                break

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        self.sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--lifetime", type=float, default=120.0)
    parser.add_argument("--cost-ms", type=float, default=1.0, help="inline: CPU per request")
    parser.add_argument("--hold-ms", type=float, default=2.0, help="inline: reply's delay")
    parser.add_argument("--lead-ms", type=float, default=0.3, help="inline: sent this early")
    parser.add_argument("--cpu", type=int, default=None, help="inline: the client's CPU")
    args = parser.parse_args(argv)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    deadline = time.monotonic() + args.lifetime
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", args.port))
        stop = lambda: stopping.is_set() or time.monotonic() >= deadline  # noqa: E731
        if args.kind == "inline":
            if args.cpu is not None:
                os.sched_setaffinity(0, {args.cpu})
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
            print(f"READY {sock.getsockname()[1]}", flush=True)
            ms = 1e-3
            serve_inline(sock, args.cost_ms * ms, args.hold_ms * ms, args.lead_ms * ms, stop)
            return 0
        print(f"READY {sock.getsockname()[1]}", flush=True)
        behaviour = Behaviour(args.kind, delay_s=args.delay_ms / 1000.0, every=args.every)
        serve(sock, behaviour, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
