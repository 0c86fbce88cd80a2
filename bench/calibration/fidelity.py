"""Driver fidelity: the native HELLO client measured against sockperf on the same machine.

Two comparisons, like with like, in one run:

- **RTT**: our ``pingpong`` mode (one request in flight, blocking ``recv``) against the
  fidelity server (the impl whose manifest has the ``fidelity-server`` role: the blocking
  C ``recvfrom``/``sendto`` loop) versus ``sockperf ping-pong`` against
  ``sockperf server``.  With a single ``-i`` target both sockperf ends block in
  ``recvfrom()`` (sockperf prints "using recvfrom() to block on socket(s)"), so both pairs
  are blocking-socket client and server, one ``sendto``/``recvfrom`` each per message.
  sockperf reports *half* the round trip: its figures are doubled here.
  Two clients and two servers differ at once, so each repetition also times a third,
  independent client (``hello-rtt-probe``, which speaks HELLO and sockperf's own message
  format) against *both* servers.  Five timings per repetition, in an order rotated by one
  step each repetition: A = ours → fidelity server, B = probe → fidelity server,
  C = probe → sockperf server, E = the probe from an *unconnected* socket (``sendto`` with
  the address, ``recvfrom``, as sockperf's client does) → sockperf server,
  D = sockperf → sockperf server.  Then A/D (the criterion) = A/B (our driver against a
  second client, same server) × B/C (the two servers, same client) × C/D (the probe
  against sockperf's client, same server) exactly, per repetition, so a miss says whose
  it is; and C/D = C/E (what a connected socket saves: no route lookup or IP ID per send,
  no address copy per receive) × E/D (the rest of sockperf's client).  Ours / sockperf
  with the socket matched, (A/D)/(C/E) = A·E/(D·C), is reported beside the criterion.
- **send capacity**: our ``flood`` mode (sendmmsg batches, nonblocking recvmmsg drains in
  between) in requests sent per second versus ``sockperf throughput`` (one sendto per
  message) in messages per second, each sending to a fresh ``sockperf server`` that reads
  everything and answers neither: same sink, same pinning, only the client differs.
  (A fresh sink per run, because after HELLO datagrams sockperf server keeps reading but
  stops answering ping-pong.)  For information, our flood against the fidelity server
  (which does answer, so our client also receives the replies) is reported beside it.

Client and server are pinned to the same CPUs for every tool (``taskset -c`` for sockperf,
``sched_setaffinity`` for ours and the probe, which is what taskset does).  On a shared
virtual machine the p50 of every pair drifts together by ±20 % within seconds, so the
ratios are per repetition (paired), and a ratio's estimate is the geometric mean of its
per-repetition ratios with a Student-t interval on their logarithms (95 %, n = the
repetitions): it says whether "within 5 %" is shown (the interval inside 0.95..1.05),
merely not refuted (the estimate inside, the interval not) or refuted.  Medians of each
tool's p50 and the ratios of those medians (``*_of_medians``) are reported beside them.
The acceptance criterion: ``rtt_ratio`` (ours / sockperf, p50) within 5 % and
``send_ratio`` (ours / sockperf, median of paired ratios) >= 1.

:class:`FidelityComparison` takes the timings, one method each; :class:`Fidelity` holds
their values per repetition (:class:`Runs`) and derives every figure from them, and its
``record()`` is the ``driver_fidelity`` record of results.json (keys registered in
bench/host/metadata.py).  :func:`compare_with_sockperf` runs it all.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.analysis.stats import CONFIDENCE, Interval, paired_t_interval
from bench.calibration.crosscheck import CrosscheckError, probe_rtt
from bench.driver.client import DriverConfig, DriverError, command, driver_binary, run_driver
from bench.errors import HellobenchError
from bench.impl.api import RunningServer, ServerConfig
from bench.impl.registry import discover, role_holder
from bench.protocol import HEADER_SIZE, MAX_REQUEST
from bench.system.owned import OwnedProcess
from bench.system.ports import free_udp_port

SOCKPERF = "sockperf"
SOCKPERF_MIN_SIZE = 14  # sockperf's own message header
ADDR = "127.0.0.1"
SERVER_READY_S = 10.0
RTT_TOLERANCE = 0.05
SINK_PORT = 1  # stands for the port of the fresh sink in the commands recorded
ATTEMPTS = 3  # a step that fails (e.g. sockperf sees no reply under heavy load) is retried
WARMUP_S = 0.4  # sockperf's default warm-up time, so both start equally warm
RTT_SECONDS = 1  # per RTT timing: sockperf's shortest -t
RTT_REPETITIONS = 8
PROBE_COUNT = 10_000  # round trips per probe timing (about 0.2-0.6 s here)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class FidelityError(HellobenchError):
    """sockperf or our client failed, or sockperf's output could not be read."""


