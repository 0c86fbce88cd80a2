"""Exploratory effects: every other difference the run can pair, each with its interval
and a Benjamini-Hochberg q-value over its environment's exploratory family.

- Run factors (bench/factors.py: ``rx_cpu``, ``idle``, ``client_wait``, ``arrivals``): a
  configuration at each other level against the same configuration at the default,
  trial by trial (a trial is a round).
- Server-path factors (``transitions``, ``sleeps``): impls whose manifests' ``server_path``
  differ in that property alone; with all four corners measured, their interaction too.
- Comparisons: each impl against every impl its manifest ``compare_with`` names, in the
  same configuration otherwise.

Every estimate is the mean over rounds of (B − A) with its Student-t interval over the
same pairs, n = rounds with both sides ok (at least ``MIN_ROUNDS``; fewer are listed as
too few rounds, never estimated).  In rate mode a pair counts only where both sides were
offered the same absolute rate (within ``SAME_RATE``).  The members of the primary family
(bench/analysis/primary.py) are left out here: they are reported there, adjusted for their
own family.  Nothing here is a headline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from bench.analysis.equivalence import EquivalenceTest, equivalence
from bench.analysis.prediction import Prediction, predict
from bench.analysis.primary import Family, ok_trials, path_corners
from bench.analysis.stats import MIN_ROUNDS, PairedEstimate, bh_qvalues, paired_t_interval
from bench.factors import FACTORS
from bench.question import PREDICTION_ALPHA, PRIMARY_METRIC, margin_ns
from bench.results.metrics import metric
from bench.results.rows import Configuration, PhaseRow
from bench.results.run import Run

EFFECT_METRICS = ("rtt_p50", "cpu_ns_per_req", "server_cpu_busy_ns_per_req")
SAME_RATE = 0.01  # rate mode: offered rates within 1 % of each other are the same load
COMPARISON = "comparison"


@dataclass(frozen=True)
class Effect:
    factor: str  # a run factor, a server-path property, "transitions × sleeps", comparison
    change: str  # what the difference is, e.g. "client → server" or "spin-c − blocking-c"
    key: Configuration  # the configuration at level A
    other: Configuration  # the configuration at level B (A for an interaction)
    metric: str
    estimate: PairedEstimate  # level B − level A, in the metric's unit
    prediction: Prediction  # what the calibration predicted B − A to be
    test: EquivalenceTest | None = None
    q: float = float("nan")  # Benjamini-Hochberg over the environment's exploratory effects

    @property
    def context(self) -> str:
        """The other factors' levels where they are not the default, e.g. "idle=poll"."""
        parts = [
            f"{f.name}={getattr(self.key, f.name)}"
            for f in FACTORS
            if f.name != self.factor and getattr(self.key, f.name) != f.default
        ]
        if self.key.server_options:
            parts.append(self.key.server_options)
        return ", ".join(parts)

    @property
    def outcome(self) -> str | None:
        """The prediction's equivalence test: held | failed | inconclusive (None: nothing
        predicted)."""
        return None if self.test is None else self.test.outcome


@dataclass(frozen=True)
class TooFew:
    """A difference that could not be estimated: fewer than MIN_ROUNDS paired rounds."""

    factor: str
    change: str
    key: Configuration
    n: int


@dataclass(frozen=True)
class Exploratory:
    effects: tuple[Effect, ...]
    too_few: tuple[TooFew, ...]


def _same_load(a: PhaseRow, b: PhaseRow) -> bool:
    """Rate mode compares only equal offered rates; other modes offer no rate."""
    if a.mode != "rate":
        return True
    ra, rb = a.offered_rps, b.offered_rps
    return ra is not None and rb is not None and abs(ra - rb) <= SAME_RATE * max(ra, rb)


