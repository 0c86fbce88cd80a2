"""One measured phase: the driver floods a running server while the probes record; the
outcome is one :class:`~bench.results.rows.PhaseRow`."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Protocol, cast, runtime_checkable

import numpy as np

from bench import factors
from bench.driver.client import DriverConfig, DriverError, DriverResult, run_driver
from bench.driver.modes import Mode
from bench.impl.api import Accounting, RunningServer
from bench.impl.manifest import Kind
from bench.metrics.anchors import measurement_hooks_held
from bench.metrics.bpf import stats_enabled
from bench.metrics.probe import PhaseMetrics, PhaseProbe
from bench.results.rows import (
    LATENCY_KEYS,
    Configuration,
    Counted,
    CpuNs,
    GateCheck,
    Latency,
    PerRequest,
    PhaseRow,
    Samples,
    Status,
)
from bench.results.rows import Accounting as RowAccounting
from bench.runner.validity import Machine, phase_gates

SAMPLING = "reservoir (Algorithm R) over the measured phase"
# The counting run's length: counts per request settle within a few thousand requests, so
# the counting run needs no more than this even when the timed run is longer.
COUNTING_MAX_S = 0.2


@dataclass(frozen=True)
class PhaseSpec:
    """Which phase to measure: one round (``trial``) of one configuration, served by an
    impl of ``kind``, at the offered rate the run computed (rate mode; the configuration
    names a rate given as a fraction of the measured maximum by the fraction alone).
    ``key`` names the phase uniquely inside a run."""

    configuration: Configuration
    trial: int
    kind: Kind
    offered_rps: float | None = None

    @classmethod
    def of(cls, trial: int, kind: Kind, offered_rps: float | None = None,
           **configuration: Any) -> PhaseSpec:  # fmt: skip
        """The phase of the Configuration ``configuration``'s fields name."""
        return cls(Configuration(**configuration), trial, kind, offered_rps)

    def at_load(self, offered_rps: float, fraction: float | None) -> PhaseSpec:
        """This phase at an offered rate (a fraction of the measured maximum, or absolute)."""
        named = None if fraction is not None else offered_rps
        return PhaseSpec(
            replace(self.configuration, load_fraction=fraction, offered_rps=named),
            self.trial, self.kind, offered_rps,
        )  # fmt: skip

    @property
    def mode(self) -> Mode:
        return cast(Mode, self.configuration.mode)

    @property
    def size(self) -> int:
        return self.configuration.size

    @property
    def key(self) -> str:
        c = self.configuration
        load = f"-r{self.offered_rps:.0f}" if self.offered_rps else ""
        levels = factors.key(c.factor_levels())
        if c.server_options:
            levels += "-" + c.server_options.replace("=", "").replace(",", "-")
        return f"{c.env}-{c.topology}-{c.impl}-{c.mode}-{c.size}{load}{levels}-t{self.trial}"

    def factor_levels(self) -> dict[str, str]:
        """The level of every run factor (bench/factors.py), by factor name."""
        return self.configuration.factor_levels()

    def row(self, status: Status, error: str | None = None) -> PhaseRow:
        """The row of this phase with nothing measured yet (zeros, no figures): the
        configuration's fields, the round, the kind and the offered rate."""
        shared = {f.name: getattr(self.configuration, f.name) for f in fields(Configuration)}
        return PhaseRow(**shared | {"offered_rps": self.offered_rps}, trial=self.trial,
                        kind=self.kind, status=status, error=error)  # fmt: skip


@runtime_checkable
class ProbedWhereItRuns(Protocol):
    """A server on another host: its side is counted by probes there, around the same
    measured run as the probes here, and its rows describe it as it is accounted there."""

    def probe_start(self) -> None: ...

    def probe_stop(self) -> PhaseMetrics: ...

    def reported_accounting(self) -> Accounting: ...


# What the probes here say of a server that is not here; the server host's figures replace it.
_NO_SERVER_HERE = ("no server process", "no server task", "no BPF programs accounted",
                   "no kernel threads accounted")  # fmt: skip


