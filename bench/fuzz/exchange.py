"""The fuzz exchange: a seeded stream of hostile datagrams sent to one server over one
connected socket, every reply classified by content (bench/fuzz/corpus.py tags them).

Pacing: a server's receive buffer must never overflow, or valid requests would be lost
for reasons that say nothing about the server.  A server consumes its datagrams in
order, so the reply to a valid request proves that everything sent before it has been
read; the sender keeps the estimated memory of the datagrams sent since the last such
proof below half the default receive buffer, sending an extra valid HELLO ("sync") when
it needs a proof and none is on its way.

Speed: the sender is plain Python (nonblocking send/recv on one connected socket).
Measured here, 100,000 malformed datagrams (~100 MB in all, oversized ones included) take
2-4 s per impl, bounded by the servers rather than the sender, so no native helper is
needed.
"""

from __future__ import annotations

import errno
import select
import socket
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.fuzz.corpus import Corpus, Datagram, reply_keys
from bench.protocol import make_reply
from bench.system.netns import entered

RETRY_AFTER_S = 1.0  # a valid request unanswered this long is sent once more
GIVE_UP_AFTER_S = 2.0  # ... and counted missing this long after the retry
QUIET_S = 0.2  # how long to listen for late replies once everything is answered
HEALTH_EVERY_S = 0.2
FINAL_HELLO_TRIES = 3
CLIENT_BUFFER = 4 << 20
SEND_BATCH = 64
EXAMPLES_KEPT = 5


# -- pacing ---------------------------------------------------------------------------


def receive_budget() -> int:
    """Bytes of socket memory the datagrams in flight may take: half the default buffer."""
    try:
        return int(Path("/proc/sys/net/core/rmem_default").read_text()) // 2
    except (OSError, ValueError):
        return 212_992 // 2


def truesize(length: int) -> int:
    """An upper estimate of the socket memory a queued datagram of ``length`` bytes takes.

    Measured on 6.x loopback with one datagram queued (the worst case: page fragments
    are not shared with neighbours): 1280 bytes up to ~200 bytes of payload, 2304 up to
    ~630, 4352 for 1472, 16640 for 4000, 196835 for 65507.
    """
    return 2 * (1 << (length + 384 - 1).bit_length()) + 256


# -- the exchange ---------------------------------------------------------------------


@dataclass
class _Pending:
    data: bytes
    pos: int
    sent_at: float
    retried: bool = False


@dataclass
class Tally:
    """What one fuzz exchange sent and got back."""

    malformed_sent: int = 0
    valid_sent: int = 0
    sync_sent: int = 0
    bytes_sent: int = 0
    by_category: Counter[str] = field(default_factory=Counter)
    malformed_replied: int = 0
    replied_by_category: Counter[str] = field(default_factory=Counter)
    unexpected_examples: list[str] = field(default_factory=list)
    larger_than_request: int = 0
    valid_answered: int = 0
    valid_missing: int = 0
    retries: int = 0
    duplicates: int = 0
    send_errors: Counter[str] = field(default_factory=Counter)
    stopped: str | None = None  # why sending stopped early, if it did
    elapsed_s: float = 0.0

    @property
    def valid_total(self) -> int:
        return self.valid_sent + self.sync_sent