def _differences(a: Mapping[int, PhaseRow], b: Mapping[int, PhaseRow], name: str) -> list[float]:
    read = metric(name).read
    diffs = []
    for trial in sorted(set(a) & set(b)):
        if not _same_load(a[trial], b[trial]):
            continue
        va, vb = read(a[trial]), read(b[trial])
        if va is not None and vb is not None:
            diffs.append(float(vb) - float(va))
    return diffs


Side = tuple[Configuration, Mapping[int, PhaseRow]]


def _predicted(run: Run, name: str, terms: Sequence[tuple[float, Side]]) -> Prediction:
    env = terms[0][1][0].env
    calibration = run.environment(env).calibration
    return predict(
        name, calibration, [(sign, key, list(rows.values())) for sign, (key, rows) in terms]
    )


def _baseline(rows: Mapping[int, PhaseRow], name: str) -> float | None:
    read = metric(name).read
    values = [float(v) for r in rows.values() if (v := read(r)) is not None]
    return sum(values) / len(values) if values else None


class _Collector:
    """Effects and too-few-rounds differences as they are paired."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.effects: list[Effect] = []
        self.too_few: list[TooFew] = []

    def pair(self, factor: str, change: str, a: Side, b: Side) -> None:
        (key, rows_a), (other, rows_b) = a, b
        short = 0
        for name in EFFECT_METRICS:
            diffs = _differences(rows_a, rows_b, name)
            estimate = paired_t_interval(diffs)
            if estimate is None:
                short = max(short, len(diffs)) if diffs else short
                continue
            guess = _predicted(self.run, name, [(-1.0, a), (1.0, b)])
            test = _test(estimate, guess, _baseline(rows_a, name))
            self.effects.append(Effect(factor, change, key, other, name, estimate, guess, test))
        if (
            short
            and short < MIN_ROUNDS
            and not any(e.key == key and e.other == other for e in self.effects)
        ):
            self.too_few.append(TooFew(factor, change, key, short))


def _test(
    estimate: PairedEstimate, guess: Prediction, baseline: float | None
) -> EquivalenceTest | None:
    if guess.value is None:
        return None
    return equivalence(
        estimate.mean, estimate.se, estimate.df, guess.value, guess.se or 0.0,
        margin_ns(baseline), PREDICTION_ALPHA,
    )  # fmt: skip


def _run_factors(run: Run, out: _Collector) -> None:
    trials = ok_trials(run.rows)
    # each run factor's other levels against its default (bench/factors.py)
    for factor in FACTORS:
        level_a = factor.default
        for level_b in factor.levels[1:]:
            for key, a in sorted(trials.items(), key=lambda kv: kv[0].sort_key()):
                if getattr(key, factor.name) != level_a:
                    continue
                partner: dict[str, Any] = {factor.name: level_b}
                b_key = replace(key, **partner)
                b = trials.get(b_key)
                if b is not None:
                    out.pair(factor.name, f"{level_a} → {level_b}", (key, a), (b_key, b))


def _corner(factor: str, value: bool, other: bool) -> tuple[bool, bool]:
    """(transitions, sleeps) with ``factor`` at ``value`` and the other property at ``other``."""
    return (value, other) if factor == "transitions" else (other, value)


ALL_CORNERS = ((True, True), (True, False), (False, True), (False, False))


def _server_path(run: Run, out: _Collector) -> None:
    """Removing one server-path property (the impl without it − the impl with it), at each
    value of the other; the interaction when all four corners were measured."""
    corners = path_corners(run)
    trials = ok_trials(run.rows)
    for key in sorted(trials, key=Configuration.sort_key):
        if key.impl != corners.get((True, True)):
            continue
        at = {c: trials.get(replace(key, impl=impl)) for c, impl in corners.items()}
        for factor in ("sleeps", "transitions"):
            for other in (True, False):
                with_it, without = _corner(factor, True, other), _corner(factor, False, other)
                a, b = at.get(with_it), at.get(without)
                if a is None or b is None:
                    continue
                change = f"{corners[without]} − {corners[with_it]}"
                base = replace(key, impl=corners[with_it])
                other_key = replace(key, impl=corners[without])
                out.pair(factor, change, (base, a), (other_key, b))
        if all(at.get(c) is not None for c in ALL_CORNERS):
            _interaction(run, key, at, corners, out)


def _interaction(
    run: Run,
    key: Configuration,
    at: Mapping[tuple[bool, bool], Mapping[int, PhaseRow] | None],
    corners: Mapping[tuple[bool, bool], str],
    out: _Collector,
) -> None:
    """(T,S) − (¬T,S) − [(T,¬S) − (¬T,¬S)]: how much removing transitions saves more when
    the server also sleeps."""
    tt, tf, ft, ff = (at[(True, True)], at[(True, False)], at[(False, True)], at[(False, False)])
    assert tt is not None and tf is not None and ft is not None and ff is not None
    change = (
        f"({corners[(True, True)]} − {corners[(False, True)]}) − "
        f"({corners[(True, False)]} − {corners[(False, False)]})"
    )
    for name in EFFECT_METRICS:
        read = metric(name).read
        diffs = []
        for trial in sorted(set(tt) & set(tf) & set(ft) & set(ff)):
            v = [read(x[trial]) for x in (tt, ft, tf, ff)]
            if all(x is not None for x in v):
                a, b, c, d = (float(x) for x in v if x is not None)
                diffs.append((a - b) - (c - d))
        estimate = paired_t_interval(diffs)
        if estimate is None:
            continue
        signs = {(True, True): 1.0, (False, True): -1.0, (True, False): -1.0}
        terms = [
            (signs.get(c, 1.0), (replace(key, impl=corners[c]), rows))
            for c, rows in ((c, at[c]) for c in ALL_CORNERS)
            if rows is not None
        ]
        guess = _predicted(run, name, terms)
        test = _test(estimate, guess, _baseline(tt, name))
        out.effects.append(
            Effect("transitions × sleeps", change, key, key, name, estimate, guess, test)
        )


def _comparisons(run: Run, out: _Collector) -> None:
    """Each impl minus every impl its manifest compares it with, configuration by
    configuration."""
    trials = ok_trials(run.rows)
    for key in sorted(trials, key=Configuration.sort_key):
        info = run.impls.get(key.impl)
        if info is None:
            continue
        for base in info.compare_with:
            base_key = replace(key, impl=base)
            if base_key in trials:
                change = f"{key.impl} − {base}"
                out.pair(COMPARISON, change, (base_key, trials[base_key]), (key, trials[key]))


def _in_family(e: Effect, families: Mapping[str, Family]) -> bool:
    fam = families.get(e.key.env)
    if fam is None or e.metric != PRIMARY_METRIC:
        return False
    return any((f.contrast.a, f.contrast.b) == (e.key, e.other) for f in fam.findings)


def _dedupe(found: Sequence[Effect]) -> list[Effect]:
    """One effect per (A, B, metric): a pair of impls can be both a server-path step and a
    manifest comparison."""
    seen: dict[tuple[Configuration, Configuration, str], Effect] = {}
    for e in found:
        seen.setdefault((e.key, e.other, e.metric), e)
    return list(seen.values())


def exploratory(run: Run, families: Mapping[str, Family]) -> Exploratory:
    """Every pairable difference outside the primary families, with q-values per
    environment."""
    out = _Collector(run)
    _run_factors(run, out)
    _server_path(run, out)
    _comparisons(run, out)
    kept = [e for e in _dedupe(out.effects) if not _in_family(e, families)]
    with_q: list[Effect] = []
    for env in run.env_names:
        here = [e for e in kept if e.key.env == env]
        qs = bh_qvalues([e.estimate.p for e in here])
        with_q += [replace(e, q=q) for e, q in zip(here, qs, strict=True)]
    return Exploratory(tuple(with_q), tuple(dict.fromkeys(out.too_few)))