def _pin(cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu)] if cpu is not None else []


def sockperf_version() -> str:
    out = subprocess.run([SOCKPERF, "--version"], capture_output=True, text=True, timeout=10).stdout
    match = re.search(r"version\s+(\S+)", _ANSI.sub("", out))
    return match.group(1) if match else out.strip().splitlines()[0] if out.strip() else "?"


def _number(pattern: str, text: str, what: str) -> float:
    match = re.search(pattern, text)
    if not match:
        raise FidelityError(f"no {what} in sockperf output:\n{text[-1500:]}")
    return float(match.group(1))


def parse_ping_pong(output: str) -> dict[str, float]:
    """Round-trip figures in ns from ``sockperf ping-pong`` output (which gives half RTT, µs)."""
    text = _ANSI.sub("", output)
    if re.search(r"--full-rtt|avg-rtt", text):
        raise FidelityError("sockperf printed full RTT figures; run it without --full-rtt")
    p50 = _number(r"percentile\s+50(?:\.0*)?\s*=\s*([0-9.]+)", text, "median (percentile 50)")
    mean = _number(r"avg-latency\s*=\s*([0-9.]+)", text, "average latency")
    low = _number(r"<MIN>\s+observation\s*=\s*([0-9.]+)", text, "minimum")
    return {"p50_ns": 2 * p50 * 1e3, "mean_ns": 2 * mean * 1e3, "min_ns": 2 * low * 1e3}


def parse_throughput(output: str) -> float:
    """Messages per second from ``sockperf throughput`` output."""
    text = _ANSI.sub("", output)
    return _number(r"Message Rate is\s*([0-9.]+)\s*\[msg/sec\]", text, "message rate")


class SockperfServer:
    """``sockperf server`` pinned to a CPU, bounded in life by ``timeout``, ready when it
    says which call it blocks in."""

    def __init__(self, port: int, cpu: int | None, lifetime_s: float) -> None:
        self.port = port
        self.argv = [
            "timeout", f"{lifetime_s:.0f}", *_pin(cpu),
            SOCKPERF, "server", "-i", ADDR, "-p", str(port),
        ]  # fmt: skip
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop)
        self._owned = OwnedProcess(
            self.argv,
            name="sockperf",
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._proc = self._owned.proc
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def alive(self) -> bool:
        return self._proc.poll() is None

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_READY_S
        while time.monotonic() < deadline:
            if "to block on socket" in self.output() or "using " in self.output():
                return
            if self._proc.poll() is not None:
                break
            time.sleep(0.05)
        raise FidelityError(f"sockperf server did not start:\n{self.output()[-1000:]}")

    def stop(self) -> None:
        self._owned.stop(grace_s=5.0)
        self._log.close()


def _run_sockperf(argv: Sequence[str], duration_s: int) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 60)
    except subprocess.TimeoutExpired as exc:
        raise FidelityError(f"{' '.join(argv)} timed out") from exc
    if proc.returncode != 0:
        raise FidelityError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr[-800:]}")
    return proc.stdout + proc.stderr


