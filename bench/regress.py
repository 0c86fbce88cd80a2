"""The regression guard CI runs: a short, fixed benchmark compared with a committed baseline.

The run is short but has ten rounds, every impl once per round in a seeded random order:
enough for the Mann-Whitney test to reach alpha 0.01 with a noisy round or two on either
side (with five, only a clean sweep of all five could); metrics are normalised to a
reference impl measured in the same round (bench/analysis/compare.py has the rule), and only
the metrics that are stable on a shared machine are compared (tail latency and system-wide
CPU per request move with the neighbours' load, not with the code).  Which impls the guard
measures, and which one is the reference, the manifests say (roles ``guard`` and
``guard-reference``).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bench import PROJECT_ROOT
from bench.analysis.compare import GUARD_METRICS, Comparison, compare_loaded
from bench.errors import EXIT_FAILED, EXIT_OK
from bench.impl.registry import manifests, role_holder, role_holders
from bench.results.run import RESULTS_NAME, Run
from bench.runner.config import RunConfig
from bench.runner.orchestrate import run_all
from bench.runner.progress import LogProgress
from bench.system.ports import free_udp_port

BASELINE = PROJECT_ROOT / "results" / "baseline"
METRICS = GUARD_METRICS
TRIALS = 10
DURATION_S = 0.5
WARMUP_S = 0.1


@dataclass(frozen=True)
class GuardOutcome:
    """The guard's run, and its comparison with the baseline (None when there was none:
    the baseline was recorded, or the run had failed phases)."""

    run: Run
    status: int
    comparison: Comparison | None
    recorded: Path | None = None


def guard_config(out: Path, server_options: Mapping[str, str] | None = None) -> RunConfig:
    """The guard's benchmark: its impls in pingpong mode on a free port, under ``out``."""
    found = manifests()
    return RunConfig(
        out_root=out,
        impls=tuple(role_holders("guard", found)),
        modes=("pingpong",),
        trials=TRIALS,
        duration_s=DURATION_S,
        warmup_s=WARMUP_S,
        env="host",
        calibrate=False,
        sample_cap=0,
        port=free_udp_port(),  # the guard must not meet a stray server on the default port
        server_options=dict(server_options or {}),
    )


def guard(
    out: Path,
    progress: Callable[[str], None],
    *,
    baseline: Path = BASELINE,
    record: bool = False,
    server_options: Mapping[str, str] | None = None,
) -> GuardOutcome:
    """Measure, then compare with the baseline (or, with ``record``, make this run it)."""
    reference = role_holder("guard-reference")
    outcome = run_all(guard_config(out, server_options), LogProgress(progress))
    run = outcome.recording.run
    if record:
        baseline.mkdir(parents=True, exist_ok=True)
        target = baseline / RESULTS_NAME
        shutil.copy2(outcome.recording.run_dir / RESULTS_NAME, target)
        return GuardOutcome(run, outcome.status, None, recorded=target)
    if outcome.status != EXIT_OK:
        return GuardOutcome(run, outcome.status, None)
    comparison = compare_loaded(Run.load(baseline), run, reference=reference, metrics=METRICS)
    return GuardOutcome(run, EXIT_FAILED if comparison.regressions else EXIT_OK, comparison)
