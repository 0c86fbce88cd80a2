"""Effects, measured: each factor's difference paired within rounds, with its interval.

- Run factors (``rx_cpu``, ``idle``, ``client_wait``): a configuration at one level
  against the same configuration at the other, trial by trial (a trial is a round).
- Server-path factors (``transitions``, ``sleeps``): impls whose manifests' ``server_path``
  differ in that property alone (blocking-c → spin-c isolates sleeping; blocking-c →
  kmod-kthread transitions).  With all four corners of transitions × sleeps measured, the
  two main effects and their interaction as well.

Every estimate is the mean over rounds of (level B − level A), Student-t, n = rounds with
both sides ok; a metric is absent where either side lacks it.  Beside each one, what the
calibration predicted it to be (bench/analysis/prediction.py) and whether that held.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from bench.analysis.prediction import Prediction, predict
from bench.analysis.stats import PairedEstimate, paired_t_interval
from bench.results.metrics import metric
from bench.results.rows import FACTOR_LEVELS, Configuration, PhaseRow
from bench.results.run import Run

EFFECT_METRICS = ("rtt_p50", "cpu_ns_per_req", "server_cpu_busy_ns_per_req")
RUN_FACTORS = FACTOR_LEVELS  # each with two levels: the effect is the second − the first


@dataclass(frozen=True)
class Effect:
    factor: str  # a run factor, a server-path property, or "transitions × sleeps"
    change: str  # what the difference is, e.g. "client → server" or "spin-c − blocking-c"
    key: Configuration  # the configuration at level A
    metric: str
    estimate: PairedEstimate  # level B − level A, in the metric's unit
    prediction: Prediction  # what the calibration predicted B − A to be

    @property
    def context(self) -> str:
        """The other factors' levels where they are not the default, e.g. "idle=poll"."""
        parts = [
            f"{name}={getattr(self.key, name)}"
            for name, levels in FACTOR_LEVELS.items()
            if name != self.factor and getattr(self.key, name) != levels[0]
        ]
        if self.key.server_options:
            parts.append(self.key.server_options)
        return ", ".join(parts)

    @property
    def held(self) -> bool | None:
        """Whether the measured interval holds the prediction (None: nothing predicted)."""
        return self.prediction.held(self.estimate.interval)


def _by_trial(rows: Iterable[PhaseRow]) -> dict[Configuration, dict[int, PhaseRow]]:
    out: dict[Configuration, dict[int, PhaseRow]] = {}
    for row in rows:
        if row.ok:
            out.setdefault(row.configuration, {})[row.trial] = row
    return out


def _paired(
    a: Mapping[int, PhaseRow], b: Mapping[int, PhaseRow], name: str
) -> PairedEstimate | None:
    read = metric(name).read
    diffs = []
    for trial in sorted(set(a) & set(b)):
        va, vb = read(a[trial]), read(b[trial])
        if va is not None and vb is not None:
            diffs.append(float(vb) - float(va))
    return paired_t_interval(diffs)


Side = tuple[Configuration, Mapping[int, PhaseRow]]


def _predicted(run: Run, name: str, terms: Sequence[tuple[float, Side]]) -> Prediction:
    env = terms[0][1][0].env
    calibration = run.environment(env).calibration
    return predict(
        name, calibration, [(sign, key, list(rows.values())) for sign, (key, rows) in terms]
    )


def run_factor_effects(run: Run) -> list[Effect]:
    trials = _by_trial(run.rows)
    out: list[Effect] = []
    for factor, (level_a, level_b) in RUN_FACTORS.items():
        for key, a in sorted(trials.items(), key=lambda kv: kv[0].sort_key()):
            if getattr(key, factor) != level_a:
                continue
            partner: dict[str, Any] = {factor: level_b}
            b_key = replace(key, **partner)
            b = trials.get(b_key)
            if b is None:
                continue
            for name in EFFECT_METRICS:
                estimate = _paired(a, b, name)
                if estimate is not None:
                    guess = _predicted(run, name, [(-1.0, (key, a)), (1.0, (b_key, b))])
                    change = f"{level_a} → {level_b}"
                    out.append(Effect(factor, change, key, name, estimate, guess))
    return out


def _corners(run: Run) -> dict[tuple[bool, bool], str]:
    """(transitions, sleeps) -> the path-control impl whose manifest says so (first by
    name): other impls may declare their server path without joining the ladder."""
    found: dict[tuple[bool, bool], str] = {}
    for name in sorted(run.impls):
        path = run.impls[name].server_path
        if "path-control" in run.impls[name].roles and "transitions" in path and "sleeps" in path:
            found.setdefault((path["transitions"], path["sleeps"]), name)
    return found