def with_server_side(here: PhaseMetrics, there: PhaseMetrics) -> PhaseMetrics:
    """The client's figures (and this host's CPU) from ``here``, the server's from
    ``there`` (its probes on the server host); notes from there say so.  The window there
    is a little wider (one request to the agent at each end, with no load on the server)."""
    notes = [n for n in here.notes if not n.startswith(_NO_SERVER_HERE)]
    notes += [f"server host: {n}" for n in there.notes if not n.startswith("no client process")]
    return replace(
        here,
        server_syscalls=there.server_syscalls,
        server_eagain_syscalls=there.server_eagain_syscalls,
        server_ctx_switches=there.server_ctx_switches,
        kernel_thread_ctx_switches=there.kernel_thread_ctx_switches,
        server_cpu_ns=there.server_cpu_ns,
        bpf_run_ns=there.bpf_run_ns,
        bpf_run_cnt=there.bpf_run_cnt,
        server_host_cpu_ns_by_cpu=there.cpu_ns_by_cpu,
        notes=tuple(dict.fromkeys(notes)),
    )


def failed_row(spec: PhaseSpec, error: str) -> PhaseRow:
    """The row of a phase that could not be measured: zeros counted, nothing invented."""
    return spec.row("failed", error)


def _summed(by_cpu: dict[int, dict[str, float]]) -> dict[str, float]:
    """CPU time by kind, summed over CPUs."""
    total: dict[str, float] = {}
    for kinds in by_cpu.values():
        for kind, ns in kinds.items():
            total[kind] = total.get(kind, 0.0) + ns
    return total


def per_request(
    metrics: PhaseMetrics,
    replies: int,
    server_cpu: int | None = None,
    client_cpu: int | None = None,
) -> PerRequest:
    """Every figure divided by ``replies``; ``bpf_run_ns`` is per program run instead; the
    busy time of the server's and the client's pinned CPUs when they were pinned (the
    server's, and ``server_host_cpu_ns``, from the server host's CPUs when it is another).

    None stays None; with no replies everything is None.
    """

    def div(value: float | None) -> float | None:
        if value is None or replies <= 0:
            return None
        return value / replies

    bpf_run_ns = None
    if replies > 0 and metrics.bpf_run_ns is not None and metrics.bpf_run_cnt:
        bpf_run_ns = metrics.bpf_run_ns / metrics.bpf_run_cnt
    cpu = metrics.cpu_ns

    def busy(pinned: int | None, cpus: dict[int, dict[str, float]]) -> float | None:
        by_cpu = cpus.get(pinned) if pinned is not None else None
        return None if by_cpu is None else div(by_cpu.get("total"))

    def per_kind(ns: dict[str, float]) -> CpuNs:
        return CpuNs(**{kind: div(ns.get(kind)) for kind in CpuNs.KINDS})

    server_cpus = metrics.server_host_cpu_ns_by_cpu
    there = None if server_cpus is None else _summed(server_cpus)

    return PerRequest(
        server_syscalls=div(metrics.server_syscalls),
        client_syscalls=div(metrics.client_syscalls),
        server_eagain_syscalls=div(metrics.server_eagain_syscalls),
        client_eagain_syscalls=div(metrics.client_eagain_syscalls),
        server_ctx_switches=div(metrics.server_ctx_switches),
        client_ctx_switches=div(metrics.client_ctx_switches),
        kernel_thread_ctx_switches=div(metrics.kernel_thread_ctx_switches),
        system_ctx_switches=div(metrics.system_ctx_switches),
        server_cpu_ns=div(metrics.server_cpu_ns),
        client_cpu_ns=div(metrics.client_cpu_ns),
        bpf_run_ns=bpf_run_ns,
        server_cpu_busy_ns=busy(server_cpu, server_cpus or metrics.cpu_ns_by_cpu),
        client_cpu_busy_ns=busy(client_cpu, metrics.cpu_ns_by_cpu),
        cpu_ns=per_kind(cpu),
        server_host_cpu_ns=None if there is None else per_kind(there),
    )