def _check_alive(peer: SockperfServer) -> None:
    if not peer.alive():
        raise FidelityError(f"sockperf server exited:\n{peer.output()[-800:]}")


def _attempt(step: Callable[[], None], failures: list[str]) -> None:
    """Runs ``step``, retrying twice on failure; every failure is kept for the record."""
    for attempt in range(ATTEMPTS):
        try:
            step()
            return
        except (FidelityError, DriverError, CrosscheckError) as exc:
            failures.append(f"{step.__name__}: {str(exc).strip().splitlines()[-1][:200]}")
            if attempt == ATTEMPTS - 1:
                raise


def unavailable(reason: str) -> dict[str, Any]:
    """The record of a comparison not made, and why."""
    return FidelityUnavailable(reason).record()


def _why_not(size: int, cpus: Sequence[int | None]) -> str | None:
    if shutil.which(SOCKPERF) is None:
        return "sockperf not found on PATH (apt-get install sockperf)"
    if any(cpu is not None for cpu in cpus) and shutil.which("taskset") is None:
        return "taskset not found (util-linux), needed to pin sockperf"
    usable = os.sched_getaffinity(0)
    missing = [cpu for cpu in cpus if cpu is not None and cpu not in usable]
    if missing:
        return f"CPU(s) {missing} not available here (usable: {sorted(usable)})"
    if not max(HEADER_SIZE, SOCKPERF_MIN_SIZE) <= size <= MAX_REQUEST:
        return f"size {size} outside {max(HEADER_SIZE, SOCKPERF_MIN_SIZE)}..{MAX_REQUEST}"
    return None


def _start_server(name: str, port: int, cpu: int | None) -> RunningServer:
    entry = discover()[name]
    if entry.impl is None or not entry.available:
        raise FidelityError(f"{name} unavailable: {entry.unavailable}")
    return entry.impl.start(ServerConfig(addr=ADDR, port=port, cpu=cpu))


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def _paired(ours: Sequence[float], theirs: Sequence[float]) -> float:
    """Median of the per-repetition ratios ours/theirs."""
    return _median([a / b for a, b in zip(ours, theirs, strict=True)])


@dataclass(frozen=True)
class Ratio:
    """The geometric mean of per-repetition ratios with the Student-t interval of their
    logarithms (``ci95`` None with fewer than two repetitions)."""

    ratio: float | None
    ci95: tuple[float, float] | None
    n: int
    method: str

    @classmethod
    def of(cls, top: Sequence[float], bottom: Sequence[float]) -> Ratio:
        logs = [math.log(a / b) for a, b in zip(top, bottom, strict=True)]
        est = paired_t_interval(logs, min_n=2)
        if est is None:
            first = math.exp(logs[0]) if logs else None
            return cls(first, None, len(logs), "one repetition: no interval")
        return cls(
            math.exp(est.mean),
            (math.exp(est.interval.low), math.exp(est.interval.high)),
            est.n,
            f"geometric mean of per-repetition ratios, Student-t on logs, "
            f"{CONFIDENCE:.0%}, n={est.n}",
        )

    def verdict(self, tolerance: float = RTT_TOLERANCE) -> str:
        """ "shown" when the interval lies inside 1 ± tolerance, "not refuted" when only the
        estimate does, "refuted" otherwise."""
        band = Interval(1.0 - tolerance, 1.0 + tolerance)
        if self.ratio is None or not band.contains(self.ratio):
            return "refuted"
        if self.ci95 is not None and band.contains(self.ci95[0]) and band.contains(self.ci95[1]):
            return "shown"
        return "not refuted"

    def to_json(self) -> dict[str, Any]:
        ci = None if self.ci95 is None else list(self.ci95)
        return {"ratio": self.ratio, "ci95": ci, "n": self.n, "method": self.method}


