"""``python -m bench fuzz``: hostile datagrams against every impl; checks that each survives.

For each impl (and topology) a server is started on a free port and sent a seeded stream
of malformed datagrams (see bench/fuzz_corpus.py) with valid HELLOs interleaved.  Replies
are read concurrently and classified by content: a reply that answers no valid request
is a failure, and so is a valid request left unanswered.  Afterwards the server must be
alive and answer one more HELLO, an eBPF program must still be loaded and attached, and
the kernel log must hold no new BUG/WARNING/Oops.

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

import argparse
import errno
import json
import select
import socket
import subprocess
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.fuzz_corpus import Corpus, Datagram, reply_keys
from bench.impl.api import Accounting, ImplError, RunningServer, ServerConfig
from bench.kernel_log import marked_watch
from bench.protocol import make_reply

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
MAX_COUNT = 10_000_000
RETRY_AFTER_S = 1.0  # a valid request unanswered this long is sent once more
GIVE_UP_AFTER_S = 2.0  # ... and counted missing this long after the retry
QUIET_S = 0.2  # how long to listen for late replies once everything is answered
HEALTH_EVERY_S = 0.2
FINAL_HELLO_TRIES = 3
CLIENT_BUFFER = 4 << 20
SEND_BATCH = 64
EXAMPLES_KEPT = 5


def time_limit_s(count: int) -> float:
    """Upper bound on one impl's fuzz phase: generous, but finite."""
    return 60.0 + count / 1000.0


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
    from bench.topology import entered

    with entered(netns):
        return socket.socket(family, socket.SOCK_DGRAM)


def free_udp_port(addr: str = "127.0.0.1") -> int:
    """A UDP port nobody on this host's loopback uses right now."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# -- checks around the exchange -------------------------------------------------------


def socket_drops(pids: Iterable[int], port: int) -> int | None:
    """Datagrams the kernel dropped at the server's socket(s) on ``port`` (the ``drops``
    column of /proc/PID/net/udp, seen from the server's namespace), None without a pid."""
    total: int | None = None
    for pid in pids:
        for name in ("udp", "udp6"):
            try:
                lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                if len(fields) > 12 and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    total = (total or 0) + int(fields[-1])
        if total is not None:
            return total
    return total


def _run_quiet(argv: list[str]) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None


def bpf_attachment(accounting: Accounting, interface: str, netns: str | None) -> tuple[bool, str]:
    """Whether the server's BPF programs are still loaded and one of them still attached
    to ``interface`` (``bpftool prog show id N``, ``bpftool net show dev IF``)."""
    ids = accounting.bpf_prog_ids
    gone = []
    for prog_id in ids:
        proc = _run_quiet(["bpftool", "prog", "show", "id", str(prog_id)])
        if proc is None:
            return False, "bpftool not runnable"
        if proc.returncode != 0:
            gone.append(prog_id)
    if gone:
        return False, f"program(s) {gone} no longer loaded"
    prefix = ["ip", "netns", "exec", netns] if netns else []
    proc = _run_quiet([*prefix, "bpftool", "-j", "net", "show", "dev", interface])
    if proc is None or proc.returncode != 0:
        return False, f"bpftool net show dev {interface} failed"
    try:
        listing = json.loads(proc.stdout or "[]")
    except ValueError:
        return False, "bpftool net show: unreadable output"
    attached: set[int] = set()
    for group in listing if isinstance(listing, list) else [listing]:
        for hooks in group.values():
            for hook in hooks if isinstance(hooks, list) else []:
                if isinstance(hook, dict) and "id" in hook:
                    attached.add(int(hook["id"]))
                for prog in hook.get("programs", []) if isinstance(hook, dict) else []:
                    if "id" in prog:
                        attached.add(int(prog["id"]))
    if not attached.intersection(ids):
        return False, f"none of {list(ids)} attached to {interface}"
    return True, f"program(s) {list(ids)} loaded, attached to {interface}"


# -- one impl -------------------------------------------------------------------------


@dataclass
class FuzzResult:
    impl: str
    topology: str
    status: str  # "pass", "fail" or "skipped"
    reason: str | None = None
    seed: int = 0
    malformed_sent: int = 0
    valid_sent: int = 0
    sync_sent: int = 0
    bytes_sent: int = 0
    malformed_by_category: dict[str, int] = field(default_factory=dict)
    malformed_replied: int = 0
    malformed_replied_by_category: dict[str, int] = field(default_factory=dict)
    unexpected_examples: list[str] = field(default_factory=list)
    valid_answered: int = 0
    valid_missing: int = 0
    retries: int = 0
    duplicates: int = 0
    send_errors: dict[str, int] = field(default_factory=dict)
    server_socket_drops: int | None = None
    alive: bool | None = None
    final_hello: bool | None = None
    counters: dict[str, int] | None = None
    bpf_attached: bool | None = None
    bpf_detail: str | None = None
    kernel_log_readable: bool | None = None
    kernel_log_problems: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    failures: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _apply_tally(result: FuzzResult, tally: Tally) -> None:
    result.malformed_sent = tally.malformed_sent
    result.valid_sent = tally.valid_sent
    result.sync_sent = tally.sync_sent
    result.bytes_sent = tally.bytes_sent
    result.malformed_by_category = dict(sorted(tally.by_category.items()))
    result.malformed_replied = tally.malformed_replied
    result.malformed_replied_by_category = dict(sorted(tally.replied_by_category.items()))
    result.unexpected_examples = list(tally.unexpected_examples)
    result.valid_answered = tally.valid_answered
    result.valid_missing = tally.valid_missing
    result.retries = tally.retries
    result.duplicates = tally.duplicates
    result.send_errors = dict(tally.send_errors)
    result.elapsed_s = tally.elapsed_s