STEAL_NOTE_PCT = 1.0


def steal_pct(metrics: PhaseMetrics) -> float | None:
    """Steal time as a share of all CPU time (busy + idle + iowait) of the phase."""
    cpu = metrics.cpu_ns
    whole = sum(cpu.get(k, 0.0) for k in ("total", "idle", "iowait"))
    return None if whole <= 0 else 100.0 * cpu.get("steal", 0.0) / whole


def _save_samples(samples_dir: Path, spec: PhaseSpec, result: DriverResult) -> Samples:
    samples_dir.mkdir(parents=True, exist_ok=True)
    name = f"{spec.key}.npy"
    np.save(samples_dir / name, np.asarray(result.samples, dtype=np.int64))
    return Samples(f"{samples_dir.name}/{name}", len(result.samples), result.sample_cap, SAMPLING)


def measured_row(
    spec: PhaseSpec,
    result: DriverResult,
    metrics: PhaseMetrics,
    accounting: Accounting,
    counters: dict[str, int],
    samples: Samples | None,
    counted: Counted | None = None,
    timing: str = "probed",
) -> PhaseRow:
    """The row of a measured phase: times and loss from ``result`` (the timed run), counts
    from ``metrics`` divided by the replies of the run they were counted in."""
    note = accounting.note or "; ".join(metrics.notes)
    failed = bool(result.requests and not result.replies)
    counted_replies = result.replies if counted is None else counted.replies
    costs = per_request(
        metrics, counted_replies, spec.configuration.server_cpu, spec.configuration.client_cpu
    )
    checked: tuple[GateCheck, ...] = ()
    gate_notes: tuple[str, ...] = ()
    if not failed:
        share = result.window_busy_share  # None: the driver gate says it was not computed
        machine = Machine(steal_pct(metrics), metrics.server_migrations, metrics.client_migrations)
        checked, gate_notes = phase_gates(
            spec.configuration, spec.offered_rps, result, share, machine
        )
    return replace(
        spec.row(
            "failed" if failed else "ok",
            f"server answered none of {result.requests} requests" if failed else None,
        ),
        requests=result.requests,
        replies=result.replies,
        lost=result.lost,
        duplicates=result.duplicates,
        reordered=result.reordered,
        corrupt=result.corrupt,
        duration_s=result.duration_s,
        throughput_rps=result.throughput_rps,
        send_rps=result.send_rps,
        drained=result.drained,
        latency_ns=_latency(result),
        latency_uncorrected_ns=(
            None
            if result.uncorrected_latency_ns is None
            else Latency(**{k: result.uncorrected_latency_ns.get(k) for k in LATENCY_KEYS})
        ),
        histogram_uncorrected=result.uncorrected_histogram_encoded,
        per_request=costs,
        steal_pct=steal_pct(metrics),
        accounting=RowAccounting(server_process=bool(accounting.pids), note=note),
        metric_notes=(*metrics.notes, *gate_notes),
        impl_counters=counters,
        histogram=result.histogram_encoded,
        samples=samples,
        timing=timing,
        counted=counted,
        gates=checked,
    )


def _latency(result: DriverResult) -> Latency:
    return Latency(**{k: result.latency_ns.get(k) for k in LATENCY_KEYS})


