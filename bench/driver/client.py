"""Runs the native HELLO client (bench/native/hello_client.c) and reads back its results.

The client prints ``READY`` after its warmup and waits for ``GO``; it prints ``DONE`` after
the measured phase and its drain and waits for ``EXIT``.  ``run_driver`` calls
``on_measure_start(pid)`` between READY and GO and ``on_measure_end()`` between DONE and
EXIT, so that probes (perf counters, /proc snapshots) bracket exactly the measured phase.
Every step has a deadline; a client that misses one is killed and DriverError raised.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import select
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
from hdrh.histogram import HdrHistogram

from bench.driver import histogram as hdr
from bench.driver.modes import MODES, Mode
from bench.errors import HellobenchError
from bench.factors import factor
from bench.native.build import NATIVE_DIR, BuildError, build_executable, cache_dir
from bench.protocol import DEFAULT_ADDR, DEFAULT_PORT, HEADER_SIZE, MAX_REQUEST, MIN_REQUEST
from bench.system.netns import exec_prefix
from bench.system.owned import OwnedProcess

# main (hello_client.c) and its parts (hc_*.c), built into one executable
SOURCES = (NATIVE_DIR / "hello_client.c", *sorted(NATIVE_DIR.glob("hc_*.c")))
BINARY_NAME = "hello-client"
LIMITS_SCHEMA = "hello-client-limits/1"
LIMITS_TIMEOUT_S = 10.0

# How the client waits for replies (and, in rate mode, for the next send): block sleeps in
# the kernel (blocking recv, ppoll); spin never sleeps (non-blocking receives and
# zero-timeout polls, retried until the reply, the timeout or the next send is due).
# (the client_wait factor); in rate mode, arrivals schedule the sends (bench/factors.py)
WAITS = factor("client_wait").levels
DEFAULT_WAIT = factor("client_wait").default
ARRIVALS = factor("arrivals").levels

COUNT_KEYS = ("requests", "replies", "lost", "duplicates", "reordered", "corrupt")


class DriverError(HellobenchError):
    """The client could not be built, failed, hung, or wrote unreadable results."""

    def __init__(self, message: str, stderr: str = "") -> None:
        super().__init__(f"{message}\n{stderr.strip()}" if stderr.strip() else message)
        self.stderr = stderr


@dataclass(frozen=True)
class ClientLimits:
    """The limits the C client enforces (it exits 2 on anything outside them), as its
    option table prints them (``hello-client --limits``)."""

    max_duration_s: float
    max_rate_rps: float
    max_outstanding: int
    max_batch: int
    max_sample_cap: int
    max_ordered_cap: int

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ClientLimits:
        """From the ``--limits`` document; ValueError when it is not one."""
        if raw.get("schema") != LIMITS_SCHEMA:
            raise ValueError(f"schema {raw.get('schema')!r}, not {LIMITS_SCHEMA}")
        options = raw["options"]
        durations = {float(options[name]["max"]) for name in ("duration", "warmup", "timeout")}
        if len(durations) != 1:
            raise ValueError(f"duration, warmup and timeout differ in their maximum: {durations}")
        return cls(
            max_duration_s=durations.pop(),
            max_rate_rps=float(options["rate"]["max"]),
            max_outstanding=int(options["outstanding"]["max"]),
            max_batch=int(options["batch"]["max"]),
            max_sample_cap=int(options["sample-cap"]["max"]),
            max_ordered_cap=int(options["ordered-cap"]["max"]),
        )


@cache
def read_limits(binary: Path) -> ClientLimits:
    """The limits ``binary`` enforces (asked once per built binary)."""
    try:
        proc = subprocess.run(
            [str(binary), "--limits"], capture_output=True, text=True, timeout=LIMITS_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DriverError(f"{binary.name} --limits: {exc}") from exc
    if proc.returncode != 0:
        raise DriverError(f"{binary.name} --limits exited with {proc.returncode}", proc.stderr)
    try:
        return ClientLimits.from_json(json.loads(proc.stdout))
    except (ValueError, KeyError, TypeError) as exc:
        raise DriverError(f"{binary.name} --limits printed no limits: {exc}") from exc


def client_limits() -> ClientLimits:
    """The limits of the client as built from the sources now."""
    return read_limits(driver_binary())


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class DriverConfig:
    """One run of the client.  Times in seconds, rates in requests per second."""

    mode: Mode
    addr: str = DEFAULT_ADDR
    port: int = DEFAULT_PORT
    size: int = 64
    duration_s: float = 1.0
    warmup_s: float = 0.2
    max_requests: int | None = None
    outstanding: int = 1
    rate_rps: float | None = None
    batch: int = 32
    timeout_s: float = 0.2
    cpu: int | None = None
    netns: str | None = None
    sample_cap: int = 10000
    # entries of the ordered stream (send time, latency) in send order, thinned evenly
    ordered_cap: int = 65536
    seed: int = 1
    busy_poll: bool = False
    wait: str = DEFAULT_WAIT
    arrivals: str = "uniform"

    def __post_init__(self) -> None:
        _check(self.mode in MODES, f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        _check(bool(self.addr) and isinstance(self.addr, str), "addr must be a non-empty string")
        _check(_is_int(self.port) and 1 <= self.port <= 65535, f"port {self.port!r} not 1..65535")
        _check(
            _is_int(self.size) and MIN_REQUEST <= self.size <= MAX_REQUEST,
            f"size {self.size!r} outside {MIN_REQUEST}..{MAX_REQUEST} bytes",
        )
        limits = client_limits()
        max_duration_s = limits.max_duration_s
        _check(
            _finite(self.duration_s) and 0 < self.duration_s <= max_duration_s,
            f"duration_s must be > 0 and <= {max_duration_s:g}, not {self.duration_s!r}",
        )
        _check(
            _finite(self.warmup_s) and 0 <= self.warmup_s <= max_duration_s,
            f"warmup_s must be >= 0, not {self.warmup_s!r}",
        )
        _check(
            _finite(self.timeout_s) and 0 < self.timeout_s <= max_duration_s,
            f"timeout_s must be > 0, not {self.timeout_s!r}",
        )
        _check(
            self.max_requests is None or (_is_int(self.max_requests) and self.max_requests >= 1),
            f"max_requests must be None or >= 1, not {self.max_requests!r}",
        )
        _check(
            _is_int(self.outstanding) and 1 <= self.outstanding <= limits.max_outstanding,
            f"outstanding must be 1..{limits.max_outstanding}, not {self.outstanding!r}",
        )
        _check(
            _is_int(self.batch) and 1 <= self.batch <= limits.max_batch,
            f"batch must be 1..{limits.max_batch}, not {self.batch!r}",
        )
        _check(
            _is_int(self.sample_cap) and 0 <= self.sample_cap <= limits.max_sample_cap,
            f"sample_cap must be 0..{limits.max_sample_cap}, not {self.sample_cap!r}",
        )
        _check(
            _is_int(self.ordered_cap) and 0 <= self.ordered_cap <= limits.max_ordered_cap,
            f"ordered_cap must be 0..{limits.max_ordered_cap}, not {self.ordered_cap!r}",
        )
        _check(_is_int(self.seed) and 0 <= self.seed < 2**64, f"seed must be a u64: {self.seed!r}")
        _check(
            self.cpu is None or (_is_int(self.cpu) and self.cpu >= 0),
            f"cpu must be None or >= 0, not {self.cpu!r}",
        )
        _check(
            self.netns is None or (isinstance(self.netns, str) and self.netns.strip() != ""),
            f"netns must be None or a namespace name, not {self.netns!r}",
        )
        _check(self.wait in WAITS, f"wait must be one of {', '.join(WAITS)}, not {self.wait!r}")
        _check(
            self.arrivals in ARRIVALS,
            f"arrivals must be one of {', '.join(ARRIVALS)}, not {self.arrivals!r}",
        )
        _check(
            self.arrivals == "uniform" or self.mode == "rate",
            "arrivals applies to rate mode only",
        )
        self._check_mode(limits)

    def _check_mode(self, limits: ClientLimits) -> None:
        if self.mode == "rate":
            _check(
                self.rate_rps is not None
                and _finite(self.rate_rps)
                and 0 < self.rate_rps <= limits.max_rate_rps,
                f"rate mode needs 0 < rate_rps <= {limits.max_rate_rps:g}, not {self.rate_rps!r}",
            )
        elif self.rate_rps is not None:
            raise ValueError(f"rate_rps applies to rate mode only, not {self.mode}")
        _check(not self.busy_poll or self.mode == "pingpong", "busy_poll applies to pingpong only")
        _check(
            self.size >= HEADER_SIZE or (self.mode == "pingpong" and self.outstanding == 1),
            f"size {self.size} < {HEADER_SIZE} leaves no room for the seq header: "
            "only pingpong with outstanding=1 can match such replies (by order)",
        )

    def arguments(self) -> list[str]:
        """The client's command-line options for this configuration."""
        args = [
            f"--mode={self.mode}",
            f"--addr={self.addr}",
            f"--port={self.port}",
            f"--size={self.size}",
            f"--duration={self.duration_s!r}",
            f"--warmup={self.warmup_s!r}",
            f"--timeout={self.timeout_s!r}",
            f"--outstanding={self.outstanding}",
            f"--batch={self.batch}",
            f"--seed={self.seed}",
            f"--sample-cap={self.sample_cap}",
            f"--ordered-cap={self.ordered_cap}",
        ]
        if self.max_requests is not None:
            args.append(f"--max-requests={self.max_requests}")
        if self.rate_rps is not None:
            args.append(f"--rate={self.rate_rps!r}")
        if self.cpu is not None:
            args.append(f"--cpu={self.cpu}")
        if self.busy_poll:
            args.append("--busy-poll")
        if self.wait != DEFAULT_WAIT:
            args.append(f"--wait={self.wait}")
        if self.arrivals != "uniform":
            args.append(f"--arrivals={self.arrivals}")
        return args


