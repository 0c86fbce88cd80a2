"""The metric registry: every figure a row yields, named once, with its unit, which way is
better, whether it is a time, a count or a rate, and how to read it from a row.

The summary, the report's tables, the claim, ``compare`` and the regression guard all take
their metrics from here; ``Run.frame()`` has one column per metric, under its name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from bench.results.rows import PhaseRow

Better = Literal["lower", "higher"]
# time: durations (ns); count: events per request; rate: per second; share: a percentage
MetricKind = Literal["time", "count", "rate", "share"]


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    unit: str
    better: Better
    kind: MetricKind
    read: Callable[[PhaseRow], float | None]
    description: str

    @property
    def higher_is_worse(self) -> bool:
        return self.better == "lower"


# A request the driver gave up on is recorded at its reply timeout (its RTT is at least
# that): a percentile at the timeout is lost requests, not a latency.  The histograms keep
# 3 significant digits, so "at the timeout" is within their resolution of it.
TIMEOUT_RESOLUTION = 0.998


def at_timeout(ns: float | None, timeout_ns: float | None) -> bool:
    """Whether the latency ``ns`` is the driver's timeout (a lost request), not a time."""
    return ns is not None and timeout_ns is not None and ns >= timeout_ns * TIMEOUT_RESOLUTION


def _latency(key: str) -> Callable[[PhaseRow], float | None]:
    return lambda row: row.latency_ns.get(key)


def _uncorrected(key: str) -> Callable[[PhaseRow], float | None]:
    def read(row: PhaseRow) -> float | None:
        lat = row.latency_uncorrected_ns
        return None if lat is None else lat.get(key)

    return read


def _per_request(name: str) -> Callable[[PhaseRow], float | None]:
    def read(row: PhaseRow) -> float | None:
        value: float | None = getattr(row.per_request, name)
        return value

    return read


def _cpu(kind: str) -> Callable[[PhaseRow], float | None]:
    return lambda row: row.per_request.cpu_ns.get(kind)


def _counted_p50(row: PhaseRow) -> float | None:
    return None if row.counted is None else row.counted.latency_ns.p50


def _probe_cost_p50(row: PhaseRow) -> float | None:
    """p50 RTT of the counting run minus that of the timed run of the same phase."""
    counted, timed = _counted_p50(row), row.latency_ns.p50
    if row.timing != "probe-free" or counted is None or timed is None:
        return None
    return counted - timed


def _loss_pct(row: PhaseRow) -> float | None:
    return 100.0 * row.lost / row.requests if row.requests else None


def _drained_pct(row: PhaseRow) -> float | None:
    return 100.0 * row.drained / row.replies if row.drained is not None and row.replies else None


def _syscalls_both(row: PhaseRow) -> float | None:
    """Server + client syscalls per request; an impl without a server process makes none."""
    pr = row.per_request
    server = pr.server_syscalls
    if server is None and not row.has_server_process:
        server = 0.0
    if server is None or pr.client_syscalls is None:
        return None
    return server + pr.client_syscalls


def _request_path(syscalls: float | None, eagain: float | None) -> float | None:
    """Syscalls less the ones that returned EAGAIN; None when either is unknown."""
    if syscalls is None or eagain is None:
        return None
    return syscalls - eagain


def _server_request_syscalls(row: PhaseRow) -> float | None:
    pr = row.per_request
    return _request_path(pr.server_syscalls, pr.server_eagain_syscalls)


def _client_request_syscalls(row: PhaseRow) -> float | None:
    pr = row.per_request
    return _request_path(pr.client_syscalls, pr.client_eagain_syscalls)


def _request_syscalls_both(row: PhaseRow) -> float | None:
    """Server + client request-path syscalls; an impl without a server process makes none."""
    server = _server_request_syscalls(row)
    if server is None and row.per_request.server_syscalls is None and not row.has_server_process:
        server = 0.0
    client = _client_request_syscalls(row)
    if server is None or client is None:
        return None
    return server + client


_LATENCY = (
    ("min", "min RTT"), ("p50", "p50 RTT"), ("p90", "p90 RTT"), ("p99", "p99 RTT"),
    ("p999", "p99.9 RTT"), ("max", "max RTT"), ("mean", "mean RTT"),
)  # fmt: skip

