"""The measuring client: what it counts against servers that misbehave on purpose.

No timing thresholds: only counts, and latencies bounded below by a server's known delay.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import protocol
from bench.driver import histogram as hdr
from bench.driver.client import DriverConfig, DriverResult, driver_binary, run_driver
from bench.driver.modes import Mode
from bench.impl.api import ServerConfig
from bench.impl.registry import Entry
from bench.system.ports import free_udp_port
from tests.driver_servers import Refuser, ThreadServer, udp_ports

SERVERS = Path(__file__).resolve().parent / "driver_servers.py"


class Server:
    """A tests/driver_servers.py process, stopped on exit."""

    def __init__(self, kind: str, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVERS), kind, "--lifetime", "120", *extra],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        assert line[:1] == ["READY"], f"test server {kind} did not start"
        self.port = int(line[1])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5.0)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    kind, *extra = request.param
    srv = Server(kind, *extra)
    try:
        yield srv
    finally:
        srv.stop()


def _run(port: int, **kw: Any) -> DriverResult:
    kw.setdefault("warmup_s", 0.0)
    kw.setdefault("duration_s", 60.0)
    return run_driver(DriverConfig(port=port, **kw))


def _consistent(r: DriverResult) -> None:
    assert r.lost == r.requests - r.replies
    # Every request is in the record once: at its RTT, or at the timeout if it timed out.
    assert r.histogram.get_total_count() == r.requests
    assert r.counts["timeouts"] >= r.lost
    assert len(r.samples) == min(r.requests, r.sample_cap)


# ---- servers that misbehave ---------------------------------------------------------


@pytest.mark.parametrize("server", [("delay", "--delay-ms", "20")], indirect=True)
def test_delayed_replies_show_in_latency(server: Server) -> None:
    r = _run(server.port, mode="pingpong", max_requests=20, warmup_s=0.05, timeout_s=1.0)
    assert r.requests == 20 and r.replies == 20
    delay_ns = 20e6
    assert r.latency_ns["min"] is not None and r.latency_ns["min"] >= delay_ns
    assert r.latency_ns["p50"] is not None and r.latency_ns["p50"] >= delay_ns
    assert int(r.samples.min()) >= delay_ns
    _consistent(r)


@pytest.mark.parametrize("server", [("drop", "--every", "10")], indirect=True)
def test_every_tenth_dropped_is_ten_percent_lost(server: Server) -> None:
    r = _run(server.port, mode="pingpong", max_requests=1000, outstanding=8, timeout_s=0.1)
    assert r.requests == 1000
    assert r.lost == 100
    assert r.lost / r.requests == pytest.approx(0.10)
    assert r.timeouts >= 100
    assert r.corrupt == r.duplicates == 0
    _consistent(r)


def _at_or_above(r: DriverResult, ns: float) -> int:
    """How many recordings of the histogram are at ``ns`` or above (to its precision)."""
    return sum(
        item.count_at_value_iterated_to
        for item in r.histogram.get_recorded_iterator()
        if item.value_iterated_to >= ns
    )


@pytest.mark.parametrize("server", [("drop", "--every", "5")], indirect=True)
def test_timed_out_requests_stay_in_the_histogram(server: Server) -> None:
    timeout_s = 0.05
    r = _run(server.port, mode="pingpong", max_requests=500, outstanding=4, timeout_s=timeout_s)
    assert r.requests == 500 and r.replies == 400 and r.lost == 100
    assert r.timeouts == 100 and r.counts["late"] == 0
    # The 100 dropped requests are in the histogram at the timeout, not left out of it...
    assert r.histogram.get_total_count() == r.requests
    assert _at_or_above(r, timeout_s * 1e9) == r.timeouts
    assert int((r.samples >= timeout_s * 1e9).sum()) == r.timeouts
    # ...so the tail shows them: a fifth of the requests took the timeout at least.
    assert r.latency_ns["p90"] is not None and r.latency_ns["p90"] >= timeout_s * 1e9 * 0.999
    assert r.latency_ns["max"] == pytest.approx(timeout_s * 1e9)


@pytest.mark.parametrize("server", [("delay", "--delay-ms", "500")], indirect=True)
def test_replies_of_the_drain_are_not_throughput(server: Server) -> None:
    # 200 requests leave in a few ms; every reply comes 500 ms later, in the drain.
    r = _run(server.port, mode="flood", max_requests=200, batch=4, timeout_s=3.0)
    assert r.requests == r.replies == 200
    assert r.duration_s < 0.5, "the window outlasted the server's delay"
    assert r.throughput_rps == 0.0, f"{r.throughput_rps:.0f}/s of replies none came in"
    assert r.drained == r.counts["drained"] == 200
    _consistent(r)


@pytest.mark.parametrize("server", [("correct",)], indirect=True)
@pytest.mark.parametrize("mode", ["pingpong", "rate", "flood"])
def test_throughput_counts_the_window_only(server: Server, mode: str) -> None:
    extra: dict[str, Any] = {"rate_rps": 2000.0} if mode == "rate" else {}
    r = _run(server.port, mode=mode, duration_s=0.3, batch=4, timeout_s=0.5, **extra)
    in_window = r.replies - r.drained
    assert 0 <= r.drained <= r.replies
    assert r.throughput_rps == pytest.approx(in_window / r.duration_s, rel=1e-6, abs=1e-3)


def _refused_run(mode: Mode, **kw: Any) -> DriverResult:
    """A run whose sends the kernel refuses: ICMP port-unreachable errors keep coming."""
    port = free_udp_port()
    box: list[Refuser] = []
    try:
        return run_driver(
            DriverConfig(mode, port=port, duration_s=0.5, warmup_s=0.0, timeout_s=0.05,
                         batch=1, sample_cap=0, **kw),
            on_measure_start=lambda pid: box.append(Refuser(udp_ports(pid)[0], port)),
            on_measure_end=lambda: box.pop().close(),
        )  # fmt: skip
    finally:
        for refuser in box:
            refuser.close()


def _cpu_share(r: DriverResult) -> float:
    ru = r.client_rusage
    return (ru["utime_ns"] + ru["stime_ns"]) / 1e9 / r.duration_s


@pytest.mark.root
@pytest.mark.parametrize(("mode", "backoff_s"), [("flood", 1e-3), ("rate", 20e-6)])
def test_refused_sends_back_off(mode: Mode, backoff_s: float) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (a raw socket sends the ICMP errors)")
    extra: dict[str, Any] = {"rate_rps": 200_000.0} if mode == "rate" else {}
    r = _refused_run(mode, **extra)
    if mode == "flood":
        # Polling POLLOUT after a refusal spins at 100% CPU; 1 ms sleeps leave it idle.
        assert _cpu_share(r) < 0.5, f"client busy {_cpu_share(r):.0%} of the window"
    refused = r.counts["send_calls"] - r.requests  # batch 1: a call sends one or none
    assert refused > 0, "no send was refused: the test did not test"
    # Every refused send was followed by a back-off; back-offs fit in the window.
    assert r.counts["backoffs"] == refused
    assert refused <= r.duration_s / backoff_s + 1


@pytest.mark.root
def test_rate_mode_stamps_replies_before_it_sends() -> None:
    """A server that answers inline on the client's CPU, as an in-kernel one does: each
    request costs 1 ms inside the client's send; each reply is queued just when the
    client's next request is due, at 90% of what the CPU can serve.  Read first, the reply
    shows its delay plus the base latency measured at a low rate with the same server;
    read after the send, it shows the send's 1 ms as well."""
    if os.geteuid() != 0:
        pytest.skip("needs root (the server runs SCHED_FIFO)")
    cost_s, lead_s = 1e-3, 0.25e-3
    capacity_rps = 1 / (cost_s + 2 * lead_s)  # the server's CPU per request
    rate_rps = 0.9 * capacity_rps
    hold_s = 1 / rate_rps  # replies come with the next request's due time
    cpu = max(os.sched_getaffinity(0))
    ms = [f"{x * 1e3:g}" for x in (cost_s, hold_s, lead_s)]
    srv = Server("inline", "--cpu", str(cpu), "--cost-ms", ms[0], "--hold-ms", ms[1],
                 "--lead-ms", ms[2])  # fmt: skip
    try:
        runs = {
            name: _run(srv.port, mode="rate", rate_rps=rate, cpu=cpu, duration_s=1.0,
                       warmup_s=0.1, timeout_s=0.5)
            for name, rate in (("low", 0.1 * capacity_rps), ("high", rate_rps))
        }  # fmt: skip
    finally:
        srv.stop()
    # The reply can be read once the server lets go of the CPU, hold + lead after the
    # scheduled send; what comes on top is the client's own wake-up and receive.
    visible_ns = (hold_s + lead_s) * 1e9
    over: dict[str, float] = {}
    for name, r in runs.items():
        assert r.requests == r.replies > 0
        p50 = r.latency_ns["p50"]
        assert p50 is not None and p50 >= hold_s * 1e9
        over[name] = p50 - visible_ns
    base_ns = max(over["low"], 0.0)
    assert over["high"] < base_ns + cost_s * 1e9 / 2, (
        f"p50 at 90% load is {over['high'] / 1e3:.0f} us past the reply's delay, "
        f"the base is {base_ns / 1e3:.0f} us: the replies waited for a send"
    )