def judge(result: FuzzResult, tally: Tally) -> None:
    """Fill ``result.failures`` and ``result.status`` from what was observed."""
    failures = result.failures
    if tally.stopped:
        failures.append(f"stopped early: {tally.stopped}")
    if tally.malformed_replied:
        cats = ", ".join(f"{k} {v}" for k, v in sorted(tally.replied_by_category.items()))
        failures.append(f"{tally.malformed_replied} malformed datagram(s) answered ({cats})")
    if tally.valid_missing:
        failures.append(f"{tally.valid_missing} of {tally.valid_total} valid request(s) unanswered")
    if tally.duplicates > tally.retries:
        failures.append(f"{tally.duplicates} duplicate replies for {tally.retries} retries")
    if result.alive is False:
        failures.append("server not alive afterwards")
    if result.final_hello is False:
        failures.append("no reply to the final HELLO")
    if result.bpf_attached is False:
        failures.append(f"BPF program: {result.bpf_detail}")
    if result.kernel_log_problems:
        failures.append(f"kernel log: {len(result.kernel_log_problems)} new problem report(s)")
    result.status = "fail" if failures else "pass"


def fuzz_server(
    server: RunningServer,
    *,
    impl: str,
    kind: str,
    topology: str,
    addr: str,
    port: int,
    client_netns: str | None,
    server_netns: str | None,
    interface: str,
    count: int,
    seed: int,
    watch: Any | None = None,
) -> FuzzResult:
    """Fuzz an already running ``server``; the caller starts and stops it."""
    result = FuzzResult(impl=impl, topology=topology, status="fail", seed=seed)
    accounting = server.accounting()
    drops_before = socket_drops(accounting.pids, port)
    corpus = Corpus(seed)
    deadline = time.monotonic() + time_limit_s(count)
    with client_socket(addr, port, client_netns) as sock:
        exchange = Exchange(sock, corpus, health=server.health, deadline=deadline)
        tally = exchange.run(corpus.stream(count))
        result.alive = server.health() is None
        result.final_hello = final_hello(sock, corpus) if result.alive else False
    _apply_tally(result, tally)
    drops_after = socket_drops(accounting.pids, port)
    if drops_before is not None and drops_after is not None:
        result.server_socket_drops = drops_after - drops_before
    try:
        result.counters = dict(server.counters())
    except Exception as exc:  # counters of a broken server must not hide the verdict
        result.failures.append(f"counters not readable: {exc}")
    if kind == "ebpf" or accounting.bpf_prog_ids:
        if accounting.bpf_prog_ids:
            result.bpf_attached, result.bpf_detail = bpf_attachment(
                accounting, interface, server_netns
            )
        else:
            result.bpf_attached, result.bpf_detail = False, "the impl reported no BPF program ids"
    if watch is not None:
        result.kernel_log_readable = bool(getattr(watch, "available", True))
        result.kernel_log_problems = list(watch.new_problems())
    judge(result, tally)
    return result


def fuzz_impl(entry: Any, topo: Any, count: int, seed: int) -> FuzzResult:
    """Start ``entry``'s impl in ``topo``, fuzz it, stop it."""
    name: str = entry.name
    if entry.impl is None or not entry.available:
        return FuzzResult(name, topo.name, "skipped", entry.unavailable or "unavailable", seed)
    impl = entry.impl
    try:
        impl.prepare()
    except ImplError as exc:
        return FuzzResult(
            name, topo.name, "fail", f"build failed: {exc}", seed, failures=[f"build failed: {exc}"]
        )
    port = free_udp_port()
    config = ServerConfig(
        addr=topo.server_addr,
        port=port,
        netns=topo.server_netns,
        interface=topo.server_interface,
    )
    watch = marked_watch()
    try:
        server = impl.start(config)
    except ImplError as exc:
        return FuzzResult(
            name,
            topo.name,
            "fail",
            f"failed to start: {exc}",
            seed,
            failures=[f"failed to start: {exc}"],
        )
    try:
        result = fuzz_server(
            server,
            impl=name,
            kind=entry.manifest.kind,
            topology=topo.name,
            addr=topo.server_addr,
            port=port,
            client_netns=topo.client_netns,
            server_netns=topo.server_netns,
            interface=topo.server_interface,
            count=count,
            seed=seed,
            watch=watch,
        )
    finally:
        server.stop()
    if watch is None:
        result.kernel_log_readable = False
    return result


