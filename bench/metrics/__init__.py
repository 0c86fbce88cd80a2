"""Per-phase metric probes: syscalls, context switches, CPU time, BPF run time."""

from __future__ import annotations

from bench.metrics.phase import PerRequest, PhaseMetrics, PhaseProbe, per_request

__all__ = ["PerRequest", "PhaseMetrics", "PhaseProbe", "per_request"]