def ratio_estimate(top: Sequence[float], bottom: Sequence[float]) -> dict[str, Any]:
    """:class:`Ratio` of ``top``/``bottom`` as the record writes it."""
    return Ratio.of(top, bottom).to_json()


def within_verdict(estimate: Mapping[str, Any], tolerance: float = RTT_TOLERANCE) -> str:
    """:meth:`Ratio.verdict` of a recorded estimate."""
    ci = estimate["ci95"]
    bounds = None if ci is None else (float(ci[0]), float(ci[1]))
    return Ratio(estimate["ratio"], bounds, 0, "").verdict(tolerance)


def machine_load() -> dict[str, float | None]:
    """Load average and CPU pressure (PSI "some" avg10), to show how busy the machine was."""
    load: dict[str, float | None] = {"loadavg_1m": None, "cpu_pressure_some_avg10": None}
    with contextlib.suppress(OSError, ValueError, IndexError):
        load["loadavg_1m"] = float(Path("/proc/loadavg").read_text().split()[0])
    with contextlib.suppress(OSError):
        match = re.search(r"some avg10=([0-9.]+)", Path("/proc/pressure/cpu").read_text())
        load["cpu_pressure_some_avg10"] = float(match.group(1)) if match else None
    return load


@dataclass(frozen=True)
class Rtt:
    """One RTT timing's figures (ns)."""

    p50_ns: float
    mean_ns: float
    min_ns: float


@dataclass(frozen=True)
class Setup:
    """What a comparison runs: the datagram size, the timings' lengths and counts, the CPUs."""

    size: int = 64
    duration_s: int = 2  # whole seconds per send-capacity run, as sockperf takes
    repetitions: int = 3
    rtt_repetitions: int = RTT_REPETITIONS
    client_cpu: int | None = 0
    server_cpu: int | None = 1
    rtt_duration_s: int = RTT_SECONDS


@dataclass
class Runs:
    """Every timing's value, one per repetition, as the record keeps them under ``runs``."""

    our_p50: list[float] = field(default_factory=list)
    our_mean: list[float] = field(default_factory=list)
    our_min: list[float] = field(default_factory=list)
    sp_p50: list[float] = field(default_factory=list)
    sp_mean: list[float] = field(default_factory=list)
    sp_min: list[float] = field(default_factory=list)
    probe_p50: list[float] = field(default_factory=list)
    probe_sockperf_p50: list[float] = field(default_factory=list)
    probe_unconnected_p50: list[float] = field(default_factory=list)
    our_send: list[float] = field(default_factory=list)
    sp_send: list[float] = field(default_factory=list)
    our_send_srv: list[float] = field(default_factory=list)

    def median(self, name: str) -> float:
        values: list[float] = getattr(self, name)
        return _median(values)


@dataclass(frozen=True)
class FidelityUnavailable:
    """A comparison not made, and why."""

    reason: str

    def record(self) -> dict[str, Any]:
        keys = (
            "our_rtt_p50_ns", "sockperf_rtt_p50_ns", "rtt_ratio", "rtt_ratio_ci95",
            "our_rtt_mean_ns", "sockperf_rtt_mean_ns", "our_send_rps", "sockperf_send_rps",
            "send_ratio",
        )  # fmt: skip
        return {"available": False, "reason": self.reason, **dict.fromkeys(keys)}


