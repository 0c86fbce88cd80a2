"""Compare runs, asv style: a change counts only if it is large *and* significant.

For every configuration both sides measured (bench/results/rows.py Configuration: env,
impl, mode, size, topology, outstanding, load, placement, factor levels) and every metric
compared (the metric registry's names; default COMPARED), a side is one run (BASE, NEW)
or, for BASE, several runs pooled (``compare --against-history``: the last runs of the
same machine and kernel).  What counts depends on the metric's kind:

- **times and rates** of an impl other than the reference: every round's value is
  normalised to the reference impl's value *in the same round* (the same configuration
  otherwise), which cancels what moved both within the run.  The change counts when the
  normalised ratio of medians (NEW/BASE) passes ``factor`` and is significant (two-sided
  Mann-Whitney U, p < ``alpha``), and the raw values agree: with the raw check
  ``direction`` (the default) the raw ratio moves the same way, with ``strict`` it too
  passes ``factor`` and is significant.  The raw check, because normalising alone does not
  survive a machine change: it assumes the machine moves every impl by one factor, which
  is false when a shared cost (a cross-CPU wake-up) moves and dominates one impl's round
  trip more than the other's.  A change seen normalised and contradicted raw is reported
  as such (``raw and normalised disagree``), not counted.
- **the reference's own times and rates** are compared raw, against ``reference_factor``:
  a slower reference would otherwise read as improvements of everything else.  Where the
  reference's change counts, the others' normalised verdicts on that configuration and
  metric are not counted (``not judged: the reference moved``).
- **between two machines** (the environment's hostname, CPU, CPU count, kernel or accel
  differ) raw values say nothing about the code: only normalised ratios are judged,
  against ``other_machine_factor`` (larger: without the raw check a shared cost that moved
  reads as a change of every impl whose round trip differs from the reference's), and the
  reference is not judged at all.
- **syscall counts** (per request) and **shares** are compared raw and exactly: a change
  counts when it passes ``count_tolerance`` (a few percent, not a time factor: 6 -> 7
  syscalls per request is a regression) and is significant.  **Context switches** per
  request depend on timing (whether a wake-up finds its CPU idle), so they are compared
  raw against ``factor``.

Every change shows its p-value and the smallest p its test could give with these n (an
exact Mann-Whitney test over n1 and n2 rounds cannot go below 2/C(n1+n2, n1): with 5 vs 5
rounds that is 0.0079, so one noisy round hides anything at alpha 0.01; hence the guard's
10 rounds).  The defaults are chosen from the measured false-positive rate and power of
the rule on recorded runs of this machine (bench/analysis/rule_calibration.py).

The comparison is a value (:class:`Comparison`); it is rendered only at the edge
(bench/cli/compare.py; :meth:`Comparison.to_json`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.analysis.stats import mann_whitney_p, median, min_two_sided_p
from bench.host.identity import differences
from bench.results.metrics import Metric, metric
from bench.results.rows import CONFIG_FIELDS, Configuration
from bench.results.run import Run

DEFAULT_FACTOR = 1.1  # chosen by the replay of recorded guard runs (README: the rule)
# between machines only normalised ratios are judged, and a shared cost that moved (a
# faster or slower wake-up) moves them: the replay's choice for that case
DEFAULT_OTHER_MACHINE_FACTOR = 1.4
DEFAULT_ALPHA = 0.01
DEFAULT_REFERENCE_FACTOR = 1.75  # the replay's too: raw values drift on one machine
DEFAULT_COUNT_TOLERANCE = 0.05
# how the raw ratio must back a normalised change: "strict", beyond the factor and
# significant itself; "direction", on the same side of 1
RAW_CHECKS = ("strict", "direction")
DEFAULT_RAW_CHECK = "direction"
REFERENCE_ROLE = "compare-reference"
GUARD_REFERENCE_ROLE = "guard-reference"  # the CI guard's (bench/regress.py)
COMPARED = (
    "rtt_p50", "rtt_p99", "throughput_rps", "cpu_ns_per_req", "server_syscalls_per_req",
    "system_ctx_per_req",
)  # fmt: skip
# what the CI guard compares: the metrics stable on a shared machine (tail latency and
# system-wide CPU per request move with the neighbours' load, not with the code)
GUARD_METRICS = ("rtt_p50", "throughput_rps", "server_syscalls_per_req", "system_ctx_per_req")
EXACT_KINDS = frozenset({"count", "share"})


def is_exact(m: Metric) -> bool:
    """Syscall counts and shares are compared exactly; context switches, though counts,
    depend on timing (whether a wake-up finds its CPU idle: asyncio-py's system-wide
    switches per request range 2.0-3.2 between rounds of one run here), so they get the
    factor, raw."""
    return m.kind in EXACT_KINDS and "ctx" not in m.name


def is_switch_count(m: Metric) -> bool:
    return m.kind == "count" and "ctx" in m.name


REGRESSION = "regression"
IMPROVEMENT = "improvement"
UNCHANGED = "unchanged"
NOT_SIGNIFICANT = "not significant"
TOO_FEW_TRIALS = "too few trials"
DISAGREE = "raw and normalised disagree"
OTHER_MACHINE = "not judged: another machine"
REFERENCE_MOVED = "not judged: the reference moved"

# how a change was judged
NORMALISED = "normalised and raw"
NORMALISED_ONLY = "normalised (machines differ)"
RAW = "raw"
REFERENCE_RAW = "reference, raw"
EXACT = "count, exact"


@dataclass(frozen=True)
class Rule:
    """The thresholds of the rule (see the module docstring)."""

    factor: float = DEFAULT_FACTOR
    alpha: float = DEFAULT_ALPHA
    reference_factor: float = DEFAULT_REFERENCE_FACTOR
    count_tolerance: float = DEFAULT_COUNT_TOLERANCE
    raw_check: str = DEFAULT_RAW_CHECK
    other_machine_factor: float = DEFAULT_OTHER_MACHINE_FACTOR

    def check(self) -> Rule:
        if self.raw_check not in RAW_CHECKS:
            raise ValueError(
                f"raw check must be one of {', '.join(RAW_CHECKS)} (got {self.raw_check!r})"
            )
        if not self.factor > 1.0:
            raise ValueError(f"factor must be greater than 1 (got {self.factor:g})")
        if not self.other_machine_factor > 1.0:
            raise ValueError(
                f"other-machine factor must be greater than 1 (got {self.other_machine_factor:g})"
            )
        if not self.reference_factor > 1.0:
            raise ValueError(
                f"reference factor must be greater than 1 (got {self.reference_factor:g})"
            )
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be between 0 and 1 (got {self.alpha:g})")
        if not 0.0 < self.count_tolerance < 1.0:
            raise ValueError(
                f"count tolerance must be between 0 and 1 (got {self.count_tolerance:g})"
            )
        return self

    def describe(self) -> str:
        return (
            f"factor {self.factor:g} (another machine {self.other_machine_factor:g}, reference "
            f"{self.reference_factor:g}, counts ±{self.count_tolerance:.0%}, raw check "
            f"{self.raw_check}), alpha {self.alpha:g}"
        )


@dataclass(frozen=True)
class Sample:
    """One side of one configuration and metric: the raw value of every round, and the
    reference impl's value in the same round (None where it measured none)."""

    raw: tuple[float, ...]
    reference: tuple[float | None, ...]

    @property
    def normalised(self) -> tuple[float, ...]:
        return tuple(v / r for v, r in zip(self.raw, self.reference, strict=True) if r)

    def __add__(self, other: Sample) -> Sample:
        return Sample(self.raw + other.raw, self.reference + other.reference)