def _corner(factor: str, value: bool, other: bool) -> tuple[bool, bool]:
    """(transitions, sleeps) with ``factor`` at ``value`` and the other property at ``other``."""
    return (value, other) if factor == "transitions" else (other, value)


ALL_CORNERS = ((True, True), (True, False), (False, True), (False, False))


def server_path_effects(run: Run) -> list[Effect]:
    """Removing one server-path property (the impl without it − the impl with it), at each
    value of the other; the interaction when all four corners were measured."""
    corners = _corners(run)
    trials = _by_trial(run.rows)
    out: list[Effect] = []
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
                for name in EFFECT_METRICS:
                    estimate = _paired(a, b, name)
                    if estimate is not None:
                        terms = [(-1.0, (base, a)), (1.0, (other_key, b))]
                        guess = _predicted(run, name, terms)
                        out.append(Effect(factor, change, base, name, estimate, guess))
        if all(at.get(c) is not None for c in ALL_CORNERS):
            out.extend(_interaction(run, key, at, corners))
    return out


def _interaction(
    run: Run,
    key: Configuration,
    at: Mapping[tuple[bool, bool], Mapping[int, PhaseRow] | None],
    corners: Mapping[tuple[bool, bool], str],
) -> list[Effect]:
    """(T,S) − (¬T,S) − [(T,¬S) − (¬T,¬S)]: how much removing transitions saves more when
    the server also sleeps."""
    tt, tf, ft, ff = (at[(True, True)], at[(True, False)], at[(False, True)], at[(False, False)])
    assert tt is not None and tf is not None and ft is not None and ff is not None
    out = []
    for name in EFFECT_METRICS:
        read = metric(name).read
        diffs = []
        for trial in sorted(set(tt) & set(tf) & set(ft) & set(ff)):
            v = [read(x[trial]) for x in (tt, ft, tf, ff)]
            if all(x is not None for x in v):
                a, b, c, d = (float(x) for x in v if x is not None)
                diffs.append((a - b) - (c - d))
        estimate = paired_t_interval(diffs)
        if estimate is not None:
            change = (
                f"({corners[(True, True)]} − {corners[(False, True)]}) − "
                f"({corners[(True, False)]} − {corners[(False, False)]})"
            )
            signs = {(True, True): 1.0, (False, True): -1.0, (True, False): -1.0}
            terms = [
                (signs.get(c, 1.0), (replace(key, impl=corners[c]), rows))
                for c, rows in ((c, at[c]) for c in ALL_CORNERS)
                if rows is not None
            ]
            guess = _predicted(run, name, terms)
            out.append(Effect("transitions × sleeps", change, key, name, estimate, guess))
    return out


def effects(run: Run) -> list[Effect]:
    return run_factor_effects(run) + server_path_effects(run)


def _us(ns: float) -> str:
    return f"{ns / 1000:+.1f} µs"


def _said(e: Effect) -> str:
    i = e.estimate.interval
    return (
        f"{_us(e.estimate.mean)} [{_us(i.low)}, {_us(i.high)}] "
        f"({e.estimate.method}{'' if i.excludes_zero else '; the interval includes zero'})"
    )


def verdicts(run: Run, found: Sequence[Effect]) -> dict[str, list[str]]:
    """Per environment, sentences generated from the RTT effects: which factor moved p50
    RTT most, and what each factor did."""
    out: dict[str, list[str]] = {}
    for env in run.env_names:
        rtt = [e for e in found if e.key.env == env and e.metric == "rtt_p50"]
        if not rtt:
            continue
        label = run.environment(env).label()
        # the largest among pingpong effects: in rate and flood the RTT is mostly queueing
        biggest = max(
            [e for e in rtt if e.key.mode == "pingpong"] or rtt, key=lambda e: abs(e.estimate.mean)
        )
        lines = [
            f"In {env} ({label}), the largest measured effect on p50 RTT is {biggest.factor} "
            f"({biggest.change}, {biggest.key.impl} {biggest.key.mode} {biggest.key.size} B "
            f"{biggest.key.topology}): {_said(biggest)}."
        ]
        for factor in ("transitions", "sleeps", "transitions × sleeps", *RUN_FACTORS):
            for e in (x for x in rtt if x.factor == factor and x is not biggest):
                at = f", {e.context}" if e.context else ""
                lines.append(
                    f"{factor} ({e.change}, {e.key.impl} {e.key.mode} {e.key.size} B{at}): "
                    f"p50 RTT {_said(e)}."
                )
        out[env] = lines
    return out