@pytest.mark.parametrize("server", [("duplicate",)], indirect=True)
def test_duplicated_replies_are_counted_once(server: Server) -> None:
    r = _run(server.port, mode="pingpong", max_requests=300, outstanding=4, timeout_s=0.5)
    assert r.requests == r.replies == 300 and r.lost == 0
    assert 0 < r.duplicates <= r.replies
    assert r.reordered == 0 and r.corrupt == 0
    _consistent(r)


@pytest.mark.parametrize("server", [("reorder",)], indirect=True)
def test_reordered_replies_are_counted(server: Server) -> None:
    r = _run(server.port, mode="pingpong", max_requests=300, outstanding=8, timeout_s=0.5)
    assert r.requests == r.replies == 300 and r.lost == 0
    assert r.reordered > 0
    assert r.duplicates == 0 and r.corrupt == 0
    _consistent(r)


@pytest.mark.parametrize("server", [("correct",)], indirect=True)
@pytest.mark.parametrize("mode", ["pingpong", "rate", "flood"])
def test_correct_server_loses_nothing(server: Server, mode: str) -> None:
    extra: dict[str, Any] = {"rate_rps": 2000.0} if mode == "rate" else {}
    if mode == "flood":
        extra["batch"] = 4  # a Python server keeps up with small batches, a burst of 4
    r = _run(server.port, mode=mode, max_requests=200, timeout_s=1.0, warmup_s=0.05, **extra)
    if mode == "flood":
        # Flood sends as fast as it can: a Python server may drop some; nothing else may go wrong.
        assert r.requests == 200 and r.replies > 0
    else:
        assert r.requests == r.replies == 200 and r.lost == 0
    assert r.corrupt == r.duplicates == r.reordered == 0
    assert r.counts["stale"] == 0
    _consistent(r)