@dataclass(frozen=True)
class Fidelity:
    """A comparison made: the timings and how they were taken.  Every figure is derived
    from ``runs`` (pure); :meth:`record` is the ``driver_fidelity`` record of results.json."""

    setup: Setup
    runs: Runs
    failures: tuple[str, ...]
    load_before: dict[str, float | None]
    load_after: dict[str, float | None]
    commands: dict[str, str]
    sockperf_version: str
    server_impl: str | None = None

    @property
    def rtt(self) -> Ratio:
        """p50 RTT, ours / sockperf: the criterion."""
        return Ratio.of(self.runs.our_p50, self.runs.sp_p50)

    @property
    def rtt_parts(self) -> dict[str, Ratio]:
        """The criterion A/D as the product A/B × B/C × C/D, and C/D as C/E × E/D."""
        r = self.runs
        return {
            "driver_vs_probe": Ratio.of(r.our_p50, r.probe_p50),
            "server_vs_sockperf_server": Ratio.of(r.probe_p50, r.probe_sockperf_p50),
            "probe_vs_sockperf_client": Ratio.of(r.probe_sockperf_p50, r.sp_p50),
            # probe_vs_sockperf_client split once more: the socket sockperf's client uses ...
            "connected_vs_unconnected": Ratio.of(r.probe_sockperf_p50, r.probe_unconnected_p50),
            # ... and whatever else its client does per message.
            "unconnected_probe_vs_sockperf_client": Ratio.of(r.probe_unconnected_p50, r.sp_p50),
        }

    @property
    def rtt_socket_matched(self) -> Ratio:
        """Ours / sockperf with the socket choice matched: (A/D) / (C/E) per rotation, i.e.
        our driver against sockperf as if sockperf's client used a connected socket."""
        r = self.runs
        return Ratio.of(
            [a * e for a, e in zip(r.our_p50, r.probe_unconnected_p50, strict=True)],
            [d * c for d, c in zip(r.sp_p50, r.probe_sockperf_p50, strict=True)],
        )

    @property
    def send_ratio(self) -> float:
        """Send capacity, ours / sockperf: the median of the paired ratios."""
        return _paired(self.runs.our_send, self.runs.sp_send)

    def record(self) -> dict[str, Any]:
        r, s, m = self.runs, self.setup, self.runs.median
        rtt, matched, send_ratio = self.rtt, self.rtt_socket_matched, self.send_ratio
        assert rtt.ratio is not None  # every timing ran at least once
        return {
            "available": True,
            "reason": None,
            "our_rtt_p50_ns": m("our_p50"),
            "sockperf_rtt_p50_ns": m("sp_p50"),
            "rtt_ratio": rtt.ratio,
            "rtt_ratio_ci95": rtt.to_json()["ci95"],
            "rtt_ratio_method": rtt.method,
            "rtt_within_5pct_verdict": rtt.verdict(),
            "rtt_ratio_median": _paired(r.our_p50, r.sp_p50),
            "rtt_ratio_parts": {k: v.to_json() for k, v in self.rtt_parts.items()},
            "rtt_ratio_socket_matched": matched.ratio,
            "rtt_ratio_socket_matched_ci95": matched.to_json()["ci95"],
            "rtt_socket_matched_within_5pct_verdict": matched.verdict(),
            "probe_unconnected_rtt_p50_ns": m("probe_unconnected_p50"),
            "probe_rtt_p50_ns": m("probe_p50"),
            "probe_sockperf_rtt_p50_ns": m("probe_sockperf_p50"),
            "our_rtt_mean_ns": m("our_mean"),
            "sockperf_rtt_mean_ns": m("sp_mean"),
            "rtt_mean_ratio": m("our_mean") / m("sp_mean"),
            "our_rtt_min_ns": m("our_min"),
            "sockperf_rtt_min_ns": m("sp_min"),
            "our_send_rps": m("our_send"),
            "sockperf_send_rps": m("sp_send"),
            "send_ratio": send_ratio,
            "rtt_ratio_of_medians": m("our_p50") / m("sp_p50"),
            "send_ratio_of_medians": m("our_send") / m("sp_send"),
            "rtt_mean_ratio_paired": _paired(r.our_mean, r.sp_mean),
            "our_send_rps_vs_server": m("our_send_srv"),
            "rtt_within_5pct": abs(rtt.ratio - 1.0) <= RTT_TOLERANCE,
            "send_at_least_sockperf": send_ratio >= 1.0,
            "sockperf_version": self.sockperf_version,
            "size": s.size,
            "duration_s": s.duration_s,
            "repetitions": s.repetitions,
            "rtt_duration_s": s.rtt_duration_s,
            "rtt_repetitions": s.rtt_repetitions,
            "client_cpu": s.client_cpu,
            "server_cpu": s.server_cpu,
            "runs": asdict(r),
            "failures": list(self.failures),
            "machine_load": {"before": self.load_before, "after": self.load_after},
            "modes_compared": MODES_COMPARED,
            "commands": self.commands,
            **({"server_impl": self.server_impl} if self.server_impl is not None else {}),
        }


