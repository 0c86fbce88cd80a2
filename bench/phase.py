"""One measured phase: the driver floods a running server while the probes record; the
outcome is one result row (see bench/schema/results-v1.json)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.config import Mode
from bench.driver.client import DriverConfig, DriverError, DriverResult, run_driver
from bench.impl.api import Accounting, RunningServer
from bench.metrics.phase import PhaseMetrics, PhaseProbe, per_request

LATENCY_KEYS = ("min", "p50", "p90", "p99", "p999", "max", "mean")


@dataclass(frozen=True)
class PhaseSpec:
    """Which phase to measure; ``key`` names it uniquely inside a run."""

    env: str
    topology: str
    impl: str
    kind: str
    mode: Mode
    size: int
    trial: int
    offered_rps: float | None = None
    load_fraction: float | None = None

    @property
    def key(self) -> str:
        load = f"-r{self.offered_rps:.0f}" if self.offered_rps else ""
        return f"{self.env}-{self.topology}-{self.impl}-{self.mode}-{self.size}{load}-t{self.trial}"


def _identity(spec: PhaseSpec) -> dict[str, Any]:
    return {
        "env": spec.env,
        "impl": spec.impl,
        "kind": spec.kind,
        "mode": spec.mode,
        "size": spec.size,
        "topology": spec.topology,
        "trial": spec.trial,
        "offered_rps": spec.offered_rps,
        "load_fraction": spec.load_fraction,
    }


def failed_row(spec: PhaseSpec, error: str) -> dict[str, Any]:
    """The row of a phase that could not be measured: zeros counted, nothing invented."""
    return {
        **_identity(spec),
        "status": "failed",
        "error": error,
        "outstanding": None,
        "requests": 0,
        "replies": 0,
        "lost": 0,
        "duplicates": 0,
        "reordered": 0,
        "corrupt": 0,
        "duration_s": 0.0,
        "throughput_rps": 0.0,
        "send_rps": None,
        "latency_ns": dict.fromkeys(LATENCY_KEYS),
        "per_request": {
            "server_syscalls": None,
            "client_syscalls": None,
            "server_ctx_switches": None,
            "system_ctx_switches": None,
            "cpu_ns": dict.fromkeys(("user", "system", "softirq", "irq", "total")),
        },
        "histogram": None,
        "samples": None,
    }


def _save_samples(samples_dir: Path, spec: PhaseSpec, result: DriverResult) -> dict[str, Any]:
    samples_dir.mkdir(parents=True, exist_ok=True)
    name = f"{spec.key}.npy"
    np.save(samples_dir / name, np.asarray(result.samples, dtype=np.int64))
    return {
        "file": f"{samples_dir.name}/{name}",
        "count": len(result.samples),
        "cap": result.sample_cap,
        "method": "reservoir (Algorithm R) over the measured phase",
    }


def measured_row(
    spec: PhaseSpec,
    result: DriverResult,
    metrics: PhaseMetrics,
    accounting: Accounting,
    counters: dict[str, int],
    samples: dict[str, Any] | None,
    outstanding: int,
) -> dict[str, Any]:
    note = accounting.note or "; ".join(metrics.notes)
    return {
        **_identity(spec),
        "status": "ok",
        "error": None,
        "outstanding": outstanding if spec.mode == "pingpong" else None,
        "requests": result.requests,
        "replies": result.replies,
        "lost": result.lost,
        "duplicates": result.duplicates,
        "reordered": result.reordered,
        "corrupt": result.corrupt,
        "duration_s": result.duration_s,
        "throughput_rps": result.throughput_rps,
        "send_rps": result.send_rps,
        "latency_ns": {k: result.latency_ns.get(k) for k in LATENCY_KEYS},
        "per_request": per_request(metrics, result.replies),
        "accounting": {"server_process": bool(accounting.pids), "note": note},
        "metric_notes": list(metrics.notes),
        "impl_counters": counters,
        "histogram": result.histogram_encoded,
        "samples": samples,
    }


def measure_phase(
    spec: PhaseSpec,
    server: RunningServer,
    driver_config: DriverConfig,
    samples_dir: Path,
) -> dict[str, Any]:
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
    row = measured_row(
        spec,
        result,
        box["metrics"],
        accounting,
        server.counters(),
        samples,
        driver_config.outstanding,
    )
    if result.requests and not result.replies:
        row["status"] = "failed"
        row["error"] = f"server answered none of {result.requests} requests"
    return row
