"""The client's ordered sample stream and its rate-mode schedule counts.

The stream keeps (send time, latency) of every stride-th request in send order; the
stride doubles when --ordered-cap entries are full.  No timing thresholds: counts, order,
and latencies bounded below by a server's known delay.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.driver.client import (
    DriverConfig,
    DriverError,
    DriverResult,
    driver_binary,
    parse_results,
    run_driver,
)
from bench.system.ports import free_udp_port
from tests.test_driver import Server


@pytest.fixture(scope="module")
def correct() -> Iterator[Server]:
    srv = Server("correct")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def delayed() -> Iterator[Server]:
    srv = Server("delay", "--delay-ms", "2")
    try:
        yield srv
    finally:
        srv.stop()


def _run(port: int, **kw: Any) -> DriverResult:
    kw.setdefault("warmup_s", 0.0)
    kw.setdefault("duration_s", 60.0)
    return run_driver(DriverConfig(port=port, **kw))


def _in_send_order(r: DriverResult) -> None:
    send = r.ordered_send_ns
    assert len(send) == len(r.ordered_latency_ns)
    assert np.all(send >= 0)
    assert np.all(np.diff(send) >= 0), "send times are not in send order"
    assert np.all(r.ordered_latency_ns >= 0), "a kept request was never resolved"


@pytest.mark.parametrize("mode", ["pingpong", "flood"])
def test_every_request_is_kept_below_the_cap(correct: Server, mode: str) -> None:
    extra: dict[str, Any] = {"outstanding": 4} if mode == "pingpong" else {"batch": 8}
    r = _run(correct.port, mode=mode, max_requests=500, sample_cap=1000, **extra)
    assert r.requests == 500
    assert r.ordered_stride == 1 and r.ordered_cap == 65536
    assert len(r.ordered_send_ns) == r.requests
    _in_send_order(r)
    # Stride 1 and a reservoir that holds everything: the same latencies, only ordered.
    assert sorted(r.ordered_latency_ns.tolist()) == sorted(r.samples.tolist())


def test_the_stride_doubles_and_memory_stays_bounded(correct: Server) -> None:
    r = _run(correct.port, mode="pingpong", max_requests=1000, ordered_cap=100, sample_cap=2000)
    assert r.requests == 1000
    # 100 full at request 100 -> stride 2; then 4 at 200, 8 at 400, 16 at 800.
    assert r.ordered_stride == 16
    assert len(r.ordered_send_ns) == math.ceil(1000 / 16) <= 100
    _in_send_order(r)
    assert set(r.ordered_latency_ns.tolist()) <= set(r.samples.tolist())


def test_latencies_keep_their_order_and_the_delay(delayed: Server) -> None:
    r = _run(delayed.port, mode="pingpong", max_requests=50, timeout_s=1.0)
    assert r.replies == 50 and len(r.ordered_latency_ns) == 50
    _in_send_order(r)
    assert np.all(r.ordered_latency_ns >= 2_000_000)
    # One request in flight: each is sent after the previous one's reply came back.
    gaps = np.diff(r.ordered_send_ns)
    assert np.all(gaps >= r.ordered_latency_ns[:-1])


def test_short_requests_are_kept_too(correct: Server) -> None:
    r = _run(correct.port, mode="pingpong", size=8, max_requests=100)
    assert r.requests == 100 and len(r.ordered_send_ns) == 100
    _in_send_order(r)


def test_timeouts_are_kept_at_the_timeout() -> None:
    # Nothing listens: every request times out and is kept at the timeout.
    r = _run(free_udp_port(), mode="pingpong", max_requests=3, timeout_s=0.05)
    assert r.timeouts == 3
    assert r.ordered_latency_ns.tolist() == [50_000_000] * 3


def test_no_cap_keeps_nothing(correct: Server) -> None:
    r = _run(correct.port, mode="pingpong", max_requests=20, ordered_cap=0)
    assert r.requests == 20
    assert len(r.ordered_send_ns) == 0 and len(r.ordered_latency_ns) == 0


def test_a_held_rate_drops_nothing(correct: Server) -> None:
    r = _run(correct.port, mode="rate", rate_rps=1000.0, duration_s=0.5)
    assert r.schedule is not None
    # Uniform at 1000/s over 0.5 s: 500 due, all of them sent (one may be cut by the end).
    assert r.schedule.due == 500
    assert r.schedule.sent == r.requests
    assert r.dropped_due == r.schedule.due - r.requests
    assert r.dropped_due is not None and r.dropped_due <= 1
    assert len(r.ordered_send_ns) == r.requests
    _in_send_order(r)
    # Scheduled at i ms: never sent before.
    assert np.all(r.ordered_send_ns >= np.arange(r.requests) * 1_000_000)


def test_a_rate_the_client_cannot_send_counts_the_dropped(correct: Server) -> None:
    r = _run(correct.port, mode="rate", rate_rps=5e7, duration_s=0.2, batch=8)
    assert r.schedule is not None and not r.schedule.due_estimated
    assert r.schedule.due == 10_000_000
    assert r.dropped_due == r.schedule.due - r.requests > r.schedule.due // 2
    assert r.schedule.max_send_lag_ns > 0


def test_max_requests_caps_what_is_due(correct: Server) -> None:
    r = _run(correct.port, mode="rate", rate_rps=1000.0, max_requests=20)
    assert r.schedule is not None
    assert r.schedule.due == r.requests == 20 and r.dropped_due == 0


def test_pingpong_has_no_schedule(correct: Server) -> None:
    r = _run(correct.port, mode="pingpong", max_requests=10)
    assert r.schedule is None and r.dropped_due is None


def test_the_results_document_declares_the_stream(correct: Server, tmp_path: Path) -> None:
    out, ordered = tmp_path / "r.json", tmp_path / "o.i64"
    proc = subprocess.run(
        [str(driver_binary()), "--no-handshake", f"--port={correct.port}", "--mode=pingpong",
         "--max-requests=300", "--duration=60", "--warmup=0", "--ordered-cap=64",
         f"--out={out}", f"--ordered-out={ordered}"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    raw = json.loads(out.read_text())
    assert raw["ordered"] == {"count": 38, "cap": 64, "stride": 8, "seen": 300}
    assert ordered.stat().st_size == 38 * 16
    assert "schedule" not in raw


def _raw(count: int) -> dict[str, Any]:
    return {
        "counts": {k: 0 for k in ("requests", "replies", "lost", "duplicates", "reordered",
                                  "corrupt", "timeouts")},
        "histogram": {"buckets": []},
        "latency_ns": {"count": 0},
        "duration_s": 1.0, "send_rps": 0.0, "throughput_rps": 0.0,
        "rusage": {}, "samples": {"count": 0, "cap": 0},
        "ordered": {"count": count, "cap": 8, "stride": 1, "seen": count},
    }  # fmt: skip


def test_an_ordered_file_that_disagrees_is_refused() -> None:
    empty = np.zeros(0, dtype=np.int64)
    pairs = np.arange(6, dtype=np.int64)
    r = parse_results(_raw(3), empty, 1, None, pairs)
    assert r.ordered_send_ns.tolist() == [0, 2, 4]
    assert r.ordered_latency_ns.tolist() == [1, 3, 5]
    with pytest.raises(DriverError, match="results say 2"):
        parse_results(_raw(2), empty, 1, None, pairs)
    with pytest.raises(DriverError, match="not pairs"):
        parse_results(_raw(3), empty, 1, None, pairs[:5])
    # Results of a client without the stream read as an empty one.
    old = _raw(0)
    del old["ordered"]
    r = parse_results(old, empty, 1, None)
    assert len(r.ordered_send_ns) == 0 and r.ordered_stride == 1