MODES_COMPARED = {
    "rtt": "our pingpong (1 outstanding, blocking recv) vs the fidelity server; "
    "sockperf ping-pong (blocking recvfrom) vs sockperf server; sockperf half-RTT x2; "
    f"hello-rtt-probe ({PROBE_COUNT} round trips) vs both servers, to split the ratio",
    "send": "our flood sent/s (sendmmsg batch 32, nonblocking recvmmsg between) vs "
    "sockperf throughput msg/s (sendto per message); each to a fresh sockperf server, "
    "which answers neither",
}


def compare_with_sockperf(setup: Setup = Setup()) -> Fidelity | FidelityUnavailable:
    """Our driver versus sockperf: RTT from ``rtt_repetitions`` rotations of the five
    timings (``RTT_SECONDS`` each), send capacity from ``repetitions`` alternating runs."""
    reason = _why_not(setup.size, (setup.client_cpu, setup.server_cpu))
    if reason:
        return FidelityUnavailable(reason)
    if setup.repetitions < 1 or setup.rtt_repetitions < 1:
        raise ValueError("repetitions must be >= 1")
    secs = setup.duration_s
    # A safety net only (the server is stopped as soon as the measurement ends): generous,
    # because a loaded machine stretches every step well beyond its nominal duration.
    lifetime = (
        setup.repetitions * (5 * secs + 60) + setup.rtt_repetitions * 4 * (RTT_SECONDS + 20)
    ) * 3 + 300
    ours_port, theirs_port = free_udp_port(), free_udp_port()
    name = role_holder("fidelity-server")
    server = _start_server(name, ours_port, setup.server_cpu)
    try:
        peer = SockperfServer(theirs_port, setup.server_cpu, lifetime)
        try:
            return replace(FidelityComparison(setup, ours_port, peer).measure(), server_impl=name)
        finally:
            peer.stop()
    finally:
        server.stop()


def measure_fidelity(
    duration_s: float = 2.0,
    size: int = 64,
    client_cpu: int | None = 0,
    server_cpu: int | None = 1,
    repetitions: int = 3,
    rtt_repetitions: int = RTT_REPETITIONS,
) -> dict[str, Any]:
    """The ``driver_fidelity`` record of :func:`compare_with_sockperf` (``duration_s``
    rounded up to whole seconds, as sockperf takes)."""
    setup = Setup(
        size, max(1, math.ceil(duration_s)), repetitions, rtt_repetitions, client_cpu, server_cpu
    )
    return compare_with_sockperf(setup).record()


@contextlib.contextmanager
def _sink(cpu: int | None, secs: int) -> Iterator[SockperfServer]:
    """A fresh ``sockperf server`` for one send-capacity run.  Fresh each time because
    HELLO datagrams (not sockperf messages) leave sockperf server still reading but no
    longer answering ping-pong: a shared instance would be spoiled for the RTT runs."""
    server = SockperfServer(free_udp_port(), cpu, 3 * secs + 120)
    try:
        yield server
    finally:
        server.stop()


def _sockperf_client(kind: str, cpu: int | None, port: int, size: int, secs: int) -> list[str]:
    return [
        *_pin(cpu), SOCKPERF, kind, "-i", ADDR, "-p", str(port), "-m", str(size), "-t", str(secs),
    ]  # fmt: skip