@pytest.mark.parametrize("server", [("correct",)], indirect=True)
def test_short_requests_match_by_order(server: Server) -> None:
    r = _run(server.port, mode="pingpong", size=6, max_requests=100, timeout_s=1.0)
    assert r.requests == r.replies == 100 and r.lost == 0 and r.corrupt == 0
    _consistent(r)


@pytest.mark.parametrize(
    "server", [("corrupt", "--every", "4"), ("truncate", "--every", "4")], indirect=True
)
def test_corrupt_replies_are_counted(server: Server) -> None:
    r = _run(server.port, mode="pingpong", max_requests=200, outstanding=8, timeout_s=0.2)
    assert r.requests == 200
    assert r.corrupt == 50
    assert r.lost == 50 and r.replies == 150
    _consistent(r)


# ---- bad arguments ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {"mode": "pingpong", "size": 5},
        {"mode": "pingpong", "size": 1473},
        {"mode": "pingpong", "duration_s": 0},
        {"mode": "pingpong", "duration_s": -1.0},
        {"mode": "pingpong", "duration_s": math.nan},
        {"mode": "pingpong", "timeout_s": 0},
        {"mode": "pingpong", "outstanding": 0},
        {"mode": "pingpong", "max_requests": 0},
        {"mode": "pingpong", "port": 0},
        {"mode": "rate"},
        {"mode": "rate", "rate_rps": 0.0},
        {"mode": "rate", "rate_rps": -5.0},
        {"mode": "pingpong", "rate_rps": 10.0},
        {"mode": "flood", "size": 10},
        {"mode": "pingpong", "size": 23, "outstanding": 2},
        {"mode": "flood", "busy_poll": True},
        {"mode": "flood", "batch": 0},
        {"mode": "pingpong", "sample_cap": -1},
        {"mode": "burst"},
        {"mode": "pingpong", "netns": ""},
    ],
)
def test_bad_config_is_refused(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        DriverConfig(**kw)


@pytest.mark.parametrize(
    "args",
    [
        ["--duration", "0"],
        ["--duration", "-1"],
        ["--duration", "soon"],
        ["--size", "5"],
        ["--size", "1473"],
        ["--mode", "rate"],
        ["--mode", "flood", "--size", "10"],
        ["--mode", "pingpong", "--size", "10", "--outstanding", "2"],
        ["--mode", "burst"],
        ["--port", "70000"],
        ["--no-such-option"],
        ["stray"],
    ],
)
def test_binary_rejects_bad_arguments_with_status_2(args: list[str]) -> None:
    proc = subprocess.run(
        [str(driver_binary()), "--no-handshake", *args],
        capture_output=True,
        text=True,
        timeout=10,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip()


# ---- bounded memory -------------------------------------------------------------------


def test_memory_stays_bounded_for_a_long_run(registry: dict[str, Entry]) -> None:
    entry = registry["blocking-c"]
    if entry.impl is None or not entry.available:
        pytest.skip(f"blocking-c unavailable: {entry.unavailable}")

    port = free_udp_port()
    with entry.impl.start(ServerConfig(port=port)):
        r = _run(port, mode="pingpong", outstanding=16, max_requests=60_000, sample_cap=500)
    assert r.requests == 60_000
    assert r.sample_cap == 500 and len(r.samples) == 500
    assert r.samples.dtype == np.int64 and int(r.samples.min()) > 0
    assert r.histogram.get_total_count() == r.requests
    # Fixed-size histogram: never more buckets than HdrHistogram(1 ns, 60 s, 3 digits) has.
    assert r.histogram.counts_len == hdr.empty().counts_len
    assert len(r.histogram_encoded) < 64 * 1024


def test_json_histogram_is_bounded(tmp_path: Path) -> None:
    with_server = ThreadServer("correct")
    try:
        out, samples = tmp_path / "r.json", tmp_path / "s.i64"
        proc = subprocess.run(
            [
                str(driver_binary()),
                "--no-handshake",
                f"--port={with_server.port}",
                "--mode=pingpong",
                "--outstanding=4",
                "--max-requests=2000",
                "--duration=60",
                "--warmup=0",
                "--sample-cap=100",
                f"--out={out}",
                f"--samples-out={samples}",
            ],
            capture_output=True,
            timeout=120,
        )
    finally:
        with_server.close()
    assert proc.returncode == 0, proc.stderr
    raw = json.loads(out.read_text())
    assert len(raw["histogram"]["buckets"]) <= hdr.empty().counts_len
    assert raw["samples"] == {"count": 100, "cap": 100, "seen": raw["counts"]["replies"]}
    assert samples.stat().st_size == 100 * 8
    # Each bucket value is the lowest equivalent value of an HdrHistogram bucket.
    layout = hdr.empty()
    for value, count in raw["histogram"]["buckets"]:
        assert count > 0 and layout.get_lowest_equivalent_value(value) == value


# ---- the wire format ----------------------------------------------------------------------


@pytest.mark.parametrize("size", [24, 64, 1472])
def test_requests_match_the_protocol_module(size: int) -> None:
    srv = ThreadServer("correct")
    try:
        r = run_driver(
            DriverConfig(
                "pingpong", port=srv.port, size=size, max_requests=5, warmup_s=0.05,
                duration_s=30.0, timeout_s=1.0,
            )
        )  # fmt: skip
    finally:
        srv.close()
    assert r.requests == r.replies == 5
    assert srv.received, "no request captured"
    warmup = [d for d in srv.received if protocol.parse_header(d).flags]  # type: ignore[union-attr]
    measured = [d for d in srv.received if d not in warmup]
    assert len(measured) == 5
    assert all(
        protocol.parse_header(d).flags == protocol.FLAG_WARMUP  # type: ignore[union-attr]
        for d in warmup
    )
    for datagram in srv.received:
        assert len(datagram) == size
        prefix, flags, seq, stamp = protocol.HEADER.unpack_from(datagram)
        assert prefix == protocol.REQUEST_PREFIX
        assert datagram[protocol.HEADER_SIZE :] == protocol.padding(size)
        assert datagram == protocol.make_request(size, seq=seq, timestamp_ns=stamp, flags=flags)
    seqs = [protocol.HEADER.unpack_from(d)[2] for d in measured]
    assert seqs == list(range(seqs[0], seqs[0] + 5))


def test_short_request_is_the_header_prefix() -> None:
    srv = ThreadServer("correct")
    try:
        r = _run(srv.port, mode="pingpong", size=10, max_requests=3, timeout_s=1.0)
    finally:
        srv.close()
    assert r.replies == 3
    assert srv.received
    for datagram in srv.received:
        assert datagram == protocol.make_request(10)  # seq's high bytes and flags are zero


# ---- fidelity against sockperf ------------------------------------------------------------

PING_PONG_OUTPUT = """\
sockperf: \x1b[2;35m== version #3.7-no.git == \x1b[0m
sockperf[CLIENT] send on:sockperf: using recvfrom() to block on socket(s)
sockperf: [Valid Duration] RunTime=1.550 sec; SentMessages=22401; ReceivedMessages=22401
sockperf: \x1b[2;35m====> avg-latency=34.584 (std-dev=30.655)\x1b[0m
sockperf: # dropped messages = 0; # duplicated messages = 0; # out-of-order messages = 0
sockperf: Summary: Latency is 34.584 usec
sockperf: ---> <MAX> observation = 1228.724
sockperf: ---> percentile 99.999 = 1228.724
sockperf: ---> percentile 90.000 =   69.868
sockperf: ---> percentile 50.000 =   22.363
sockperf: ---> percentile 25.000 =   19.078
sockperf: ---> <MIN> observation =    5.478
"""

THROUGHPUT_OUTPUT = """\
sockperf: Total of 443188 messages sent in 2.000 sec
sockperf: Summary: Message Rate is 221541 [msg/sec]
sockperf: Summary: BandWidth is 13.522 MBps (108.174 Mbps)
"""


def test_sockperf_half_round_trip_is_doubled() -> None:
    from bench.calibration.fidelity import parse_ping_pong

    figures = parse_ping_pong(PING_PONG_OUTPUT)
    assert figures["p50_ns"] == pytest.approx(2 * 22.363e3)
    assert figures["mean_ns"] == pytest.approx(2 * 34.584e3)
    assert figures["min_ns"] == pytest.approx(2 * 5.478e3)


def test_sockperf_output_is_read_or_refused() -> None:
    from bench.calibration.fidelity import FidelityError, parse_ping_pong, parse_throughput

    assert parse_throughput(THROUGHPUT_OUTPUT) == 221541.0
    with pytest.raises(FidelityError):
        parse_ping_pong("sockperf: ERROR: no messages received\n")
    with pytest.raises(FidelityError):
        parse_throughput(PING_PONG_OUTPUT)


@pytest.mark.slow
def test_fidelity_runs_both_tools() -> None:
    from bench.calibration.fidelity import measure_fidelity

    result = measure_fidelity(duration_s=1.0, repetitions=1, rtt_repetitions=2)
    if not result["available"]:
        pytest.skip(result["reason"])
    for key in (
        "our_rtt_p50_ns", "sockperf_rtt_p50_ns", "probe_rtt_p50_ns", "probe_sockperf_rtt_p50_ns",
        "our_send_rps", "sockperf_send_rps",
    ):  # fmt: skip
        assert result[key] > 0
    runs = result["runs"]
    paired = [a / b for a, b in zip(runs["our_p50"], runs["sp_p50"], strict=True)]
    assert result["rtt_ratio_median"] == pytest.approx(float(np.median(paired)))
    assert result["rtt_ratio"] == pytest.approx(math.exp(float(np.mean(np.log(paired)))))
    low, high = result["rtt_ratio_ci95"]
    assert low < result["rtt_ratio"] < high
    # The three parts multiply to the whole, repetition by repetition, and the client part
    # splits into the socket choice and the rest of sockperf's client.
    parts = result["rtt_ratio_parts"]
    whole = ("driver_vs_probe", "server_vs_sockperf_server", "probe_vs_sockperf_client")
    product = math.prod(parts[name]["ratio"] for name in whole)
    assert product == pytest.approx(result["rtt_ratio"])
    client = parts["connected_vs_unconnected"]["ratio"]
    client *= parts["unconnected_probe_vs_sockperf_client"]["ratio"]
    assert client == pytest.approx(parts["probe_vs_sockperf_client"]["ratio"])
    matched = result["rtt_ratio"] / parts["connected_vs_unconnected"]["ratio"]
    assert result["rtt_ratio_socket_matched"] == pytest.approx(matched)
    assert result["probe_unconnected_rtt_p50_ns"] > 0
    assert result["rtt_within_5pct_verdict"] in ("shown", "not refuted", "refuted")
    assert result["rtt_ratio_of_medians"] == pytest.approx(
        result["our_rtt_p50_ns"] / result["sockperf_rtt_p50_ns"]
    )
    assert "sockperf ping-pong" in result["commands"]["sockperf_ping_pong"]


# ---- orchestration --------------------------------------------------------------------------


def test_hung_client_is_killed_and_reaped() -> None:
    import os
    import signal

    from bench.driver.client import DriverError

    srv = ThreadServer("correct")
    pids: list[int] = []

    def freeze(pid: int) -> None:
        pids.append(pid)
        os.kill(pid, signal.SIGSTOP)  # the client will never print DONE

    try:
        with pytest.raises(DriverError, match="DONE"):
            run_driver(
                DriverConfig("pingpong", port=srv.port, duration_s=0.2, warmup_s=0.0),
                on_measure_start=freeze,
                timeout_margin_s=0.5,
            )
    finally:
        srv.close()
    assert pids
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)


def test_probe_failure_still_reaps_the_client() -> None:
    import os

    srv = ThreadServer("correct")
    pids: list[int] = []

    def broken_probe(pid: int) -> None:
        pids.append(pid)
        raise RuntimeError("probe failed")

    try:
        with pytest.raises(RuntimeError, match="probe failed"):
            run_driver(
                DriverConfig("pingpong", port=srv.port, warmup_s=0.0),
                on_measure_start=broken_probe,
            )
    finally:
        srv.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)


