"""One measured phase: the driver floods a running server while the probes record; the
outcome is one :class:`~bench.results.rows.PhaseRow`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bench.driver.client import DriverConfig, DriverError, DriverResult, run_driver
from bench.driver.modes import Mode
from bench.impl.api import Accounting, RunningServer
from bench.impl.manifest import Kind
from bench.metrics.probe import PhaseMetrics, PhaseProbe
from bench.results.rows import LATENCY_KEYS, CpuNs, Latency, PerRequest, PhaseRow, Samples, Status
from bench.results.rows import Accounting as RowAccounting

SAMPLING = "reservoir (Algorithm R) over the measured phase"


@dataclass(frozen=True)
class PhaseSpec:
    """Which phase to measure; ``key`` names it uniquely inside a run."""

    env: str
    topology: str
    impl: str
    kind: Kind
    mode: Mode
    size: int
    trial: int
    offered_rps: float | None = None
    load_fraction: float | None = None
    outstanding: int | None = None
    server_cpu: int | None = None
    client_cpu: int | None = None

    @property
    def key(self) -> str:
        load = f"-r{self.offered_rps:.0f}" if self.offered_rps else ""
        return f"{self.env}-{self.topology}-{self.impl}-{self.mode}-{self.size}{load}-t{self.trial}"

    def row(self, status: Status, error: str | None = None) -> PhaseRow:
        """The row of this phase with nothing measured yet (zeros, no figures)."""
        return PhaseRow(
            env=self.env,
            impl=self.impl,
            kind=self.kind,
            mode=self.mode,
            size=self.size,
            topology=self.topology,
            trial=self.trial,
            offered_rps=self.offered_rps,
            load_fraction=self.load_fraction,
            server_cpu=self.server_cpu,
            client_cpu=self.client_cpu,
            outstanding=self.outstanding,
            status=status,
            error=error,
        )


def failed_row(spec: PhaseSpec, error: str) -> PhaseRow:
    """The row of a phase that could not be measured: zeros counted, nothing invented."""
    return spec.row("failed", error)


def per_request(metrics: PhaseMetrics, replies: int) -> PerRequest:
    """Every figure divided by ``replies``; ``bpf_run_ns`` is per program run instead.

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
    return PerRequest(
        server_syscalls=div(metrics.server_syscalls),
        client_syscalls=div(metrics.client_syscalls),
        server_ctx_switches=div(metrics.server_ctx_switches),
        client_ctx_switches=div(metrics.client_ctx_switches),
        kernel_thread_ctx_switches=div(metrics.kernel_thread_ctx_switches),
        system_ctx_switches=div(metrics.system_ctx_switches),
        server_cpu_ns=div(metrics.server_cpu_ns),
        client_cpu_ns=div(metrics.client_cpu_ns),
        bpf_run_ns=bpf_run_ns,
        cpu_ns=CpuNs(**{kind: div(cpu.get(kind)) for kind in CpuNs.KINDS}),
    )


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
) -> PhaseRow:
    note = accounting.note or "; ".join(metrics.notes)
    failed = bool(result.requests and not result.replies)
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
        latency_ns=Latency(**{k: result.latency_ns.get(k) for k in LATENCY_KEYS}),
        per_request=per_request(metrics, result.replies),
        accounting=RowAccounting(server_process=bool(accounting.pids), note=note),
        metric_notes=tuple(metrics.notes),
        impl_counters=counters,
        histogram=result.histogram_encoded,
        samples=samples,
    )


def measure_phase(
    spec: PhaseSpec,
    server: RunningServer,
    driver_config: DriverConfig,
    samples_dir: Path,
) -> PhaseRow:
    """Run one phase against ``server`` and return its row (a failed row on any fault)."""
    accounting = server.accounting()
    probe: PhaseProbe | None = None
    box: dict[str, PhaseMetrics] = {}

    def on_start(client_pid: int) -> None:
        nonlocal probe
        probe = PhaseProbe(accounting, client_pid)
        probe.start()

    def on_end() -> None:
        if probe is not None:
            box["metrics"] = probe.stop()

    try:
        result = run_driver(driver_config, on_measure_start=on_start, on_measure_end=on_end)
    except (DriverError, OSError) as exc:
        return failed_row(spec, f"driver failed: {exc}")
    problem = server.health()
    if problem is not None:
        return failed_row(spec, f"server failed during the phase: {problem}")
    if "metrics" not in box:
        return failed_row(spec, "metric probes did not complete")
    samples = _save_samples(samples_dir, spec, result) if len(result.samples) else None
    return measured_row(spec, result, box["metrics"], accounting, server.counters(), samples)