def _counting_run(
    driver_config: DriverConfig,
    server: RunningServer,
    accounting: Accounting,
    bpf: bool,
    hooks_held: bool,
) -> tuple[DriverResult, PhaseMetrics]:
    """The same load again with every probe on: the counts of the phase.  The hooks are
    switched on for this run only, unless the caller holds them for the whole run.  A
    server on another host has its probes there started and stopped with ours."""
    box: dict[str, PhaseMetrics] = {}
    probe: PhaseProbe | None = None
    elsewhere = server if isinstance(server, ProbedWhereItRuns) else None

    def on_start(client_pid: int) -> None:
        nonlocal probe
        probe = PhaseProbe(accounting, client_pid)
        probe.start()
        if elsewhere is not None:
            elsewhere.probe_start()

    def on_end() -> None:
        if probe is not None:
            box["metrics"] = probe.stop()
            if elsewhere is not None:
                box["metrics"] = with_server_side(box["metrics"], elsewhere.probe_stop())

    hooks: AbstractContextManager[list[str]] = (
        nullcontext([]) if hooks_held else measurement_hooks_held(bpf_stats=bpf)
    )
    with hooks as notes:
        result = run_driver(driver_config, on_measure_start=on_start, on_measure_end=on_end)
    if "metrics" not in box:
        raise DriverError("metric probes did not complete")
    metrics = box["metrics"]
    if notes:
        metrics = replace(metrics, notes=(*metrics.notes, *(f"hook not held: {n}" for n in notes)))
    return result, metrics


def measure_phase(
    spec: PhaseSpec,
    server: RunningServer,
    driver_config: DriverConfig,
    samples_dir: Path,
    hooks_held: str | None = None,
) -> PhaseRow:
    """Run one phase against ``server`` and return its row (a failed row on any fault).

    The phase is two runs of the same load: a timed run with nothing enabled that would
    slow the machine (no tracepoint, perf event or BPF statistics), then a counting run
    with every probe on.  ``hooks_held`` (the reason, when the caller holds the hooks for
    the whole run) makes one run do both: with the hooks on anyway, a second run would only
    repeat the first; the row says it was timed with them held.  The counting run lasts
    at most ``COUNTING_MAX_S``."""
    accounting = server.accounting()
    stats_outside = stats_enabled() is True  # set machine-wide by someone else
    if hooks_held is not None:
        try:
            timed, metrics = _counting_run(
                driver_config, server, accounting, spec.kind == "ebpf", True
            )
        except (DriverError, OSError) as exc:
            return failed_row(spec, f"driver failed: {exc}")
        result = timed
    else:
        try:
            timed = run_driver(driver_config)
        except (DriverError, OSError) as exc:
            return failed_row(spec, f"driver failed: {exc}")
        problem = server.health()
        if problem is not None:
            return failed_row(spec, f"server failed during the phase: {problem}")
        counting_config = replace(
            driver_config,
            seed=driver_config.seed + 1,
            sample_cap=0,
            duration_s=min(driver_config.duration_s, COUNTING_MAX_S),
        )
        try:
            result, metrics = _counting_run(
                counting_config, server, accounting, spec.kind == "ebpf", False
            )
        except (DriverError, OSError) as exc:
            return failed_row(spec, f"counting run failed: {exc}")
    problem = server.health()
    if problem is not None:
        return failed_row(spec, f"server failed during the counting run: {problem}")
    if hooks_held is not None:
        metrics = replace(metrics, notes=(*metrics.notes, f"timed with hooks held: {hooks_held}"))
    if stats_outside and spec.kind == "ebpf":
        outside = "kernel.bpf_stats_enabled was on machine-wide during the timed run"
        metrics = replace(metrics, notes=(*metrics.notes, outside))
    steal = steal_pct(metrics)
    if steal is not None and steal >= STEAL_NOTE_PCT:
        stolen = f"steal {steal:.1f}% of CPU time: the hypervisor ran other work in the phase"
        metrics = replace(metrics, notes=(*metrics.notes, stolen))
    counted = Counted(result.duration_s, result.replies, result.throughput_rps, _latency(result))
    samples = _save_samples(samples_dir, spec, timed) if len(timed.samples) else None
    if isinstance(server, ProbedWhereItRuns):
        accounting = server.reported_accounting()
    return measured_row(
        spec,
        timed,
        metrics,
        accounting,
        server.counters(),
        samples,
        counted=counted,
        timing="probe-free" if hooks_held is None else "hooks-held",
    )
