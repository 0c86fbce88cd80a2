"""The compare rule, measured: replay recorded runs to find its false-positive rate and its
power, so that its thresholds are chosen from data rather than assumed.

Input: several runs of one benchmark recorded on one machine (the CI guard's, say), each
with its rounds.  Every ordered pair of them (BASE, NEW) is one comparison that nothing
changed between: an **A/A** comparison, whose counted changes are false alarms.  Into a
copy of NEW's values the replay then injects

- a **slowdown** of one impl by 1.2x, 1.3x and 1.5x (its round-trip times multiplied,
  its throughput divided; counts untouched), which the rule should catch: its power;
- a **machine change** that moves every impl at once, the reference too — multiplicative
  (x0.8, x1.25: a faster or slower machine) and additive (every round trip plus or minus
  a shared cost, 40% of the fastest impl's round trip: the size of the move holding the
  idle state at poll made here in one wake-up-bound round trip, 61 -> 35 µs), which moves a
  fast impl by a larger factor than a slow one, so normalising to the reference does not
  cancel it.  Each is replayed twice: judged as a comparison on one machine (the raw
  values are checked too) and as one between machines, the guard against a baseline
  recorded elsewhere (normalised ratios only).  Under a machine change alone nothing should
  count; with a slowdown the slowdown still should.

Every comparison is judged by bench/analysis/compare.py exactly as ``bench compare`` judges
it.  A rate is the share of comparisons (pairs) with the outcome, with a Wilson 95% interval
over the pairs; the pairs share runs, so they are not independent and the interval is
narrower than an honest one — with few runs, read the counts.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from scipy import stats as sps

from bench.analysis.compare import (
    COMPARED,
    GUARD_METRICS,
    GUARD_REFERENCE_ROLE,
    IMPROVEMENT,
    RAW_CHECKS,
    REGRESSION,
    Rule,
    Sample,
    Samples,
    compare_samples,
    default_reference,
    run_samples,
)
from bench.results.metrics import Metric, metric
from bench.results.run import Run

SLOWDOWNS = (1.2, 1.3, 1.5)
FACTORS = (1.1, 1.15, 1.2, 1.25, 1.3, 1.4, 1.5)
# the reference is judged raw against its own factor: its candidates, and what it should
# still catch
REFERENCE_FACTORS = (1.25, 1.5, 1.75, 2.0, 2.5)
REFERENCE_SLOWDOWNS = (1.5, 2.0, 3.0)
SHARED_COST_SHARE = 0.4  # an additive machine change: 40% of the fastest impl's round trip
MAX_FALSE_ALARMS = 0.05
CHOICE = (
    f"of the candidates whose A/A false alarms stay at or below {MAX_FALSE_ALARMS:.0%} under "
    "every machine change, the one that catches a 1.3x slowdown most often (then the "
    "smaller factor); on one machine and between machines apart"
)
NORMALISED_ONLY_CHECK = "none"  # between machines: no raw values to check
POWER_AT = 1.3
NO_CHANGE = "none"
ANOTHER_MACHINE = "(another machine)"


@dataclass(frozen=True)
class MachineChange:
    """What a change of machine does to every impl's values: times plus ``add_ns`` (round
    trips only: a shared cost per round trip), then times times ``scale``.  With
    ``other_machine`` the comparison is judged as one between machines (the guard against a
    baseline recorded elsewhere): normalised ratios only, no raw check."""

    name: str
    add_ns: float = 0.0
    scale: float = 1.0
    other_machine: bool = False

    def apply(self, m: Metric, value: float) -> float:
        if m.kind == "time":
            shifted = value + self.add_ns if m.name.startswith("rtt_") else value
            return max(shifted, 0.0) * self.scale
        if m.kind == "rate" and value > 0.0:
            per_request_s = 1.0 / value + self.add_ns * 1e-9
            return 1.0 / (per_request_s * self.scale)
        return value


def slow(m: Metric, value: float, slowdown: float) -> float:
    """``value`` of an impl made ``slowdown`` times slower (times up, rates down)."""
    if m.kind == "time":
        return value * slowdown
    if m.kind == "rate":
        return value / slowdown
    return value


@dataclass(frozen=True)
class Injection:
    machine: MachineChange
    slowed: str | None = None
    slowdown: float = 1.0

    def value(self, m: Metric, impl: str, value: float) -> float:
        out = self.machine.apply(m, value)
        return slow(m, out, self.slowdown) if impl == self.slowed else out

    def samples(self, m: Metric, samples: Samples, reference: str) -> Samples:
        out: Samples = {}
        for key, s in samples.items():
            raw = tuple(self.value(m, key.impl, v) for v in s.raw)
            ref = tuple(None if r is None else self.value(m, reference, r) for r in s.reference)
            out[key] = Sample(raw, ref)
        return out


@dataclass(frozen=True)
class Rate:
    """``hits`` of ``n`` comparisons, with a Wilson 95% interval."""

    hits: int
    n: int

    @property
    def value(self) -> float:
        return self.hits / self.n if self.n else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        if not self.n:
            return float("nan"), float("nan")
        ci = sps.binomtest(self.hits, self.n).proportion_ci(0.95, method="wilson")
        return float(ci.low), float(ci.high)

    def describe(self) -> str:
        low, high = self.interval
        return f"{self.value:.0%} [{low:.0%}, {high:.0%}] ({self.hits}/{self.n})"

    def to_json(self) -> dict[str, Any]:
        low, high = self.interval
        return {"hits": self.hits, "n": self.n, "rate": self.value, "ci95": [low, high]}


@dataclass(frozen=True)
class RuleRow:
    """One candidate factor under one machine change: how often an A/A comparison counts a
    change (a regression or an improvement of any metric) of an impl other than the
    reference, and of the reference; how often a slowed impl is caught (a regression of
    one of its times or rates), per slowdown — of the other impls, and of the reference."""

    factor: float
    raw_check: str
    machine: str
    other_machine: bool
    false_alarms: Rate
    reference_false_alarms: Rate
    power: Mapping[float, Rate]
    reference_power: Mapping[float, Rate]
    power_by_impl: Mapping[str, Mapping[float, Rate]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "factor": self.factor,
            "raw_check": self.raw_check,
            "machine_change": self.machine,
            "other_machine": self.other_machine,
            "false_alarms": self.false_alarms.to_json(),
            "reference_false_alarms": self.reference_false_alarms.to_json(),
            "power": {f"{s:g}": r.to_json() for s, r in self.power.items()},
            "reference_power": {f"{s:g}": r.to_json() for s, r in self.reference_power.items()},
            "power_by_impl": {
                impl: {f"{s:g}": r.to_json() for s, r in rates.items()}
                for impl, rates in self.power_by_impl.items()
            },
        }


@dataclass(frozen=True)
class ReferenceRow:
    """One candidate reference factor, on one machine with nothing injected: how often an
    A/A comparison counts a change of the reference itself, and how often a slowed
    reference is caught."""

    reference_factor: float
    false_alarms: Rate
    power: Mapping[float, Rate]

    def to_json(self) -> dict[str, Any]:
        return {
            "reference_factor": self.reference_factor,
            "false_alarms": self.false_alarms.to_json(),
            "power": {f"{s:g}": r.to_json() for s, r in self.power.items()},
        }


@dataclass(frozen=True)
class RuleCalibration:
    runs: tuple[str, ...]
    rounds: tuple[int, ...]
    reference: str
    targets: tuple[str, ...]
    metrics: tuple[str, ...]
    rule: Rule  # the other thresholds, held at these values while the factor varies
    machine_changes: tuple[MachineChange, ...]
    rows: tuple[RuleRow, ...]
    chosen: tuple[float, str] | None  # (factor, raw check) on one machine
    chosen_other_machine: float | None  # the factor between machines
    reference_rows: tuple[ReferenceRow, ...] = field(default=())
    chosen_reference: float | None = None  # the reference's own factor
    notes: tuple[str, ...] = field(default=())

    @property
    def pairs(self) -> int:
        return len(self.runs) * (len(self.runs) - 1)

    def row(self, factor: float, raw_check: str, machine: str = NO_CHANGE) -> RuleRow:
        for r in self.rows:
            if (r.factor, r.raw_check, r.machine) == (factor, raw_check, machine):
                return r
        raise KeyError((factor, raw_check, machine))

    def worst_false_alarms(self, factor: float, raw_check: str) -> Rate:
        """The most false alarms of a candidate under any machine change (between
        machines: ``raw_check`` NORMALISED_ONLY_CHECK)."""
        rows = [r for r in self.rows if (r.factor, r.raw_check) == (factor, raw_check)]
        return max((r.false_alarms for r in rows), key=lambda rate: rate.value)

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": list(self.runs),
            "rounds": list(self.rounds),
            "pairs": self.pairs,
            "reference": self.reference,
            "targets": list(self.targets),
            "metrics": list(self.metrics),
            "alpha": self.rule.alpha,
            "reference_factor": self.rule.reference_factor,
            "count_tolerance": self.rule.count_tolerance,
            "machine_changes": [
                {
                    "name": c.name,
                    "add_ns": c.add_ns,
                    "scale": c.scale,
                    "other_machine": c.other_machine,
                }
                for c in self.machine_changes
            ],
            "rows": [r.to_json() for r in self.rows],
            "chosen": None
            if self.chosen is None
            else {"factor": self.chosen[0], "raw_check": self.chosen[1]},
            "chosen_other_machine_factor": self.chosen_other_machine,
            "reference_rows": [r.to_json() for r in self.reference_rows],
            "chosen_reference_factor": self.chosen_reference,
            "choice": CHOICE,
            "max_false_alarms": MAX_FALSE_ALARMS,
            "notes": list(self.notes),
        }


def machine_changes(runs: Sequence[Run], reference: str) -> tuple[MachineChange, ...]:
    """No change; then x0.8, x1.25 and a shared cost of plus and minus 40% of the fastest
    impl's median round trip in these runs, each judged as on the same machine (raw values
    checked too) and as between machines (normalised only)."""
    fastest = min(
        (s for run in runs for s in run_samples(run, metric("rtt_p50"), reference).values()),
        key=lambda s: sorted(s.raw)[len(s.raw) // 2],
        default=None,
    )
    moves = [MachineChange("x0.8", scale=0.8), MachineChange("x1.25", scale=1.25)]
    if fastest is not None:
        shared = SHARED_COST_SHARE * sorted(fastest.raw)[len(fastest.raw) // 2]
        moves += [
            MachineChange(f"+{shared / 1000:.1f} µs", add_ns=shared),
            MachineChange(f"-{shared / 1000:.1f} µs", add_ns=-shared),
        ]
    elsewhere = [replace(c, name=f"{c.name} {ANOTHER_MACHINE}", other_machine=True) for c in moves]
    return (MachineChange(NO_CHANGE), *moves, *elsewhere)


def _alarm(changes: Sequence[Any], *, reference: str, of_reference: bool) -> bool:
    return any(
        c.verdict in (REGRESSION, IMPROVEMENT) and (c.key.impl == reference) == of_reference
        for c in changes
    )


def _caught(changes: Sequence[Any], impl: str) -> bool:
    return any(
        c.verdict == REGRESSION and c.key.impl == impl and metric(c.metric).kind in ("time", "rate")
        for c in changes
    )


def _guard_reference(runs: Sequence[Run]) -> str:
    """The reference the guard normalises to when these are guard runs, else the compare
    reference."""
    try:
        return default_reference(*runs, role=GUARD_REFERENCE_ROLE)
    except ValueError:
        return default_reference(*runs)


def calibrate_rule(
    runs: Sequence[Run],
    *,
    rule: Rule | None = None,
    reference: str | None = None,
    metrics: Sequence[str] = (),
    factors: Sequence[float] = FACTORS,
    slowdowns: Sequence[float] = SLOWDOWNS,
) -> RuleCalibration:
    """Replay every ordered pair of ``runs`` under every machine change, with and without
    each slowdown of each impl, for every candidate factor (ValueError on unusable input).
    The reference is, unless named, the guard's (role ``guard-reference``) when the runs
    record one, else the ``compare-reference``; the metrics, unless named, the guard's when
    the reference is the guard's, else all the compared ones."""
    if len(runs) < 3:
        raise ValueError(f"the rule needs at least 3 recorded runs to replay (got {len(runs)})")
    if len({r.run_id for r in runs}) != len(runs):
        raise ValueError("the same run was given twice")
    rule = (rule or Rule()).check()
    guard_reference = _guard_reference(runs)
    reference = reference or guard_reference
    default_metrics = GUARD_METRICS if reference == guard_reference else COMPARED
    compared = [metric(name) for name in (metrics or default_metrics)]
    samples = [{m.name: run_samples(run, m, reference) for m in compared} for run in runs]
    impls = sorted({k.impl for s in samples for per in s.values() for k in per})
    if reference not in impls:
        raise ValueError(f"the reference {reference!r} was not measured in these runs")
    targets = tuple(i for i in impls if i != reference)
    if not targets:
        raise ValueError("these runs measured only the reference: nothing to slow down")
    changes = machine_changes(runs, reference)
    envs = frozenset(k.env for s in samples for per in s.values() for k in per)

    def replay(base: int, new: int, injection: Injection, candidate: Rule) -> list[Any]:
        by = {m.name: m for m in compared}
        injected = {
            name: injection.samples(by[name], per, reference) for name, per in samples[new].items()
        }
        other = envs if injection.machine.other_machine else frozenset()
        return compare_samples(samples[base], injected, candidate, reference,
                               other_machine=other)  # fmt: skip

    pairs = list(itertools.permutations(range(len(runs)), 2))

    def row(factor: float, raw_check: str, change: MachineChange) -> RuleRow:
        check = raw_check if raw_check in RAW_CHECKS else rule.raw_check
        candidate = replace(rule, factor=factor, other_machine_factor=factor, raw_check=check)
        plain = [replay(b, n, Injection(change), candidate) for b, n in pairs]
        alarms = sum(_alarm(c, reference=reference, of_reference=False) for c in plain)
        ref_alarms = sum(_alarm(c, reference=reference, of_reference=True) for c in plain)
        power: dict[float, Rate] = {}
        reference_power: dict[float, Rate] = {}
        by_impl: dict[str, dict[float, Rate]] = {t: {} for t in targets}
        for s in slowdowns:
            for target in targets:
                hits = sum(
                    _caught(replay(b, n, Injection(change, target, s), candidate), target)
                    for b, n in pairs
                )
                by_impl[target][s] = Rate(hits, len(pairs))
            power[s] = Rate(sum(by_impl[t][s].hits for t in targets), len(pairs) * len(targets))
            ref_hits = sum(
                _caught(replay(b, n, Injection(change, reference, s), candidate), reference)
                for b, n in pairs
            )
            reference_power[s] = Rate(ref_hits, len(pairs))
        return RuleRow(factor, raw_check, change.name, change.other_machine,
                       Rate(alarms, len(pairs)), Rate(ref_alarms, len(pairs)), power,
                       reference_power, by_impl)  # fmt: skip

    def reference_row(reference_factor: float) -> ReferenceRow:
        candidate = replace(rule, reference_factor=reference_factor)
        plain = [replay(b, n, Injection(changes[0]), candidate) for b, n in pairs]
        alarms = sum(_alarm(c, reference=reference, of_reference=True) for c in plain)
        power = {
            s: Rate(sum(_caught(replay(b, n, Injection(changes[0], reference, s), candidate),
                                reference) for b, n in pairs), len(pairs))
            for s in REFERENCE_SLOWDOWNS
        }  # fmt: skip
        return ReferenceRow(reference_factor, Rate(alarms, len(pairs)), power)

    reference_rows = tuple(reference_row(f) for f in REFERENCE_FACTORS)
    here = [c for c in changes if not c.other_machine]
    elsewhere = [c for c in changes if c.other_machine]
    rows = [row(f, check, c) for f, check, c in itertools.product(factors, RAW_CHECKS, here)]
    rows += [row(f, NORMALISED_ONLY_CHECK, c) for f, c in itertools.product(factors, elsewhere)]
    calibration = RuleCalibration(
        runs=tuple(r.run_id for r in runs),
        rounds=tuple(sorted({len(s.raw) for per in samples[0].values() for s in per.values()})),
        reference=reference,
        targets=targets,
        metrics=tuple(m.name for m in compared),
        rule=rule,
        machine_changes=changes,
        rows=tuple(rows),
        chosen=None,
        chosen_other_machine=None,
    )
    notes = [
        f"{len(pairs)} ordered pairs of {len(runs)} runs; the pairs share runs, so the "
        "Wilson intervals over pairs are narrower than honest ones"
    ]

    def score(candidate: tuple[float, str]) -> tuple[float, float]:
        power = calibration.row(*candidate).power.get(POWER_AT)
        return (power.value if power else 0.0, -candidate[0])

    def fitting(checks: Sequence[str]) -> list[tuple[float, str]]:
        return [
            (f, check)
            for f, check in itertools.product(factors, checks)
            if calibration.worst_false_alarms(f, check).value <= MAX_FALSE_ALARMS
        ]

    chosen = max(fitting(RAW_CHECKS), key=score, default=None)
    # between machines the smallest fitting factor: power only falls as the factor grows
    other = min((f for f, _ in fitting((NORMALISED_ONLY_CHECK,))), default=None)
    chosen_reference = min(
        (r.reference_factor for r in reference_rows if r.false_alarms.value <= MAX_FALSE_ALARMS),
        default=None,
    )
    found_any = (
        ("on one machine", chosen),
        ("between machines", other or not elsewhere),
        ("the reference", chosen_reference),
    )
    for what, found in found_any:
        if not found:
            notes.append(
                f"{what}: no candidate factor keeps false alarms at or below "
                f"{MAX_FALSE_ALARMS:.0%} under every machine change"
            )
    return replace(calibration, chosen=chosen, chosen_other_machine=other,
                   reference_rows=reference_rows, chosen_reference=chosen_reference,
                   notes=tuple(notes))  # fmt: skip