class Exchange:
    """Sends a stream to one server over ``sock`` (connected to it) and classifies replies.

    ``health`` returns None while the server is fine (it is polled every few hundred ms);
    ``deadline`` (time.monotonic) bounds the whole exchange.
    """

    def __init__(
        self,
        sock: socket.socket,
        corpus: Corpus,
        *,
        health: Callable[[], str | None] = lambda: None,
        deadline: float,
        budget: int | None = None,
    ) -> None:
        self.sock = sock
        self.corpus = corpus
        self.health = health
        self.deadline = deadline
        self.budget = budget if budget is not None else receive_budget()
        self.tally = Tally()
        self._pending: dict[bytes, deque[_Pending]] = {}
        self._pending_count = 0
        self._answered: set[bytes] = set()
        self._malformed_keys: dict[int, str] = {}
        self._inflight: deque[tuple[int, int]] = deque()  # (pos, cost) not yet proven read
        self._inflight_cost = 0
        self._pos = 0
        self._ack_pos = 0  # everything sent at or before this position was read
        self._latest_valid_pos = 0
        self._next_health = 0.0
        self._last_progress = self._last_sync = time.monotonic()
        self._buf = bytearray(1 << 16)

    # sending

    def _send(self, data: bytes) -> bool:
        while True:
            try:
                self.sock.send(data)
                return True
            except (BlockingIOError, InterruptedError):
                if time.monotonic() >= self.deadline:
                    self.tally.send_errors["EAGAIN"] += 1
                    return False
                self._wait(0.01, writable=True)
            except ConnectionRefusedError:
                # An ICMP port unreachable from an earlier datagram: the server is not
                # listening (right now).  The health check decides what that means.
                self.tally.send_errors["ECONNREFUSED"] += 1
                return False
            except OSError as exc:
                self.tally.send_errors[errno.errorcode.get(exc.errno or 0, str(exc))] += 1
                return False

    def _track(self, cost: int) -> int:
        self._pos += 1
        self._inflight.append((self._pos, cost))
        self._inflight_cost += cost
        return self._pos

    def _send_valid(self, data: bytes, *, sync: bool = False, retry: bool = False) -> None:
        if not self._send(data):
            return
        pos = self._track(truesize(len(data)))
        self._latest_valid_pos = pos
        self.tally.bytes_sent += len(data)
        key = make_reply(data)
        assert key is not None
        if retry:
            return
        if sync:
            self.tally.sync_sent += 1
        else:
            self.tally.valid_sent += 1
        self._pending.setdefault(key, deque()).append(_Pending(data, pos, time.monotonic()))
        self._pending_count += 1

    def _send_malformed(self, datagram: Datagram) -> None:
        self.tally.malformed_sent += 1
        self.tally.by_category[datagram.category] += 1
        for key in reply_keys(datagram.data):
            self._malformed_keys[hash(key)] = datagram.category
        if self._send(datagram.data):
            self._track(truesize(len(datagram.data)))
            self.tally.bytes_sent += len(datagram.data)

    def _valid_in_flight(self) -> bool:
        return self._latest_valid_pos > self._ack_pos

    def _room_for(self, cost: int) -> bool:
        return not self._inflight or self._inflight_cost + cost <= self.budget

    # receiving

    def _release(self, pos: int) -> None:
        if pos <= self._ack_pos:
            return
        self._ack_pos = pos
        self._last_progress = time.monotonic()
        while self._inflight and self._inflight[0][0] <= pos:
            self._inflight_cost -= self._inflight.popleft()[1]

    def _classify(self, reply: bytes) -> None:
        queue = self._pending.get(reply)
        if queue:
            item = queue.popleft()
            if not queue:
                del self._pending[reply]
            self._pending_count -= 1
            self._answered.add(reply)
            self.tally.valid_answered += 1
            # A reply proves the server read every datagram sent before the request (or
            # before its retry, whichever was sent later).
            self._release(item.pos)
            return
        if reply in self._answered:
            self.tally.duplicates += 1
            return
        self.tally.malformed_replied += 1
        category = self._malformed_keys.get(hash(reply), "unknown")
        self.tally.replied_by_category[category] += 1
        if len(self.tally.unexpected_examples) < EXAMPLES_KEPT:
            self.tally.unexpected_examples.append(
                f"{category}: {len(reply)} bytes {reply[:24].hex()}"
            )

    def _drain(self) -> None:
        while True:
            try:
                n = self.sock.recv_into(self._buf)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionRefusedError:
                self.tally.send_errors["ECONNREFUSED"] += 1
                continue
            self._classify(bytes(self._buf[:n]))

    def _wait(self, timeout: float, writable: bool = False) -> None:
        if writable:
            select.select([self.sock], [self.sock], [], timeout)
        else:
            select.select([self.sock], [], [], timeout)
        self._drain()

    # time-outs, health, deadline

    def _expire(self, now: float) -> None:
        """Retry requests unanswered for RETRY_AFTER_S; count missing those whose retry
        also went unanswered for GIVE_UP_AFTER_S."""
        if not self._pending_count:
            return
        for key in list(self._pending):
            queue = self._pending[key]
            for item in list(queue):
                age = now - item.sent_at
                if not item.retried and age >= RETRY_AFTER_S:
                    item.retried = True
                    item.sent_at = now
                    self.tally.retries += 1
                    self._send_valid(item.data, retry=True)
                    item.pos = self._pos
                elif item.retried and age >= GIVE_UP_AFTER_S:
                    queue.remove(item)
                    self._pending_count -= 1
                    self.tally.valid_missing += 1
                    self._release(item.pos)  # read or dropped: either way no longer queued
            if not queue:
                del self._pending[key]

    def _check(self, now: float) -> bool:
        """False when the exchange must stop (server unhealthy, or out of time)."""
        if now >= self.deadline:
            self.tally.stopped = "time limit reached"
            return False
        if now >= self._next_health:
            self._next_health = now + HEALTH_EVERY_S
            problem = self.health()
            if problem is not None:
                self.tally.stopped = f"server stopped: {problem}"
                return False
        return True

    def _give_up_pending(self) -> None:
        self.tally.valid_missing += self._pending_count
        self._pending.clear()
        self._pending_count = 0

    # the loop

    def run(self, stream: Iterable[Datagram]) -> Tally:
        started = time.monotonic()
        self.sock.setblocking(False)
        items: Iterator[Datagram] = iter(stream)
        nxt: Datagram | None = next(items, None)
        sent_since_check = 0
        while nxt is not None:
            if self._room_for(truesize(len(nxt.data))):
                if nxt.valid:
                    self._send_valid(nxt.data)
                else:
                    self._send_malformed(nxt)
                nxt = next(items, None)
                sent_since_check += 1
                if self._inflight_cost * 2 > self.budget and not self._valid_in_flight():
                    self._send_valid(self.corpus.sync().data, sync=True)
                if sent_since_check < SEND_BATCH:
                    continue
            sent_since_check = 0
            self._drain()
            now = time.monotonic()
            self._expire(now)
            if not self._check(now):
                break
            if nxt is not None and not self._room_for(truesize(len(nxt.data))):
                stalled = now - self._last_progress > RETRY_AFTER_S
                if not self._valid_in_flight() or (stalled and now - self._last_sync > 0.5):
                    self._last_sync = now
                    self._send_valid(self.corpus.sync().data, sync=True)
                self._wait(0.05)
        else:
            self._finish()
        if self.tally.stopped is not None:
            self._give_up_pending()
        self.tally.elapsed_s = round(time.monotonic() - started, 3)
        return self.tally

    def _finish(self) -> None:
        """Wait for the outstanding valid requests, then listen a little for late replies."""
        while self._pending_count:
            self._wait(0.05)
            now = time.monotonic()
            self._expire(now)
            if not self._check(now):
                return
        quiet_until = time.monotonic() + QUIET_S
        while time.monotonic() < quiet_until:
            self._wait(max(0.0, quiet_until - time.monotonic()))


