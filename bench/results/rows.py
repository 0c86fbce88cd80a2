"""The typed records of a results file: one :class:`PhaseRow` per measured phase, with its
latency, per-request costs and accounting, and the :class:`Configuration` that names what
its trials are trials of.

Every record converts to and from the JSON of schema hellobench/6 (``to_json`` /
``from_json``); nothing else in the suite reads a row's JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from bench import factors
from bench.driver.modes import Mode
from bench.impl.manifest import Kind
from bench.results.codec import OMIT_NONE, JsonRecord

Status = Literal["ok", "failed"]
LATENCY_KEYS = ("min", "p50", "p90", "p99", "p999", "max", "mean")


# The run factors' defaults: what a row written before a factor existed was measured under
# (bench/factors.py is the one definition; a row has one field per factor).
DEFAULT_RX_CPU = factors.DEFAULTS["rx_cpu"]
DEFAULT_IDLE = factors.DEFAULTS["idle"]
DEFAULT_CLIENT_WAIT = factors.DEFAULTS["client_wait"]
DEFAULT_ARRIVALS = factors.DEFAULTS["arrivals"]


@dataclass(frozen=True)
class Latency(JsonRecord):
    """Round-trip times of one phase in ns (None: no reply was timed).  A request that
    timed out counts at the driver's timeout (in rows that have ``drained``; older rows
    left such requests out)."""

    min: float | None = None
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    p999: float | None = None
    max: float | None = None
    mean: float | None = None

    def get(self, key: str) -> float | None:
        value: float | None = getattr(self, key)
        return value


@dataclass(frozen=True)
class CpuNs(JsonRecord):
    """System-wide CPU time per answered request by kind, in ns."""

    user: float | None = None
    system: float | None = None
    softirq: float | None = None
    irq: float | None = None
    total: float | None = None

    KINDS = ("user", "system", "softirq", "irq", "total")

    def get(self, kind: str) -> float | None:
        value: float | None = getattr(self, kind)
        return value


@dataclass(frozen=True)
class PerRequest(JsonRecord):
    """A phase's costs divided by its answered requests (``bpf_run_ns``: per program run).

    None means not measured here, or no subject (no server process for an eBPF impl);
    never 0 for "unknown"."""

    server_syscalls: float | None = None
    client_syscalls: float | None = None
    # Of those syscalls, the empty polls: the ones that returned EAGAIN, or a ppoll() that
    # returned 0 — polls that found nothing (a busy-polling server, a spinning client), on
    # no request's path.
    server_eagain_syscalls: float | None = None
    client_eagain_syscalls: float | None = None
    server_ctx_switches: float | None = None
    client_ctx_switches: float | None = None
    kernel_thread_ctx_switches: float | None = None
    system_ctx_switches: float | None = None
    server_cpu_ns: float | None = None
    client_cpu_ns: float | None = None
    bpf_run_ns: float | None = None
    # Busy time (user + system + softirq + irq + steal, /proc/stat ticks) of the CPU the
    # server, and the one the client, was pinned to: where each side's cost lands, softirq
    # and kernel threads included, without the other side's own (None: not pinned).
    server_cpu_busy_ns: float | None = None
    client_cpu_busy_ns: float | None = None
    cpu_ns: CpuNs = field(default_factory=CpuNs)
    # With the server on another host (topology two-hosts), that host's CPU by kind, all
    # its CPUs summed (``cpu_ns`` is then the client host's); absent otherwise.
    server_host_cpu_ns: CpuNs | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True)
class Accounting(JsonRecord):
    """Whether a server process was accounted, and where the cost shows when not."""

    server_process: bool = True
    note: str = ""


@dataclass(frozen=True)
class Samples(JsonRecord):
    """Where a phase's raw RTT samples are (relative to the run folder) and how drawn."""

    file: str
    count: int
    cap: int
    method: str


# How a row's times were taken.  probe-free: the timed run had no tracepoint, perf event or
# BPF statistics enabled, and the counts come from a separate counting run right after it;
# hooks-held: the hooks stayed enabled through the timed run (said why in metric_notes);
# probed: times and counts from one run with the probes on (rows written before the split).
TIMINGS = ("probe-free", "hooks-held", "probed")
DEFAULT_TIMING = "probed"


@dataclass(frozen=True)
class Counted(JsonRecord):
    """The counting run of a phase: the same load, with the probes on.  Its times are kept
    only to measure what the probes cost (paired against the timed run of the same row)."""

    duration_s: float
    replies: int
    throughput_rps: float
    latency_ns: Latency = field(default_factory=Latency)


@dataclass(frozen=True)
class GateCheck(JsonRecord):
    """One validity gate of a phase (bench/analysis/gates.py): ``value`` measured against
    ``threshold`` (None: not a finite number), passed or not; ``detail`` says what was
    measured, in a sentence."""

    name: str
    value: float | None
    threshold: float | None
    passed: bool
    detail: str