METRICS: tuple[Metric, ...] = (
    *(
        Metric(f"rtt_{key}", label, "ns", "lower", "time", _latency(key), f"{label}, ns")
        for key, label in _LATENCY
    ),
    Metric("rtt_uncorrected_p50", "p50 RTT from send", "ns", "lower", "time",
           _uncorrected("p50"), "rate mode: p50 RTT from the actual send (uncorrected), ns"),
    Metric("rtt_uncorrected_p99", "p99 RTT from send", "ns", "lower", "time",
           _uncorrected("p99"), "rate mode: p99 RTT from the actual send (uncorrected), ns"),
    Metric("throughput_rps", "throughput", "req/s", "higher", "rate",
           lambda r: r.throughput_rps, "replies per second in the measured window"),
    Metric("send_rps", "sent", "req/s", "higher", "rate", lambda r: r.send_rps,
           "requests sent per second"),
    Metric("loss_pct", "loss", "%", "lower", "share", _loss_pct,
           "requests without a reply, percent of requests sent"),
    Metric("drained_pct", "drained", "%", "lower", "share", _drained_pct,
           "replies collected after the window (not in throughput), percent of replies"),
    Metric("server_syscalls_per_req", "server syscalls/req", "per request", "lower", "count",
           _per_request("server_syscalls"), "syscalls of the server's threads per reply"),
    Metric("client_syscalls_per_req", "client syscalls/req", "per request", "lower", "count",
           _per_request("client_syscalls"), "syscalls of the driver per reply"),
    Metric("syscalls_per_req", "syscalls/req", "per request", "lower", "count", _syscalls_both,
           "server + client syscalls per reply (no server process: none counted)"),
    Metric("server_eagain_per_req", "server empty polls/req", "per request", "lower",
           "count", _per_request("server_eagain_syscalls"),
           "server syscalls that found nothing: EAGAIN, or a ppoll() returning 0"),
    Metric("client_eagain_per_req", "client empty polls/req", "per request", "lower",
           "count", _per_request("client_eagain_syscalls"),
           "driver syscalls that found nothing: EAGAIN, or a ppoll() returning 0"),
    Metric("server_request_syscalls_per_req", "server request syscalls/req", "per request",
           "lower", "count", _server_request_syscalls,
           "server syscalls per reply less those that returned EAGAIN: the request path's"),
    Metric("client_request_syscalls_per_req", "client request syscalls/req", "per request",
           "lower", "count", _client_request_syscalls,
           "driver syscalls per reply less those that returned EAGAIN: the request path's"),
    Metric("request_syscalls_per_req", "request syscalls/req", "per request", "lower",
           "count", _request_syscalls_both,
           "server + client request-path syscalls per reply (no server process: none counted)"),
    Metric("server_ctx_per_req", "server ctx/req", "per request", "lower", "count",
           _per_request("server_ctx_switches"), "context switches of the server's threads"),
    Metric("client_ctx_per_req", "client ctx/req", "per request", "lower", "count",
           _per_request("client_ctx_switches"), "context switches of the driver"),
    Metric("kthread_ctx_per_req", "kthread ctx/req", "per request", "lower", "count",
           _per_request("kernel_thread_ctx_switches"),
           "context switches of the server's kernel threads"),
    Metric("system_ctx_per_req", "system ctx/req", "per request", "lower", "count",
           _per_request("system_ctx_switches"), "context switches of the whole machine"),
    Metric("cpu_user_ns_per_req", "user CPU/req", "ns", "lower", "time", _cpu("user"),
           "system-wide user CPU time per reply"),
    Metric("cpu_system_ns_per_req", "system CPU/req", "ns", "lower", "time", _cpu("system"),
           "system-wide kernel CPU time per reply (outside interrupts)"),
    Metric("cpu_softirq_ns_per_req", "softirq CPU/req", "ns", "lower", "time",
           _cpu("softirq"), "system-wide softirq CPU time per reply"),
    Metric("cpu_irq_ns_per_req", "irq CPU/req", "ns", "lower", "time", _cpu("irq"),
           "system-wide hard-irq CPU time per reply"),
    Metric("cpu_ns_per_req", "CPU/req", "ns", "lower", "time", _cpu("total"),
           "system-wide busy CPU time per reply: user + system + softirq + irq + steal"),
    Metric("server_cpu_ns_per_req", "server CPU/req", "ns", "lower", "time",
           _per_request("server_cpu_ns"), "CPU time of the server's threads and kernel threads"),
    Metric("client_cpu_ns_per_req", "client CPU/req", "ns", "lower", "time",
           _per_request("client_cpu_ns"), "CPU time of the driver"),
    Metric("server_cpu_busy_ns_per_req", "server CPU busy/req", "ns", "lower", "time",
           _per_request("server_cpu_busy_ns"),
           "busy time of the CPU the server was pinned to (softirq, kernel threads included)"),
    Metric("client_cpu_busy_ns_per_req", "client CPU busy/req", "ns", "lower", "time",
           _per_request("client_cpu_busy_ns"), "busy time of the CPU the client was pinned to"),
    Metric("steal_pct", "steal", "%", "lower", "share", lambda r: r.steal_pct,
           "CPU time the hypervisor gave to others, % of the phase's CPU time"),
    Metric("bpf_run_ns", "BPF run ns", "ns", "lower", "time", _per_request("bpf_run_ns"),
           "BPF program run time per program run (kernel.bpf_stats_enabled)"),
    Metric("counted_rtt_p50", "p50 RTT, probes on", "ns", "lower", "time", _counted_p50,
           "p50 RTT of the phase's counting run (tracepoint, perf events, BPF stats on)"),
    Metric("probe_cost_p50", "probe cost, p50", "ns", "lower", "time", _probe_cost_p50,
           "p50 RTT with the probes on minus p50 RTT of the probe-free timed run"),
)  # fmt: skip

BY_NAME: Mapping[str, Metric] = {m.name: m for m in METRICS}
METRIC_NAMES = tuple(BY_NAME)


def metric(name: str) -> Metric:
    """The metric called ``name``; ValueError naming the known ones otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r} (known: {', '.join(METRIC_NAMES)})") from None


def format_value(value: float, unit: str) -> str:
    """A metric's value for a table cell, by its unit: ns as µs, rates per second, the rest
    to three significant digits."""
    if unit == "ns":
        return f"{value / 1000:.2f} µs"
    if unit == "req/s":
        return f"{value:,.0f}/s"
    return f"{value:.3g}"


def fmt_us(ns: float) -> str:
    """Nanoseconds as microseconds with three significant figures or so."""
    us = ns / 1000.0
    a = abs(us)
    if a >= 100:
        return f"{us:.0f}"
    if a >= 10:
        return f"{us:.1f}"
    return f"{us:.2f}"
