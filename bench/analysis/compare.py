"""Compare two runs, asv style: a change counts only if it is large *and* significant.

For every configuration both runs measured (bench/results/rows.py Configuration: env,
impl, mode, size, topology, outstanding, load, placement) and every metric compared (the
metric registry's names; default COMPARED), each run's per-trial values are first
normalised to the reference impl of the *same run* (trial value / median of the
reference's trials of the same configuration), so that a faster or slower machine moves
every impl alike and does not read as a regression.  The change is the ratio of the
normalised medians
NEW/BASE.  It counts when it exceeds ``factor`` in one direction (higher latency, CPU,
syscalls or switches; lower throughput is worse) and a two-sided Mann-Whitney U test
over the normalised per-trial values gives p < ``alpha``.  The reference impl's own rows
are reported with their raw ratio but never flagged.  The default reference is the impl
whose manifest gives it the ``compare-reference`` role, as the runs recorded it.

The comparison is a value (:class:`Comparison`); it is rendered only at the edge
(bench/cli/compare.py; :meth:`Comparison.to_json`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.analysis.stats import mann_whitney_p, median, min_two_sided_p
from bench.results.frame import trial_values
from bench.results.metrics import Metric, metric
from bench.results.rows import Configuration
from bench.results.run import Run

DEFAULT_FACTOR = 1.25
DEFAULT_ALPHA = 0.01
REFERENCE_ROLE = "compare-reference"
COMPARED = (
    "rtt_p50", "rtt_p99", "throughput_rps", "cpu_ns_per_req", "server_syscalls_per_req",
    "system_ctx_per_req",
)  # fmt: skip

REGRESSION = "regression"
IMPROVEMENT = "improvement"
UNCHANGED = "unchanged"
NOT_SIGNIFICANT = "not significant"
TOO_FEW_TRIALS = "too few trials"
REFERENCE = "reference"


@dataclass(frozen=True)
class MetricChange:
    """One metric of one configuration, BASE vs NEW."""

    key: Configuration
    metric: str
    unit: str
    base_median: float
    new_median: float
    raw_ratio: float
    ratio: float
    normalised: bool
    p_value: float | None
    n_base: int
    n_new: int
    verdict: str

    @property
    def is_reference(self) -> bool:
        return self.verdict == REFERENCE

    def to_json(self) -> dict[str, Any]:
        return {
            "env": self.key.env,
            "impl": self.key.impl,
            "mode": self.key.mode,
            "size": self.key.size,
            "topology": self.key.topology,
            "load_fraction": self.key.load_fraction,
            "offered_rps": self.key.offered_rps,
            "outstanding": self.key.outstanding,
            "server_cpu": self.key.server_cpu,
            "client_cpu": self.key.client_cpu,
            "rx_cpu": self.key.rx_cpu,
            "idle": self.key.idle,
            "client_wait": self.key.client_wait,
            "arrivals": self.key.arrivals,
            "server_options": self.key.server_options,
            "metric": self.metric,
            "unit": self.unit,
            "base_median": self.base_median,
            "new_median": self.new_median,
            "raw_ratio": _finite(self.raw_ratio),
            "ratio": _finite(self.ratio),
            "normalised": self.normalised,
            "p_value": self.p_value,
            "n_base": self.n_base,
            "n_new": self.n_new,
            "verdict": self.verdict,
        }


def _finite(x: float) -> float | str:
    return x if math.isfinite(x) else str(x)


@dataclass(frozen=True)
class Comparison:
    base: str
    new: str
    factor: float
    alpha: float
    reference: str
    changes: tuple[MetricChange, ...]
    only_in_base: tuple[Configuration, ...]
    only_in_new: tuple[Configuration, ...]
    notes: tuple[str, ...]

    @property
    def regressions(self) -> tuple[MetricChange, ...]:
        return tuple(c for c in self.changes if c.verdict == REGRESSION)

    @property
    def improvements(self) -> tuple[MetricChange, ...]:
        return tuple(c for c in self.changes if c.verdict == IMPROVEMENT)

    def summary(self) -> str:
        r, i = len(self.regressions), len(self.improvements)
        return (
            f"{r} regression{'s' * (r != 1)}, {i} improvement{'s' * (i != 1)} "
            f"over {len(self.changes)} metrics (factor {self.factor:g}, alpha {self.alpha:g}, "
            f"normalised to {self.reference})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "new": self.new,
            "factor": self.factor,
            "alpha": self.alpha,
            "reference": self.reference,
            "summary": self.summary(),
            "regressions": [c.to_json() for c in self.regressions],
            "improvements": [c.to_json() for c in self.improvements],
            "changes": [c.to_json() for c in self.changes],
            "only_in_base": [k.label() for k in self.only_in_base],
            "only_in_new": [k.label() for k in self.only_in_new],
            "notes": list(self.notes),
        }


def _ratio(new: float, base: float) -> float:
    if base == 0.0:
        return 1.0 if new == 0.0 else math.inf
    return new / base


def _normalised(values: list[float], ref_values: list[float] | None) -> tuple[list[float], bool]:
    if not ref_values:
        return values, False
    ref = median(ref_values)
    if ref is None or ref == 0.0:
        return values, False
    return [v / ref for v in values], True


def _verdict(
    m: Metric,
    ratio: float,
    base: Sequence[float],
    new: Sequence[float],
    factor: float,
    alpha: float,
) -> tuple[str, float | None]:
    worse = ratio > factor if m.higher_is_worse else ratio < 1.0 / factor
    better = ratio < 1.0 / factor if m.higher_is_worse else ratio > factor
    if not (worse or better):
        return UNCHANGED, None
    if min_two_sided_p(len(base), len(new)) >= alpha:
        return TOO_FEW_TRIALS, None
    p = mann_whitney_p(base, new)
    if p >= alpha:
        return NOT_SIGNIFICANT, p
    return (REGRESSION if worse else IMPROVEMENT), p


def _env_notes(base: Run, new: Run) -> list[str]:
    notes = []
    for name in sorted(set(base.environments) & set(new.environments)):
        b, n = base.environment(name), new.environment(name)
        diffs = [
            f"{field} {b.get(field)} -> {n.get(field)}"
            for field in ("accel", "kernel", "cpu_model", "cpu_count")
            if b.get(field) != n.get(field)
        ]
        if diffs:
            notes.append(f"environment {name} changed ({'; '.join(diffs)}): read normalised ratios")
    return notes


def default_reference(base: Run, new: Run) -> str:
    """The impl both runs recorded with the ``compare-reference`` role."""
    for run in (new, base):
        for name, info in sorted(run.impls.items()):
            if REFERENCE_ROLE in info.roles:
                return name
    raise ValueError(
        f"neither run records an impl with the {REFERENCE_ROLE!r} role: name one with --reference"
    )


def compare_loaded(
    base: Run,
    new: Run,
    *,
    factor: float = DEFAULT_FACTOR,
    alpha: float = DEFAULT_ALPHA,
    reference: str | None = None,
    metrics: Sequence[str] = (),
) -> Comparison:
    """Compare two loaded runs (see the module docstring for the rule); ``metrics`` names
    the metrics to compare (default: COMPARED)."""
    chosen = [metric(name) for name in (metrics or COMPARED)]
    if not factor > 1.0:
        raise ValueError(f"factor must be greater than 1 (got {factor:g})")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1 (got {alpha:g})")
    reference = reference or default_reference(base, new)
    bg, ng = base.groups(), new.groups()
    changes: list[MetricChange] = []
    unnormalised: set[str] = set()
    few_trials: set[tuple[int, int]] = set()
    for m in chosen:
        b_vals, n_vals = trial_values(base.rows, m.name), trial_values(new.rows, m.name)
        for key in (k for k in bg if k in ng):
            is_ref = key.impl == reference
            ref_key = replace(key, impl=reference)
            b_raw, n_raw = b_vals.get(key, []), n_vals.get(key, [])
            if not b_raw or not n_raw:
                continue
            b_med, n_med = median(b_raw), median(n_raw)
            assert b_med is not None and n_med is not None
            raw_ratio = _ratio(n_med, b_med)
            if is_ref:
                changes.append(
                    MetricChange(key, m.name, m.unit, b_med, n_med, raw_ratio, raw_ratio,
                                 False, None, len(b_raw), len(n_raw), REFERENCE)
                )  # fmt: skip
                continue
            b_norm, b_ok = _normalised(b_raw, b_vals.get(ref_key))
            n_norm, n_ok = _normalised(n_raw, n_vals.get(ref_key))
            normalised = b_ok and n_ok
            if not normalised:
                b_norm, n_norm = b_raw, n_raw
                unnormalised.add(key.label())
            b_nm, n_nm = median(b_norm), median(n_norm)
            assert b_nm is not None and n_nm is not None
            ratio = _ratio(n_nm, b_nm)
            verdict, p = _verdict(m, ratio, b_norm, n_norm, factor, alpha)
            if verdict == TOO_FEW_TRIALS:
                few_trials.add((len(b_norm), len(n_norm)))
            changes.append(
                MetricChange(key, m.name, m.unit, b_med, n_med, raw_ratio, ratio, normalised,
                             p, len(b_norm), len(n_norm), verdict)
            )  # fmt: skip
    order = {k: i for i, k in enumerate(k for k in bg if k in ng)}
    names = [m.name for m in chosen]
    changes.sort(key=lambda c: (order[c.key], names.index(c.metric)))
    notes = _env_notes(base, new)
    for n1, n2 in sorted(few_trials):
        notes.append(
            f"{n1} vs {n2} trials cannot reach significance: the smallest two-sided "
            f"Mann-Whitney p is {min_two_sided_p(n1, n2):.4f} >= alpha {alpha:g}; "
            "changes beyond the factor are listed as 'too few trials', not counted"
        )
    only_base = tuple(k for k in bg if k not in ng)
    only_new = tuple(k for k in ng if k not in bg)
    if only_base or only_new:
        notes.append(
            f"not compared: {len(only_base)} configurations only in {base.run_id}, "
            f"{len(only_new)} only in {new.run_id}"
        )
    if unnormalised:
        notes.append(
            f"{len(unnormalised)} configurations have no usable {reference} rows in both runs: "
            "compared on raw values"
        )
    return Comparison(
        base=base.run_id,
        new=new.run_id,
        factor=factor,
        alpha=alpha,
        reference=reference,
        changes=tuple(changes),
        only_in_base=only_base,
        only_in_new=only_new,
        notes=tuple(notes),
    )


def compare_runs(
    base: Path,
    new: Path,
    *,
    factor: float = DEFAULT_FACTOR,
    alpha: float = DEFAULT_ALPHA,
    reference: str | None = None,
    metrics: Sequence[str] = (),
) -> Comparison:
    """Compare two runs given as run folders, results.json files or folders of runs
    (ResultsError on bad input)."""
    return compare_loaded(
        Run.load(base),
        Run.load(new),
        factor=factor,
        alpha=alpha,
        reference=reference,
        metrics=metrics,
    )