def test_silent_port_counts_everything_lost() -> None:

    r = _run(free_udp_port(), mode="pingpong", max_requests=20, timeout_s=0.02)
    assert r.requests == r.lost == r.timeouts == 20 and r.replies == 0
    assert r.latency_ns["p50"] is None and r.latency_ns["mean"] is None
    # Nothing was timed; the record holds the 20 requests at the timeout.
    assert r.histogram.get_total_count() == 20
    assert list(r.samples) == [20_000_000] * 20


@pytest.mark.root
def test_client_runs_inside_a_netns() -> None:
    import os
    import shutil

    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2")
    name = f"hbdrv-{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode != 0:
        pytest.skip("cannot create a network namespace here")
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        srv = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                name,
                sys.executable,
                str(SERVERS),
                "correct",
                "--lifetime",
                "60",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert srv.stdout is not None
            port = int(srv.stdout.readline().split()[1])
            r = _run(port, mode="pingpong", max_requests=50, timeout_s=1.0, netns=name)
            assert r.requests == r.replies == 50
        finally:
            srv.terminate()
            srv.wait(5.0)
            if srv.stdout is not None:
                srv.stdout.close()
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _scheduled_gaps(arrivals: str, seed: int) -> tuple[Any, Any]:
    """The measured requests' scheduled send times (their header stamps), as gaps in ns,
    and the driver's result, for 1000 requests at 4000/s with ``arrivals``."""
    srv = ThreadServer("correct")
    try:
        r = run_driver(
            DriverConfig(
                "rate", port=srv.port, size=64, rate_rps=4000.0, max_requests=1000,
                duration_s=30.0, warmup_s=0.0, timeout_s=1.0, arrivals=arrivals, seed=seed,
            )
        )  # fmt: skip
    finally:
        srv.close()
    headers = [protocol.parse_header(d) for d in srv.received]
    stamps = sorted(h.timestamp_ns for h in headers if h is not None and not h.flags)
    assert len(stamps) == r.requests == 1000
    return np.diff(np.asarray(stamps, dtype=np.int64)), r