@dataclass(frozen=True)
class Schedule:
    """Rate mode: how the client kept its schedule in the measured phase.

    ``due`` requests were scheduled before the window closed (at most ``max_requests``);
    ``sent`` of them went out, the other ``dropped_due`` never did (a client that falls
    behind sends what is due late, and what is still due when the window closes not at
    all).  ``due_estimated``: far behind a Poisson schedule, the due ones past the first
    2**24 unsent were counted at the mean rate.  ``send_lag_ns``: how long after its
    scheduled time a request actually went out (mean over the sent ones, and max).
    """

    due: int
    sent: int
    dropped_due: int
    due_estimated: bool
    mean_send_lag_ns: float
    max_send_lag_ns: int

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Schedule:
        return cls(
            due=int(raw["due"]),
            sent=int(raw["sent"]),
            dropped_due=int(raw["dropped_due"]),
            due_estimated=bool(raw["due_estimated"]),
            mean_send_lag_ns=float(raw["send_lag_ns"]["mean"]),
            max_send_lag_ns=int(raw["send_lag_ns"]["max"]),
        )


def _no_values() -> npt.NDArray[np.int64]:
    return np.zeros(0, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class DriverResult:
    """What one measured phase produced.  Latencies in nanoseconds.

    Counts: ``requests`` sent in the phase; ``replies`` distinct valid replies, those that
    came after their timeout included (``counts["late"]``); ``lost`` = requests - replies,
    i.e. never answered (by the end of the drain); ``timeouts`` requests whose reply missed
    ``timeout_s`` (pingpong replaced them); ``duplicates`` extra copies of an answered
    request; ``reordered`` first replies whose seq is below the highest answered so far;
    ``corrupt`` replies of the wrong length or content.  ``counts`` also holds ``stale``
    (replies to requests no longer tracked, e.g. of the warmup), ``send_errors``,
    ``send_calls`` (send/sendmmsg calls) and ``backoffs`` (sleeps after a refused send).

    ``throughput_rps`` is the replies received within the measured window per second of
    it; ``drained`` replies came in the drain after the window and are not in it.

    ``latency_ns``: exact min/max/mean from the client, p50..p999 from ``histogram``; a
    request that timed out is in both at ``timeout_s`` (its RTT is at least that), so the
    histogram holds every request once; all None when nothing was answered.
    ``uncorrected_latency_ns`` (rate mode only): the same from each request's actual send,
    as wrk2's uncorrected figures; ``latency_ns`` counts from its scheduled send.

    The ordered stream keeps the order the reservoir (``samples``) forgets: request
    ``i × ordered_stride`` of the phase (i = 0, 1, ...) sent ``ordered_send_ns[i]`` after
    the phase began (its actual send) with latency ``ordered_latency_ns[i]`` (as in the
    histogram: from the scheduled send in rate mode, at the timeout when it timed out).
    The stride doubles whenever ``ordered_cap`` entries are full; at stride 1 every
    request is there.  ``schedule``: rate mode only (see Schedule).
    """

    requests: int
    replies: int
    lost: int
    duplicates: int
    reordered: int
    corrupt: int
    duration_s: float
    send_rps: float
    throughput_rps: float
    latency_ns: dict[str, float | None]
    histogram: HdrHistogram
    histogram_encoded: str
    samples: npt.NDArray[np.int64]
    sample_cap: int
    client_pid: int
    client_rusage: dict[str, int]
    timeouts: int = 0
    drained: int = 0
    counts: Mapping[str, int] = field(default_factory=dict)
    config: DriverConfig | None = None
    uncorrected_latency_ns: dict[str, float | None] | None = None
    uncorrected_histogram_encoded: str | None = None
    ordered_send_ns: npt.NDArray[np.int64] = field(default_factory=_no_values)
    ordered_latency_ns: npt.NDArray[np.int64] = field(default_factory=_no_values)
    ordered_stride: int = 1
    ordered_cap: int = 0
    schedule: Schedule | None = None
    # the pinned CPU's (busy, idle) /proc/stat ticks over the measured window (None: not
    # pinned, or not read)
    window_cpu_ticks: tuple[int, int] | None = None

    @property
    def window_busy_share(self) -> float | None:
        """The busy share of the client's pinned CPU over the measured window itself
        (whoever ran on it: the driver, and receive processing steered there); None when
        not pinned or when the window was too short for a tick."""
        if self.window_cpu_ticks is None:
            return None
        busy, idle = self.window_cpu_ticks
        return busy / (busy + idle) if busy + idle > 0 else None

    @property
    def loss_ratio(self) -> float:
        return self.lost / self.requests if self.requests else 0.0

    @property
    def client_cpu_share(self) -> float:
        """The client's CPU time (user + system) over the measured window's length: near
        1, the client itself may be what limits the phase.  Its CPU time also covers the
        drain after the window (mostly asleep), so this errs high, never low."""
        cpu_ns = self.client_rusage.get("utime_ns", 0) + self.client_rusage.get("stime_ns", 0)
        return cpu_ns / (self.duration_s * 1e9) if self.duration_s > 0 else 0.0

    @property
    def dropped_due(self) -> int | None:
        """Rate mode: requests due in the phase that were never sent (else None)."""
        return self.schedule.dropped_due if self.schedule is not None else None


def driver_binary() -> Path:
    """The built client (compiled on first use, then cached by source hash; looked up once
    per process and cache folder: hashing the sources and headers for every phase's runs
    cost tenths of a second each under emulation)."""
    found = _driver_in(cache_dir())
    if not found.exists():  # the cache was emptied under us
        _driver_in.cache_clear()
        found = _driver_in(cache_dir())
    return found


@functools.lru_cache(maxsize=4)
def _driver_in(cache: Path) -> Path:
    try:
        return build_executable(BINARY_NAME, SOURCES, libs=["-lm"])
    except BuildError as exc:
        raise DriverError(str(exc)) from exc


def command(
    config: DriverConfig,
    binary: Path,
    out: Path,
    samples_out: Path,
    ordered_out: Path | None = None,
) -> list[str]:
    """The full argv that runs the client for ``config``."""
    argv = [
        *exec_prefix(config.netns),
        str(binary),
        *config.arguments(),
        f"--out={out}",
        f"--samples-out={samples_out}",
    ]
    if ordered_out is not None:
        argv.append(f"--ordered-out={ordered_out}")
    return argv


class _Lines:
    """Reads the client's stdout line by line, never blocking past a deadline."""

    def __init__(self, proc: subprocess.Popen[bytes], stderr: IO[bytes]) -> None:
        assert proc.stdout is not None
        self._proc = proc
        self._fd = proc.stdout.fileno()
        self._stderr = stderr
        self._buf = b""

    def stderr_text(self) -> str:
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read()[-4000:].decode(errors="replace")

    def expect(self, word: str, within_s: float) -> None:
        deadline = time.monotonic() + within_s
        while True:
            line, sep, rest = self._buf.partition(b"\n")
            if sep:
                self._buf = rest
                if line.strip().decode(errors="replace") == word:
                    return
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise DriverError(f"client did not print {word} within {within_s:.1f} s")
            ready, _, _ = select.select([self._fd], [], [], min(left, 0.5))
            if not ready:
                continue
            chunk = os.read(self._fd, 4096)
            if not chunk:
                self._proc.wait(timeout=5.0)
                raise DriverError(
                    f"client exited with status {self._proc.returncode} before {word}",
                    self.stderr_text(),
                )
            self._buf += chunk


def _tell(proc: subprocess.Popen[bytes], word: str) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(f"{word}\n".encode())
        proc.stdin.flush()
    except BrokenPipeError as exc:
        raise DriverError(f"client went away before {word}") from exc


def _reap(owned: OwnedProcess) -> None:
    owned.stop(grace_s=1.0)
    proc = owned.proc
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _int_map(raw: Mapping[str, Any]) -> dict[str, int]:
    return {str(k): int(v) for k, v in raw.items()}


def parse_results(
    raw: Mapping[str, Any],
    samples: npt.NDArray[np.int64],
    pid: int,
    config: DriverConfig | None,
    ordered: npt.NDArray[np.int64] | None = None,
) -> DriverResult:
    """A DriverResult from the client's JSON, its raw samples and (when given) its
    ordered stream as read from ``--ordered-out``: flat (send, latency) pairs."""
    counts = _int_map(raw["counts"])
    hist = hdr.from_buckets(raw["histogram"]["buckets"])
    latency = _latency_summary(raw["latency_ns"], hist, counts["replies"])
    uncorrected: dict[str, float | None] | None = None
    uncorrected_hist: str | None = None
    if "latency_uncorrected_ns" in raw:
        sent = hdr.from_buckets(raw["histogram_uncorrected"]["buckets"])
        uncorrected = _latency_summary(raw["latency_uncorrected_ns"], sent, counts["replies"])
        uncorrected_hist = hdr.encode(sent)
    declared = int(raw["samples"]["count"])
    if declared != len(samples):
        raise DriverError(f"samples file holds {len(samples)} values, results say {declared}")
    pairs = _ordered_pairs(raw.get("ordered"), ordered)
    schedule = Schedule.from_json(raw["schedule"]) if "schedule" in raw else None
    window = raw.get("cpu_window")
    ticks = (int(window["busy_ticks"]), int(window["idle_ticks"])) if window else None
    return DriverResult(
        **{key: counts[key] for key in COUNT_KEYS},
        duration_s=float(raw["duration_s"]),
        send_rps=float(raw["send_rps"]),
        throughput_rps=float(raw["throughput_rps"]),
        latency_ns={k: latency[k] for k in ("min", "p50", "p90", "p99", "p999", "max", "mean")},
        histogram=hist,
        histogram_encoded=hdr.encode(hist),
        samples=samples,
        sample_cap=int(raw["samples"]["cap"]),
        client_pid=pid,
        client_rusage=_int_map(raw["rusage"]),
        window_cpu_ticks=ticks,
        timeouts=counts["timeouts"],
        drained=counts.get("drained", 0),
        counts=counts,
        config=config,
        uncorrected_latency_ns=uncorrected,
        uncorrected_histogram_encoded=uncorrected_hist,
        ordered_send_ns=pairs[:, 0].copy(),
        ordered_latency_ns=pairs[:, 1].copy(),
        ordered_stride=int(raw["ordered"]["stride"]) if "ordered" in raw else 1,
        ordered_cap=int(raw["ordered"]["cap"]) if "ordered" in raw else 0,
        schedule=schedule,
    )


def _ordered_pairs(
    declared: Mapping[str, Any] | None, flat: npt.NDArray[np.int64] | None
) -> npt.NDArray[np.int64]:
    """The ordered stream as an (n, 2) array; empty when it was not written."""
    if flat is None or declared is None:
        return np.zeros((0, 2), dtype=np.int64)
    if len(flat) % 2:
        raise DriverError(f"ordered file holds {len(flat)} values, not pairs")
    count = int(declared["count"])
    if count != len(flat) // 2:
        raise DriverError(f"ordered file holds {len(flat) // 2} pairs, results say {count}")
    return flat.reshape(-1, 2)


def _latency_summary(
    lat: Mapping[str, Any], hist: HdrHistogram, replies: int
) -> dict[str, float | None]:
    """Exact min/max/mean from the client, percentiles from the histogram (None: nothing)."""
    latency: dict[str, float | None] = {"min": None, "max": None, "mean": None}
    if replies and lat.get("count"):
        latency = {"min": float(lat["min"]), "max": float(lat["max"]), "mean": float(lat["mean"])}
        latency.update(hdr.percentiles(hist))
    else:
        latency.update({name: None for name, _ in hdr.PERCENTILES})
    return {k: latency[k] for k in ("min", "p50", "p90", "p99", "p999", "max", "mean")}


def _read_results(
    out: Path, samples_out: Path, ordered_out: Path, pid: int, config: DriverConfig
) -> DriverResult:
    try:
        raw = json.loads(out.read_text())
        samples = np.fromfile(samples_out, dtype="<i8").astype(np.int64)
        ordered = np.fromfile(ordered_out, dtype="<i8").astype(np.int64)
        return parse_results(raw, samples, pid, config, ordered)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DriverError(f"unreadable client results: {exc}") from exc


def run_driver(
    config: DriverConfig,
    *,
    on_measure_start: Callable[[int], None] | None = None,
    on_measure_end: Callable[[], None] | None = None,
    timeout_margin_s: float = 10.0,
) -> DriverResult:
    """Runs one warmup + measured phase of the client against ``config.addr:port``."""
    binary = driver_binary()
    step_s = config.duration_s + config.warmup_s + config.timeout_s + timeout_margin_s
    with tempfile.TemporaryDirectory(prefix="hellobench-driver-") as tmp:
        out, samples_out = Path(tmp) / "results.json", Path(tmp) / "samples.i64"
        ordered_out = Path(tmp) / "ordered.i64"
        argv = command(config, binary, out, samples_out, ordered_out)
        with open(Path(tmp) / "stderr", "w+b") as err:
            owned = OwnedProcess(
                argv,
                name="driver",
                scratch=Path(tmp),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,
            )
            proc = owned.proc
            try:
                lines = _Lines(proc, err)
                lines.expect("READY", step_s)
                if on_measure_start is not None:
                    on_measure_start(proc.pid)
                _tell(proc, "GO")
                lines.expect("DONE", step_s)
                if on_measure_end is not None:
                    on_measure_end()
                _tell(proc, "EXIT")
                try:
                    code = proc.wait(timeout=timeout_margin_s)
                except subprocess.TimeoutExpired as exc:
                    raise DriverError(
                        "client did not exit after EXIT", lines.stderr_text()
                    ) from exc
                if code != 0:
                    raise DriverError(f"client exited with status {code}", lines.stderr_text())
                return _read_results(out, samples_out, ordered_out, proc.pid, config)
            finally:
                _reap(owned)