def final_hello(sock: socket.socket, corpus: Corpus, timeout_s: float = 1.0) -> bool:
    """True when the server answers one more valid HELLO byte for byte."""
    sock.setblocking(False)
    request = corpus.sync(64).data
    expected = make_reply(request)
    for _ in range(FINAL_HELLO_TRIES):
        try:
            sock.send(request)
        except OSError:
            time.sleep(0.05)
            continue
        until = time.monotonic() + timeout_s
        while time.monotonic() < until:
            select.select([sock], [], [], max(0.0, until - time.monotonic()))
            try:
                if sock.recv(1 << 16) == expected:
                    return True
            except (BlockingIOError, InterruptedError, ConnectionRefusedError):
                continue
    return False


# -- the client socket, possibly in another network namespace -------------------------


def client_socket(addr: str, port: int, netns: str | None) -> socket.socket:
    """A UDP socket connected to ``addr``:``port``, created inside ``netns`` when given."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    if netns is None:
        sock = socket.socket(family, socket.SOCK_DGRAM)
    else:
        sock = _socket_in_netns(netns, family)
    try:
        for opt, force in ((socket.SO_RCVBUF, 33), (socket.SO_SNDBUF, 32)):  # *BUFFORCE
            try:
                sock.setsockopt(socket.SOL_SOCKET, force, CLIENT_BUFFER)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, opt, CLIENT_BUFFER)
        sock.connect((addr, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _socket_in_netns(netns: str, family: int) -> socket.socket:
    """A socket created inside ``netns`` (a socket keeps the namespace it was created in)."""
    with entered(netns):
        return socket.socket(family, socket.SOCK_DGRAM)