def test_poisson_arrivals_are_a_poisson_schedule_and_uniform_ones_are_even() -> None:
    """The stamps are the schedule itself (computed, not measured): even gaps of 1/rate,
    or exponential ones of that mean — coefficient of variation 1, memoryless."""
    even, _ = _scheduled_gaps("uniform", seed=7)
    assert abs(even.mean() - 250_000) < 1 and even.std() < 2
    gaps, r = _scheduled_gaps("poisson", seed=7)
    # 999 exponential gaps: mean within 5 standard errors of 250 µs, CV near 1, and the
    # share above the mean near e^-1
    assert abs(gaps.mean() - 250_000) < 5 * 250_000 / np.sqrt(gaps.size)
    assert 0.85 < gaps.std() / gaps.mean() < 1.15
    assert 0.30 < float(np.mean(gaps > gaps.mean())) < 0.44
    again, _ = _scheduled_gaps("poisson", seed=7)
    assert np.array_equal(gaps, again)  # the seed fixes the schedule
    assert r.config is not None and r.config.arrivals == "poisson"


def test_rate_mode_keeps_the_uncorrected_latency_beside_the_corrected_one() -> None:
    """Every request is sent at or after its scheduled time, so its latency from the send
    is at most its latency from the schedule: every percentile too.  Closed-loop modes
    have one latency only."""
    _, r = _scheduled_gaps("uniform", seed=3)
    corrected, uncorrected = r.latency_ns, r.uncorrected_latency_ns
    assert uncorrected is not None and r.uncorrected_histogram_encoded
    for key in ("min", "p50", "p90", "p99", "p999", "max"):
        low, high = uncorrected[key], corrected[key]
        assert low is not None and high is not None and low <= high, key
    srv = ThreadServer("correct")
    try:
        closed = run_driver(DriverConfig("pingpong", port=srv.port, max_requests=20))
    finally:
        srv.close()
    assert closed.uncorrected_latency_ns is None