class FidelityComparison:
    """The timings of one comparison against a running fidelity server (on ``ours_port``)
    and ``peer``: one method per timing, each returning what it measured."""

    def __init__(self, setup: Setup, ours_port: int, peer: SockperfServer) -> None:
        self.setup, self.ours_port, self.peer = setup, ours_port, peer
        size, cpu, secs = setup.size, setup.client_cpu, setup.duration_s
        self.ping = DriverConfig(
            "pingpong", port=ours_port, size=size, duration_s=float(RTT_SECONDS),
            warmup_s=WARMUP_S, cpu=cpu,
        )  # fmt: skip
        self.flood = DriverConfig(
            "flood", port=ours_port, size=size, duration_s=float(secs), warmup_s=WARMUP_S,
            cpu=cpu,
        )  # fmt: skip
        self.sp_ping = _sockperf_client("ping-pong", cpu, peer.port, size, RTT_SECONDS)
        self.sink_argv: list[str] = []  # the last sink's command, for the record
        self.sp_tput: list[str] = []  # the last sockperf throughput command

    def ours_rtt(self) -> Rtt:
        """A: our pingpong against the fidelity server."""
        r = run_driver(self.ping)
        lat = r.latency_ns
        p50, mean, low = lat["p50"], lat["mean"], lat["min"]
        if not r.replies or p50 is None or mean is None or low is None:
            raise FidelityError(f"our pingpong got no replies ({r.counts})")
        return Rtt(p50, mean, low)

    def sockperf_rtt(self) -> Rtt:
        """D: sockperf ping-pong against sockperf server."""
        _check_alive(self.peer)
        figures = parse_ping_pong(_run_sockperf(self.sp_ping, RTT_SECONDS))
        return Rtt(figures["p50_ns"], figures["mean_ns"], figures["min_ns"])

    def _probe(self, port: int, wire: str, socket: str = "connected") -> float:
        size, cpu = self.setup.size, self.setup.client_cpu
        got = probe_rtt(ADDR, port, size, cpu, None, PROBE_COUNT, wire, socket)
        if got.p50_ns is None or got.bad or got.count < PROBE_COUNT // 2:
            raise FidelityError(f"hello-rtt-probe ({wire}, {socket}) measured badly: {got}")
        return got.p50_ns

    def probe_fidelity_server(self) -> float:
        """B: the probe's p50 against the fidelity server."""
        return self._probe(self.ours_port, "hello")

    def probe_sockperf_server(self) -> float:
        """C: the probe's p50 against sockperf server."""
        _check_alive(self.peer)
        return self._probe(self.peer.port, "sockperf")

    def probe_sockperf_unconnected(self) -> float:
        """E: the probe's p50 from an unconnected socket against sockperf server."""
        _check_alive(self.peer)
        return self._probe(self.peer.port, "sockperf", "unconnected")

    def ours_send(self) -> float:
        """Our flood's requests sent per second to a fresh sink."""
        with _sink(self.setup.server_cpu, self.setup.duration_s) as sink:
            self.sink_argv = sink.argv
            return run_driver(replace(self.flood, port=sink.port)).send_rps

    def ours_send_to_server(self) -> float:
        """Our flood's requests sent per second to the fidelity server (which answers)."""
        return run_driver(self.flood).send_rps

    def sockperf_send(self) -> float:
        """sockperf throughput's messages per second to a fresh sink."""
        s = self.setup
        with _sink(s.server_cpu, s.duration_s) as sink:
            self.sp_tput = _sockperf_client("throughput", s.client_cpu, sink.port, s.size,
                                            s.duration_s)  # fmt: skip
            return parse_throughput(_run_sockperf(self.sp_tput, s.duration_s))

    def measure(self) -> Fidelity:
        """Every timing, RTT in rotations shifted by one step each repetition, send
        capacity alternating; a failed step is retried (see ``_attempt``)."""
        runs = Runs()

        def ours_rtt() -> None:
            got = self.ours_rtt()
            runs.our_p50.append(got.p50_ns)
            runs.our_mean.append(got.mean_ns)
            runs.our_min.append(got.min_ns)

        def theirs_rtt() -> None:
            got = self.sockperf_rtt()
            runs.sp_p50.append(got.p50_ns)
            runs.sp_mean.append(got.mean_ns)
            runs.sp_min.append(got.min_ns)

        def probe_ours() -> None:
            runs.probe_p50.append(self.probe_fidelity_server())

        def probe_theirs() -> None:
            runs.probe_sockperf_p50.append(self.probe_sockperf_server())

        def probe_theirs_unconnected() -> None:
            runs.probe_unconnected_p50.append(self.probe_sockperf_unconnected())

        def ours_send() -> None:
            runs.our_send.append(self.ours_send())
            runs.our_send_srv.append(self.ours_send_to_server())

        def theirs_send() -> None:
            runs.sp_send.append(self.sockperf_send())

        rtt_steps: list[Callable[[], None]] = [
            ours_rtt, probe_ours, probe_theirs, probe_theirs_unconnected, theirs_rtt,
        ]  # fmt: skip
        failures: list[str] = []
        load_before = machine_load()
        for rep in range(self.setup.rtt_repetitions):
            shift = rep % len(rtt_steps)
            for step in rtt_steps[shift:] + rtt_steps[:shift]:
                _attempt(step, failures)
        for rep in range(self.setup.repetitions):
            for step in (ours_send, theirs_send) if rep % 2 == 0 else (theirs_send, ours_send):
                _attempt(step, failures)
        return Fidelity(
            self.setup, runs, tuple(failures), load_before, machine_load(), self.commands(),
            sockperf_version(),
        )  # fmt: skip

    def commands(self) -> dict[str, str]:
        size, cpu, peer = self.setup.size, self.setup.client_cpu, self.peer
        return {
            **_commands(
                self.ping, self.flood, self.sp_ping, self.sp_tput, peer.argv, self.sink_argv,
                self.setup.server_cpu,
            ),
            "probe_fidelity_server": _probe_command(self.ping.port, size, cpu, "hello"),
            "probe_sockperf_server": _probe_command(peer.port, size, cpu, "sockperf"),
            "probe_sockperf_server_unconnected": _probe_command(
                peer.port, size, cpu, "sockperf unconnected"
            ),
        }  # fmt: skip


