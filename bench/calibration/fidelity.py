"""Driver fidelity: the native HELLO client measured against sockperf on the same machine.

Two comparisons, like with like, in one run:

- **RTT**: our ``pingpong`` mode (one request in flight, blocking ``recv``) against the
  fidelity server (the impl whose manifest has the ``fidelity-server`` role: the blocking
  C ``recvfrom``/``sendto`` loop) versus ``sockperf ping-pong`` against
  ``sockperf server``.  With a single ``-i`` target both sockperf ends block in
  ``recvfrom()`` (sockperf prints "using recvfrom() to block on socket(s)"), so both pairs
  are blocking-socket client and server.  sockperf reports *half* the round trip: its
  figures are doubled here.
- **send capacity**: our ``flood`` mode (sendmmsg batches, nonblocking recvmmsg drains in
  between) in requests sent per second versus ``sockperf throughput`` (one sendto per
  message) in messages per second, each sending to a fresh ``sockperf server`` that reads
  everything and answers neither: same sink, same pinning, only the client differs.
  (A fresh sink per run, because after HELLO datagrams sockperf server keeps reading but
  stops answering ping-pong.)  For information, our flood against the fidelity server
  (which does answer, so our client also receives the replies) is reported beside it.

Client and server are pinned to the same CPUs for both tools (``taskset -c`` for sockperf,
``sched_setaffinity`` for ours, which is what taskset does).  Repetitions alternate which
tool goes first (ABBA order), each pair back to back, so that machine drift hits both.
Figures are medians over the repetitions; the ratios are the medians of the per-repetition
(paired) ratios, which cancel drift between repetitions (on a shared machine the p50 of
both tools moves together between, e.g., 30 and 45 µs, and a ratio of two separate medians
can land on opposite sides of such a jump); the ratios of the separate medians are
reported beside them (``*_of_medians``).  The acceptance criterion: ``rtt_ratio``
(ours / sockperf, p50) within 5 % and ``send_ratio`` (ours / sockperf) >= 1.
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

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
        except (FidelityError, DriverError) as exc:
            failures.append(f"{step.__name__}: {str(exc).strip().splitlines()[-1][:200]}")
            if attempt == ATTEMPTS - 1:
                raise


def _unavailable(reason: str) -> dict[str, Any]:
    keys = (
        "our_rtt_p50_ns", "sockperf_rtt_p50_ns", "rtt_ratio", "our_rtt_mean_ns",
        "sockperf_rtt_mean_ns", "our_send_rps", "sockperf_send_rps", "send_ratio",
    )  # fmt: skip
    return {"available": False, "reason": reason, **dict.fromkeys(keys)}


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


def machine_load() -> dict[str, float | None]:
    """Load average and CPU pressure (PSI "some" avg10), to show how busy the machine was."""
    load: dict[str, float | None] = {"loadavg_1m": None, "cpu_pressure_some_avg10": None}
    with contextlib.suppress(OSError, ValueError, IndexError):
        load["loadavg_1m"] = float(Path("/proc/loadavg").read_text().split()[0])
    with contextlib.suppress(OSError):
        match = re.search(r"some avg10=([0-9.]+)", Path("/proc/pressure/cpu").read_text())
        load["cpu_pressure_some_avg10"] = float(match.group(1)) if match else None
    return load


def measure_fidelity(
    duration_s: float = 2.0,
    size: int = 64,
    client_cpu: int | None = 0,
    server_cpu: int | None = 1,
    repetitions: int = 3,
) -> dict[str, Any]:
    """Our driver versus sockperf: RTT p50/mean and send capacity, medians of
    ``repetitions`` alternating runs of ``duration_s`` (whole seconds, as sockperf takes)."""
    reason = _why_not(size, (client_cpu, server_cpu))
    if reason:
        return _unavailable(reason)
    if repetitions < 1:
        raise ValueError("repetitions must be >= 1")
    secs = max(1, math.ceil(duration_s))
    # A safety net only (the server is stopped as soon as the measurement ends): generous,
    # because a loaded machine stretches every step well beyond its nominal duration.
    lifetime = repetitions * (5 * secs + 60) * 3 + 300
    ours_port, theirs_port = free_udp_port(), free_udp_port()
    name = role_holder("fidelity-server")
    server = _start_server(name, ours_port, server_cpu)
    try:
        peer = SockperfServer(theirs_port, server_cpu, lifetime)
        try:
            result = _measure(size, secs, client_cpu, server_cpu, repetitions, ours_port, peer)
            result["server_impl"] = name
            return result
        finally:
            peer.stop()
    finally:
        server.stop()


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


def _measure(
    size: int,
    secs: int,
    client_cpu: int | None,
    server_cpu: int | None,
    repetitions: int,
    ours_port: int,
    peer: SockperfServer,
) -> dict[str, Any]:
    ping = DriverConfig(
        "pingpong", port=ours_port, size=size, duration_s=float(secs), warmup_s=WARMUP_S,
        cpu=client_cpu,
    )  # fmt: skip
    flood = DriverConfig(
        "flood", port=ours_port, size=size, duration_s=float(secs), warmup_s=WARMUP_S,
        cpu=client_cpu,
    )  # fmt: skip
    sp_ping = _sockperf_client("ping-pong", client_cpu, peer.port, size, secs)
    runs: dict[str, list[float]] = {
        k: []
        for k in (
            "our_p50", "our_mean", "our_min", "sp_p50", "sp_mean", "sp_min",
            "our_send", "sp_send", "our_send_srv",
        )
    }  # fmt: skip
    seen: dict[str, list[str]] = {}

    def ours_rtt() -> None:
        r = run_driver(ping)
        lat = r.latency_ns
        if not r.replies or lat["p50"] is None or lat["mean"] is None or lat["min"] is None:
            raise FidelityError(f"our pingpong got no replies ({r.counts})")
        runs["our_p50"].append(lat["p50"])
        runs["our_mean"].append(lat["mean"])
        runs["our_min"].append(lat["min"])

    def theirs_rtt() -> None:
        _check_alive(peer)
        figures = parse_ping_pong(_run_sockperf(sp_ping, secs))
        runs["sp_p50"].append(figures["p50_ns"])
        runs["sp_mean"].append(figures["mean_ns"])
        runs["sp_min"].append(figures["min_ns"])

    def ours_send() -> None:
        with _sink(server_cpu, secs) as sink:
            seen["sink"] = sink.argv
            runs["our_send"].append(run_driver(replace(flood, port=sink.port)).send_rps)
        runs["our_send_srv"].append(run_driver(flood).send_rps)

    def theirs_send() -> None:
        with _sink(server_cpu, secs) as sink:
            seen["sp_tput"] = _sockperf_client("throughput", client_cpu, sink.port, size, secs)
            runs["sp_send"].append(parse_throughput(_run_sockperf(seen["sp_tput"], secs)))

    pairs: list[tuple[Callable[[], None], Callable[[], None]]] = [
        (ours_rtt, theirs_rtt),
        (ours_send, theirs_send),
    ]
    failures: list[str] = []
    load_before = machine_load()
    for rep in range(repetitions):
        for first, second in pairs:
            for step in (first, second) if rep % 2 == 0 else (second, first):
                _attempt(step, failures)
    med = {k: _median(v) for k, v in runs.items()}
    rtt_ratio = _paired(runs["our_p50"], runs["sp_p50"])
    send_ratio = _paired(runs["our_send"], runs["sp_send"])
    return {
        "available": True,
        "reason": None,
        "our_rtt_p50_ns": med["our_p50"],
        "sockperf_rtt_p50_ns": med["sp_p50"],
        "rtt_ratio": rtt_ratio,
        "our_rtt_mean_ns": med["our_mean"],
        "sockperf_rtt_mean_ns": med["sp_mean"],
        "rtt_mean_ratio": med["our_mean"] / med["sp_mean"],
        "our_rtt_min_ns": med["our_min"],
        "sockperf_rtt_min_ns": med["sp_min"],
        "our_send_rps": med["our_send"],
        "sockperf_send_rps": med["sp_send"],
        "send_ratio": send_ratio,
        "rtt_ratio_of_medians": med["our_p50"] / med["sp_p50"],
        "send_ratio_of_medians": med["our_send"] / med["sp_send"],
        "rtt_mean_ratio_paired": _paired(runs["our_mean"], runs["sp_mean"]),
        "our_send_rps_vs_server": med["our_send_srv"],
        "rtt_within_5pct": abs(rtt_ratio - 1.0) <= RTT_TOLERANCE,
        "send_at_least_sockperf": send_ratio >= 1.0,
        "sockperf_version": sockperf_version(),
        "size": size,
        "duration_s": secs,
        "repetitions": repetitions,
        "client_cpu": client_cpu,
        "server_cpu": server_cpu,
        "runs": runs,
        "failures": failures,
        "machine_load": {"before": load_before, "after": machine_load()},
        "modes_compared": {
            "rtt": "our pingpong (1 outstanding, blocking recv) vs the fidelity server; "
            "sockperf ping-pong (blocking recvfrom) vs sockperf server; sockperf half-RTT x2",
            "send": "our flood sent/s (sendmmsg batch 32, nonblocking recvmmsg between) vs "
            "sockperf throughput msg/s (sendto per message); each to a fresh sockperf server, "
            "which answers neither",
        },
        "commands": _commands(
            ping, flood, sp_ping, seen["sp_tput"], peer.argv, seen["sink"], server_cpu
        ),
    }


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