def test_arrivals_apply_to_rate_mode_only() -> None:
    with pytest.raises(ValueError, match="rate mode only"):
        DriverConfig("pingpong", arrivals="poisson")
    with pytest.raises(ValueError, match="arrivals must be one of"):
        DriverConfig("rate", rate_rps=10.0, arrivals="bursty")


def test_the_fidelity_ratio_is_a_geometric_mean_with_a_t_interval_on_logs() -> None:
    from scipy import stats as sps

    from bench.calibration.fidelity import ratio_estimate, within_verdict

    ours, theirs = [20.0, 22.0, 30.0, 21.0], [21.0, 21.0, 28.0, 22.0]
    logs = np.log(np.array(ours) / np.array(theirs))
    est = ratio_estimate(ours, theirs)
    assert est["ratio"] == pytest.approx(math.exp(logs.mean()))
    half = sps.t.ppf(0.975, 3) * logs.std(ddof=1) / 2.0
    bounds = [math.exp(logs.mean() - half), math.exp(logs.mean() + half)]
    assert est["ci95"] == pytest.approx(bounds)
    assert est["n"] == 4 and "n=4" in est["method"]
    assert within_verdict(est) == "not refuted"  # inside 5 %, the interval not
    assert within_verdict({"ratio": 1.01, "ci95": [0.97, 1.04]}) == "shown"
    assert within_verdict({"ratio": 0.93, "ci95": [0.90, 0.999]}) == "refuted"
    assert ratio_estimate([2.0], [1.0]) == {
        "ratio": 2.0, "ci95": None, "n": 1, "method": "one repetition: no interval",
    }  # fmt: skip