def _probe_command(port: int, size: int, cpu: int | None, wire: str) -> str:
    cpu_arg = -1 if cpu is None else cpu
    return f"hello-rtt-probe {ADDR} {port} {size} {PROBE_COUNT} {cpu_arg} {wire}"


def _commands(
    ping: DriverConfig,
    flood: DriverConfig,
    sp_ping: Sequence[str],
    sp_tput: Sequence[str],
    sp_server: Sequence[str],
    sp_sink: Sequence[str],
    server_cpu: int | None,
) -> dict[str, str]:
    binary = driver_binary()
    out, samples = Path("RESULTS.json"), Path("SAMPLES.i64")
    pin = f" (pinned to CPU {server_cpu})" if server_cpu is not None else ""
    return {
        "our_pingpong": " ".join(command(ping, binary, out, samples)),
        "our_flood": " ".join(
            command(replace(flood, port=SINK_PORT), binary, out, samples)
        ).replace(f"--port={SINK_PORT} ", "--port=SINK_PORT ")
        + " (SINK_PORT: a fresh sockperf_sink per run)",
        "our_flood_vs_server": " ".join(command(flood, binary, out, samples)),
        "fidelity_server": f"the fidelity-server impl on {ADDR}:{ping.port}{pin}",
        "sockperf_server": " ".join(sp_server),
        "sockperf_ping_pong": " ".join(sp_ping),
        "sockperf_sink": " ".join(sp_sink),
        "sockperf_throughput": " ".join(sp_tput) + " (port: a fresh sockperf_sink per run)",
    }