@dataclass(frozen=True)
class Configuration:
    """What the trials of one configuration share: every field that is not an outcome.

    The offered rate is part of it only when it was given absolutely; a rate given as a
    fraction of the impl's measured maximum is named by the fraction (the maximum is
    measured anew by every run)."""

    env: str
    topology: str
    impl: str
    mode: str
    size: int
    outstanding: int | None = None
    load_fraction: float | None = None
    offered_rps: float | None = None
    server_cpu: int | None = None
    client_cpu: int | None = None
    rx_cpu: str = DEFAULT_RX_CPU
    idle: str = DEFAULT_IDLE
    server_options: str = ""  # the server levels of the phase, "k=v" pairs (none: "")
    client_wait: str = DEFAULT_CLIENT_WAIT
    arrivals: str = DEFAULT_ARRIVALS

    def label(self) -> str:
        load = ""
        if self.load_fraction is not None:
            load = f" @{self.load_fraction:g}"
        elif self.offered_rps is not None:
            load = f" @{self.offered_rps:.0f}/s"
        extra = factors.label(self.factor_levels())
        extra += f" [{self.server_options}]" if self.server_options else ""
        return f"{self.env}/{self.impl} {self.mode} {self.size}B {self.topology}{load}{extra}"

    def factor_levels(self) -> dict[str, str]:
        """The level of every run factor (bench/factors.py), by factor name."""
        return {name: getattr(self, name) for name in factors.NAMES}

    def sort_key(self) -> tuple[Any, ...]:
        def n(x: float | None) -> float:
            return -1.0 if x is None else float(x)

        return (
            self.env, self.impl, self.mode, self.size, self.topology, n(self.outstanding),
            n(self.load_fraction), n(self.offered_rps), n(self.server_cpu), n(self.client_cpu),
            *(getattr(self, name) for name in factors.NAMES), self.server_options,
        )  # fmt: skip


CONFIG_FIELDS = tuple(f.name for f in fields(Configuration))


@dataclass(frozen=True)
class PhaseRow(JsonRecord):
    """One measured phase (one trial of one configuration): what was sent, what came back,
    and what it cost."""

    env: str
    impl: str
    kind: Kind
    mode: Mode
    size: int
    topology: str
    trial: int
    status: Status
    offered_rps: float | None = None
    load_fraction: float | None = None
    server_cpu: int | None = None
    client_cpu: int | None = None
    rx_cpu: str = DEFAULT_RX_CPU
    idle: str = DEFAULT_IDLE
    server_options: str = ""
    client_wait: str = DEFAULT_CLIENT_WAIT
    arrivals: str = DEFAULT_ARRIVALS
    error: str | None = None
    outstanding: int | None = None
    requests: int = 0
    replies: int = 0
    lost: int = 0
    duplicates: int = 0
    reordered: int = 0
    corrupt: int = 0
    duration_s: float = 0.0
    throughput_rps: float = 0.0
    send_rps: float | None = None
    drained: int | None = None  # replies collected after the window, not in throughput_rps
    steal_pct: float | None = None  # steal, % of all CPU time of the phase's counting run
    latency_ns: Latency = field(default_factory=Latency)
    # rate mode: from each request's actual send (uncorrected), beside latency_ns, which
    # counts from its scheduled send
    latency_uncorrected_ns: Latency | None = field(default=None, metadata=OMIT_NONE)
    histogram_uncorrected: str | None = None
    per_request: PerRequest = field(default_factory=PerRequest)
    accounting: Accounting | None = field(default=None, metadata=OMIT_NONE)
    metric_notes: tuple[str, ...] = ()
    impl_counters: Mapping[str, int] = field(default_factory=dict)
    histogram: str | None = None
    samples: Samples | None = None
    timing: str = DEFAULT_TIMING
    counted: Counted | None = field(default=None, metadata=OMIT_NONE)
    gates: tuple[GateCheck, ...] = ()  # empty: not checked (rows before hellobench/5)
    # a re-run: why its first attempt was not kept (runner/measure.py retries once)
    retried: str | None = field(default=None, metadata=OMIT_NONE)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def configuration(self) -> Configuration:
        """Every field the row shares with its configuration; an offered rate given as a
        fraction of the measured maximum is named by the fraction alone."""
        shared = {name: getattr(self, name) for name in CONFIG_FIELDS}
        if self.load_fraction is not None:
            shared["offered_rps"] = None
        return Configuration(**shared)

    @property
    def has_server_process(self) -> bool:
        """False only when the row says no server process was accounted (eBPF, softirq)."""
        return self.accounting is None or self.accounting.server_process


@dataclass(frozen=True)
class Skip(JsonRecord):
    """An impl not measured in an environment, and why."""

    impl: str
    env: str
    reason: str
