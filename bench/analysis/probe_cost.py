"""What the probes cost: per configuration, the p50 RTT of the counting run (tracepoint,
perf events and BPF statistics on) minus that of the probe-free timed run, paired within
each trial, with a Student-t interval over the trials."""

from __future__ import annotations

from dataclasses import dataclass

from bench.analysis.stats import PairedEstimate, paired_t_interval
from bench.results.frame import trial_values
from bench.results.rows import Configuration
from bench.results.run import Run


@dataclass(frozen=True)
class ProbeCost:
    key: Configuration
    timed_p50_ns: float
    estimate: PairedEstimate  # counted − timed, ns

    @property
    def relative(self) -> float:
        """The cost as a fraction of the probe-free p50."""
        return self.estimate.mean / self.timed_p50_ns if self.timed_p50_ns else float("nan")


def probe_costs(run: Run) -> list[ProbeCost]:
    """Every configuration with at least two probe-free trials, in the run's order."""
    costs = trial_values(run.rows, "probe_cost_p50")
    timed = trial_values(run.rows, "rtt_p50")
    out: list[ProbeCost] = []
    for key, differences in costs.items():
        estimate = paired_t_interval(differences)
        base = timed.get(key) or []
        if estimate is None or not base:
            continue
        out.append(ProbeCost(key, sum(base) / len(base), estimate))
    return out