# -- the command ----------------------------------------------------------------------


def _usage(message: str) -> Exception:
    from bench.cli import UsageError

    return UsageError(message)


def run_fuzz(
    names: list[str],
    topologies: list[str],
    count: int,
    seed: int,
    progress: Callable[[str], None] = lambda _line: None,
) -> list[FuzzResult]:
    """Fuzz the named impls (all registered ones when empty) in every topology."""
    from bench.impl.registry import discover
    from bench.topology import TopologyError, open_topology

    entries = discover()
    unknown = [n for n in names if n not in entries]
    if unknown:
        raise _usage(f"unknown impl {unknown[0]!r} (known: {', '.join(sorted(entries))})")
    selected = [entries[n] for n in dict.fromkeys(names or sorted(entries))]
    results: list[FuzzResult] = []
    for topo_name in topologies:
        try:
            with open_topology(topo_name) as topo:
                for entry in selected:
                    if entry.available:
                        progress(f"fuzz {entry.name} on {topo_name}: {count:,} malformed datagrams")
                    results.append(fuzz_impl(entry, topo, count, seed))
        except TopologyError as exc:
            for entry in selected:
                results.append(
                    FuzzResult(
                        entry.name, topo_name, "skipped", f"topology {topo_name}: {exc}", seed
                    )
                )
    return results


def _yes_no(value: bool | None, na: str = "n/a") -> str:
    return na if value is None else ("yes" if value else "[red]no[/red]")


def results_table(results: list[FuzzResult]) -> Table:
    table = Table(title="fuzz: hostile datagrams (replies classified by content)")
    table.add_column("impl")
    table.add_column("topo")
    for numeric in (
        "malformed sent",
        "valid sent",
        "malformed replied",
        "valid answered",
        "valid missing",
        "retries",
    ):
        table.add_column(numeric, justify="right")
    table.add_column("impl counted rejected", justify="right")
    for column in ("alive", "BPF attached", "kernel log", "result"):
        table.add_column(column)
    for r in results:
        if r.status == "skipped":
            table.add_row(r.impl, r.topology, *[""] * 10, "[yellow]skipped[/yellow]")
            continue
        if r.kernel_log_readable is False:
            klog = "not readable"
        else:
            klog = (
                f"[red]{len(r.kernel_log_problems)} problem(s)[/red]"
                if r.kernel_log_problems
                else "clean"
            )
        verdict = "[green]pass[/green]" if r.status == "pass" else "[red]FAIL[/red]"
        table.add_row(
            r.impl,
            r.topology,
            f"{r.malformed_sent:,}",
            f"{r.valid_sent + r.sync_sent:,}",
            f"{r.malformed_replied:,}",
            f"{r.valid_answered:,}",
            f"{r.valid_missing:,}",
            f"{r.retries:,}",
            f"{r.counters['rejected']:,}" if r.counters and "rejected" in r.counters else "n/a",
            _yes_no(r.alive),
            _yes_no(r.bpf_attached),
            klog,
            verdict,
        )
    return table


def main_fuzz(args: argparse.Namespace, console: Console) -> int:
    """Entry point of ``python -m bench fuzz``; returns the exit status."""
    count: int = args.count
    if not 1 <= count <= MAX_COUNT:
        raise _usage(f"--count {count}: must be 1..{MAX_COUNT:,}")
    topologies = list(dict.fromkeys(args.topology or ["lo"]))
    quiet = bool(args.json)

    def progress(line: str) -> None:
        if not quiet:
            console.log(line)

    results = run_fuzz(list(args.impl), topologies, count, args.seed, progress)
    failed = any(r.status == "fail" for r in results)
    if args.json:
        document = {
            "seed": args.seed,
            "count": count,
            "passed": not failed,
            "results": [r.to_json() for r in results],
        }
        print(json.dumps(document, indent=1))
        return EXIT_FAILED if failed else EXIT_OK
    console.print(results_table(results))
    for r in results:
        if r.status == "skipped":
            console.print(f"[yellow]{r.impl} ({r.topology}) skipped: {r.reason}[/yellow]")
        for failure in r.failures:
            console.print(f"[red]{r.impl} ({r.topology}): {failure}[/red]")
        for example in r.unexpected_examples:
            console.print(f"  unexpected reply — {example}")
        for problem in r.kernel_log_problems:
            console.print(f"  kernel log ({r.impl}): {problem}")
        if r.kernel_log_readable is False and r.status != "skipped":
            console.print(f"  {r.impl}: kernel log not readable; not checked")
    return EXIT_FAILED if failed else EXIT_OK