@dataclass(frozen=True)
class MetricChange:
    """One metric of one configuration, BASE vs NEW."""

    key: Configuration
    metric: str
    unit: str
    base_median: float
    new_median: float
    raw_ratio: float
    ratio: float  # the ratio judged: normalised where the judgement normalises, else raw
    judged: str  # NORMALISED, RAW, REFERENCE_RAW or EXACT
    p_value: float | None  # of the ratio judged
    raw_p_value: float | None  # of the raw values, where the normalised ratio was judged
    min_p: float  # the smallest p the test can give with these n
    n_base: int
    n_new: int
    verdict: str

    @property
    def is_reference(self) -> bool:
        return self.judged == REFERENCE_RAW

    @property
    def normalised(self) -> bool:
        return self.judged in (NORMALISED, NORMALISED_ONLY)

    def to_json(self) -> dict[str, Any]:
        return {
            **{name: getattr(self.key, name) for name in CONFIG_FIELDS},
            "metric": self.metric,
            "unit": self.unit,
            "base_median": self.base_median,
            "new_median": self.new_median,
            "raw_ratio": _finite(self.raw_ratio),
            "ratio": _finite(self.ratio),
            "judged": self.judged,
            "normalised": self.normalised,
            "reference": self.is_reference,
            "p_value": self.p_value,
            "raw_p_value": self.raw_p_value,
            "min_p": self.min_p,
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
    rule: Rule
    reference: str
    changes: tuple[MetricChange, ...]
    only_in_base: tuple[Configuration, ...]
    only_in_new: tuple[Configuration, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def factor(self) -> float:
        return self.rule.factor

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
            f"over {len(self.changes)} metrics ({self.rule.describe()}, "
            f"normalised to {self.reference} in each round)"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "new": self.new,
            "factor": self.rule.factor,
            "alpha": self.rule.alpha,
            "reference_factor": self.rule.reference_factor,
            "other_machine_factor": self.rule.other_machine_factor,
            "count_tolerance": self.rule.count_tolerance,
            "raw_check": self.rule.raw_check,
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


def _direction(m: Metric, ratio: float, threshold: float) -> int:
    """+1 worse beyond ``threshold``, -1 better beyond it, 0 within."""
    if ratio > threshold:
        return 1 if m.higher_is_worse else -1
    if ratio < 1.0 / threshold:
        return -1 if m.higher_is_worse else 1
    return 0


@functools.lru_cache(maxsize=1 << 16)
def _p(base: tuple[float, ...], new: tuple[float, ...]) -> float:
    return mann_whitney_p(base, new)  # cached: a calibration replays the same samples


def _test(base: Sequence[float], new: Sequence[float], alpha: float) -> tuple[bool, float | None]:
    """(significant, p); p is None when these n cannot reach ``alpha`` at all."""
    if min_two_sided_p(len(base), len(new)) >= alpha:
        return False, None
    p = _p(tuple(base), tuple(new))
    return p < alpha, p


def _mid(values: Sequence[float]) -> float:
    m = median(values)
    assert m is not None
    return m


def _verdict(direction: int, significant: bool, p: float | None) -> str:
    if direction == 0:
        return UNCHANGED
    if p is None:
        return TOO_FEW_TRIALS
    if not significant:
        return NOT_SIGNIFICANT
    return REGRESSION if direction > 0 else IMPROVEMENT


def judge(
    m: Metric,
    key: Configuration,
    base: Sample,
    new: Sample,
    rule: Rule,
    *,
    is_reference: bool,
    same_machine: bool = True,
) -> MetricChange:
    """The verdict on one metric of one configuration (the rule of the module docstring);
    between different machines raw values say nothing, so only normalised ones are judged
    and the reference is not judged at all."""
    b_med, n_med = _mid(base.raw), _mid(new.raw)
    raw_ratio = _ratio(n_med, b_med)
    n_b, n_n = len(base.raw), len(new.raw)

    def plain(judged: str, threshold: float) -> MetricChange:
        significant, p = _test(base.raw, new.raw, rule.alpha)
        verdict = _verdict(_direction(m, raw_ratio, threshold), significant, p)
        return MetricChange(key, m.name, m.unit, b_med, n_med, raw_ratio, raw_ratio, judged,
                            p, None, min_two_sided_p(n_b, n_n), n_b, n_n, verdict)  # fmt: skip

    if is_exact(m):
        return plain(EXACT, 1.0 + rule.count_tolerance)
    if is_switch_count(m):
        change = plain(RAW, rule.factor)
        return change if same_machine else replace(change, verdict=OTHER_MACHINE)
    if is_reference:
        change = plain(REFERENCE_RAW, rule.reference_factor)
        return change if same_machine else replace(change, verdict=OTHER_MACHINE)
    b_norm, n_norm = base.normalised, new.normalised
    if not b_norm or not n_norm:
        change = plain(RAW, rule.factor)
        return change if same_machine else replace(change, verdict=OTHER_MACHINE)
    ratio = _ratio(_mid(n_norm), _mid(b_norm))
    significant, p = _test(b_norm, n_norm, rule.alpha)
    threshold = rule.factor if same_machine else rule.other_machine_factor
    verdict = _verdict(_direction(m, ratio, threshold), significant, p)
    raw_significant, raw_p = _test(base.raw, new.raw, rule.alpha)
    raw_verdict = _verdict(_direction(m, raw_ratio, rule.factor), raw_significant, raw_p)
    counted = (REGRESSION, IMPROVEMENT)
    if not same_machine:
        pass
    elif rule.raw_check == "strict":
        if verdict != raw_verdict and (verdict in counted or raw_verdict in counted):
            verdict = DISAGREE
    elif verdict in counted and _direction(m, raw_ratio, 1.0) != (
        1 if verdict == REGRESSION else -1
    ):
        verdict = DISAGREE
    min_p = min_two_sided_p(len(b_norm), len(n_norm))
    judged = NORMALISED if same_machine else NORMALISED_ONLY
    return MetricChange(key, m.name, m.unit, b_med, n_med, raw_ratio, ratio, judged, p,
                        raw_p, min_p, len(b_norm), len(n_norm), verdict)  # fmt: skip


Samples = dict[Configuration, Sample]


def run_samples(run: Run, m: Metric, reference: str) -> Samples:
    """Every configuration's sample of ``m`` in one run, paired round by round with the
    reference impl's value in the same configuration otherwise."""
    from bench.results.frame import round_values  # pandas: imported when used, not by every command

    by_round = round_values(run.rows, m.name)
    out: Samples = {}
    for key, values in by_round.items():
        if not values:
            continue
        ref = by_round.get(replace(key, impl=reference), {})
        rounds = sorted(values)
        out[key] = Sample(tuple(values[r] for r in rounds), tuple(ref.get(r) for r in rounds))
    return out


def pooled_samples(runs: Sequence[Run], m: Metric, reference: str) -> Samples:
    """The samples of several runs pooled (each normalised within its own rounds)."""
    out: Samples = {}
    for run in runs:
        for key, sample in run_samples(run, m, reference).items():
            out[key] = out[key] + sample if key in out else sample
    return out


def different_machines(base: Sequence[Run], new: Run) -> dict[str, list[str]]:
    """Per environment both sides ran, what differs about the machine (hostname, CPU,
    count, kernel, accel: bench/host/identity.py) between a base run and ``new`` (empty:
    the same machine)."""
    out: dict[str, list[str]] = {}
    for run in base:
        for env in sorted(set(run.environments) & set(new.environments)):
            diffs = differences(run.environments.get(env) or {}, new.environments.get(env) or {})
            if diffs and env not in out:
                out[env] = diffs
    return out


def default_reference(*runs: Run, role: str = REFERENCE_ROLE) -> str:
    """The impl the runs recorded with ``role`` (default ``compare-reference``; newest run
    first)."""
    for run in reversed(runs):
        for name, info in sorted(run.impls.items()):
            if role in info.roles:
                return name
    raise ValueError(f"no run records an impl with the {role!r} role: name one with --reference")


def compare_samples(
    base: Mapping[str, Samples],
    new: Mapping[str, Samples],
    rule: Rule,
    reference: str,
    *,
    other_machine: frozenset[str] = frozenset(),
) -> list[MetricChange]:
    """The verdicts on every configuration both sides hold, metric by metric (``base`` and
    ``new`` map metric names to samples; ``other_machine``: the environments whose machine
    differs between the sides)."""
    changes = []
    for name, new_samples in new.items():
        m = metric(name)
        base_samples = base.get(name, {})
        for key in sorted(
            (k for k in new_samples if k in base_samples), key=Configuration.sort_key
        ):
            is_ref = key.impl == reference
            same = key.env not in other_machine
            changes.append(judge(m, key, base_samples[key], new_samples[key], rule,
                                 is_reference=is_ref, same_machine=same))  # fmt: skip
    return _unjudged_where_the_reference_moved(changes, reference)


def _unjudged_where_the_reference_moved(
    changes: list[MetricChange], reference: str
) -> list[MetricChange]:
    """Where the reference itself counts a change, ratios to it say nothing about the
    others: their normalised verdicts of that configuration and metric are not counted
    (the reference's change is)."""
    counted = (REGRESSION, IMPROVEMENT)
    moved = {(c.metric, c.key) for c in changes if c.key.impl == reference and c.verdict in counted}
    return [
        replace(c, verdict=REFERENCE_MOVED)
        if c.verdict in counted
        and c.judged in (NORMALISED, NORMALISED_ONLY)
        and (c.metric, replace(c.key, impl=reference)) in moved
        else c
        for c in changes
    ]


def compare_sides(
    base_runs: Sequence[Run],
    new: Run,
    *,
    rule: Rule | None = None,
    reference: str | None = None,
    metrics: Sequence[str] = (),
    base_label: str | None = None,
) -> Comparison:
    """Compare ``new`` with ``base_runs`` pooled (one run: an ordinary comparison)."""
    if not base_runs:
        raise ValueError("nothing to compare with: no base run")
    rule = (rule or Rule()).check()
    chosen = [metric(name) for name in (metrics or COMPARED)]
    reference = reference or default_reference(*base_runs, new)
    base = {m.name: pooled_samples(base_runs, m, reference) for m in chosen}
    now = {m.name: run_samples(new, m, reference) for m in chosen}
    machines = different_machines(base_runs, new)
    changes = compare_samples(base, now, rule, reference, other_machine=frozenset(machines))
    b_keys = {k for run in base_runs for k in run.groups()}
    n_keys = set(new.groups())
    notes = [
        f"environment {env}: another machine ({'; '.join(diffs)}): only normalised ratios "
        f"are judged and {reference} itself is not"
        for env, diffs in machines.items()
    ]
    if len(base_runs) > 1:
        notes.append(
            f"base: {len(base_runs)} runs pooled ({', '.join(r.run_id for r in base_runs)})"
        )
    few = sorted({(c.n_base, c.n_new) for c in changes if c.verdict == TOO_FEW_TRIALS})
    for n1, n2 in few:
        notes.append(
            f"{n1} vs {n2} rounds cannot reach significance: the smallest two-sided "
            f"Mann-Whitney p is {min_two_sided_p(n1, n2):.4f} >= alpha {rule.alpha:g}; "
            "changes beyond the factor are listed as 'too few trials', not counted"
        )
    raw_only = {c.key.label() for c in changes if c.judged == RAW}
    if raw_only:
        notes.append(
            f"{len(raw_only)} configurations have no {reference} rounds to pair with on "
            "both sides: compared on raw values"
        )
    only_base = tuple(sorted(b_keys - n_keys, key=Configuration.sort_key))
    only_new = tuple(sorted(n_keys - b_keys, key=Configuration.sort_key))
    if only_base or only_new:
        notes.append(
            f"not compared: {len(only_base)} configurations only in the base, "
            f"{len(only_new)} only in {new.run_id}"
        )
    order = {name: i for i, name in enumerate(m.name for m in chosen)}
    changes.sort(key=lambda c: (c.key.sort_key(), order[c.metric]))
    return Comparison(
        base=base_label or "+".join(r.run_id for r in base_runs),
        new=new.run_id,
        rule=rule,
        reference=reference,
        changes=tuple(changes),
        only_in_base=only_base,
        only_in_new=only_new,
        notes=tuple(notes),
    )


def compare_loaded(
    base: Run,
    new: Run,
    *,
    rule: Rule | None = None,
    reference: str | None = None,
    metrics: Sequence[str] = (),
) -> Comparison:
    """Compare two loaded runs (see the module docstring for the rule)."""
    return compare_sides([base], new, rule=rule, reference=reference, metrics=metrics)


def compare_runs(
    base: Path,
    new: Path,
    *,
    rule: Rule | None = None,
    reference: str | None = None,
    metrics: Sequence[str] = (),
) -> Comparison:
    """Compare two runs given as run folders, results.json files or folders of runs
    (ResultsError on bad input)."""
    return compare_loaded(Run.load(base), Run.load(new), rule=rule, reference=reference,
                          metrics=metrics)  # fmt: skip
