"""The validity gates against the real client: servers built so that the effect is large
(a delay ramping 0 → 2 ms through the phase, replies alternating fast and 2 ms slow, a rate
ten thousand times what the client can send) fail their gate; a steady server passes.

The servers' delays are seeded draws that dwarf the machine's own noise (tens of µs), so
no gate here hangs on a tight timing threshold.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from bench.analysis import gates
from bench.driver.client import DriverConfig, DriverResult, run_driver
from bench.protocol import make_reply
from tests.test_driver import Server

PHASE_S = 2.0
MS = 1e-3

# (index of the request, seconds since the first one) -> the reply's delay in seconds
Delay = Callable[[int, float], float]


class DelayServer:
    """A HELLO server on a thread: each reply leaves ``delay(n, t)`` after request n came,
    t seconds after the first request.  One request at a time (pingpong, one in flight)."""

    def __init__(self, delay: Delay) -> None:
        self.delay = delay
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port: int = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        count, first = 0, None
        while not self._stop.is_set():
            try:
                datagram, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            now = time.monotonic()
            first = now if first is None else first
            reply = make_reply(datagram)
            if reply is None:
                continue
            until = now + self.delay(count, now - first)
            count += 1
            # sleep most of it, spin the rest: the delay holds to a few µs
            if until - time.monotonic() > 0.3 * MS:
                time.sleep(until - time.monotonic() - 0.2 * MS)
            while time.monotonic() < until:
                pass
            self.sock.sendto(reply, peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        self.sock.close()


def _pingpong(delay: Delay) -> DriverResult:
    server = DelayServer(delay)
    try:
        return run_driver(
            DriverConfig(
                "pingpong", port=server.port, duration_s=PHASE_S, warmup_s=0.0, timeout_s=1.0
            )
        )
    finally:
        server.close()


def _uniform(seed: int, high_s: float) -> Callable[[], float]:
    rng = random.Random(seed)
    return lambda: rng.uniform(0.0, high_s)


def test_a_steady_server_passes_every_latency_gate() -> None:
    noise = _uniform(1, 1 * MS)
    r = _pingpong(lambda n, t: noise())
    assert r.ordered_stride == 1 and len(r.ordered_latency_ns) == r.requests > 500
    warm, steady, independent = gates.latency_gates(r.ordered_latency_ns)
    assert warm.passed, warm.detail
    assert steady.passed, steady.detail
    assert independent.passed, independent.detail


def test_a_delay_ramping_through_the_phase_fails_stationarity() -> None:
    noise = _uniform(2, 1 * MS)
    r = _pingpong(lambda n, t: 2 * MS * min(1.0, t / PHASE_S) + noise())
    lat = r.ordered_latency_ns
    assert len(lat) > 300
    # the ramp is there: the last tenth is slower than the first by most of 2 ms
    tenth = len(lat) // 10
    assert np.median(lat[-tenth:]) - np.median(lat[:tenth]) > 1_000_000
    _, steady, _ = gates.latency_gates(lat)
    assert not steady.passed, steady.detail
    assert not gates.stationarity(lat).passed


def test_replies_alternating_fast_and_slow_fail_independence() -> None:
    noise = _uniform(3, 0.5 * MS)
    r = _pingpong(lambda n, t: 2 * MS * (n % 2) + noise())
    lat = r.ordered_latency_ns
    assert len(lat) > 300
    g = gates.independence(lat)
    assert not g.passed and g.value < -0.5, g.detail
    assert gates.thinning_lag(lat) is None


@pytest.fixture(scope="module")
def correct() -> Iterator[Server]:
    srv = Server("correct")
    try:
        yield srv
    finally:
        srv.stop()


def _rate(port: int, rate_rps: float, **kw: Any) -> DriverResult:
    return run_driver(
        DriverConfig(
            "rate", port=port, rate_rps=rate_rps, warmup_s=0.0, timeout_s=0.2, **kw
        )
    )  # fmt: skip


def _load_held(r: DriverResult) -> gates.Gate:
    assert r.config is not None and r.config.rate_rps is not None and r.schedule is not None
    return gates.load_held(
        r.config.rate_rps,
        r.requests,
        r.duration_s,
        dropped_due=r.schedule.dropped_due,
        due=r.schedule.due,
        arrivals=r.config.arrivals,
    )


def test_a_rate_the_client_cannot_send_fails_load_held(correct: Server) -> None:
    r = _rate(correct.port, 5e7, duration_s=0.3, batch=8)
    assert r.dropped_due is not None and r.dropped_due > 0
    g = _load_held(r)
    assert not g.passed and g.value < 0.5
    assert f"{r.dropped_due} of {r.schedule.due if r.schedule else 0} due sends" in g.detail


@pytest.mark.parametrize("arrivals", ["uniform", "poisson"])
def test_a_rate_the_client_can_send_holds_its_load_and_process(
    correct: Server, arrivals: str
) -> None:
    r = _rate(correct.port, 500.0, duration_s=PHASE_S, arrivals=arrivals)
    held = _load_held(r)
    assert held.passed, held.detail
    assert r.ordered_stride == 1
    process = gates.interarrivals(r.ordered_send_ns, 500.0, arrivals, stride=r.ordered_stride)
    assert process.passed, process.detail


def test_a_spinning_client_is_busy_and_a_blocking_one_is_not() -> None:
    """The CPU gate's input, from the client's own rusage: a client that spins while the
    server takes 2 ms per reply is busy all the phase, a blocking one hardly at all."""
    shares = {}
    for wait in ("block", "spin"):
        server = DelayServer(lambda n, t: 2 * MS)
        try:
            r = run_driver(
                DriverConfig("pingpong", port=server.port, duration_s=1.0, warmup_s=0.0,
                             timeout_s=1.0, wait=wait)
            )  # fmt: skip
        finally:
            server.close()
        shares[wait] = r.client_cpu_share
    assert gates.driver_not_bottleneck(shares["block"]).passed, shares
    # spinning is busy by design (the gate cannot judge it); a loose bar, for steal time
    assert not gates.driver_not_bottleneck(shares["spin"], threshold=0.6).passed, shares


def test_the_driver_reads_its_pinned_cpu_over_the_measured_window() -> None:
    server = DelayServer(lambda n, t: 0.0)
    try:
        pinned = run_driver(
            DriverConfig("flood", port=server.port, duration_s=0.5, warmup_s=0.0, cpu=0)
        )
        free = run_driver(DriverConfig("flood", port=server.port, duration_s=0.2, warmup_s=0.0))
    finally:
        server.close()
    assert pinned.window_cpu_ticks is not None
    busy, idle = pinned.window_cpu_ticks
    share = pinned.window_busy_share
    assert share is not None and share == busy / (busy + idle)
    # a flood keeps its own CPU busy: most of the window, never more than all of it
    assert 0.5 < share <= 1.0
    assert free.window_cpu_ticks is None and free.window_busy_share is None
