"""The primary family: the pre-registered contrasts of bench/question.py, evaluated.

Per environment, the family is formed from the manifests and from what the design
attempted at the primary placement (rows of any status, skipped impls left out) — never
from the values measured.  Each member is a paired difference over rounds (B − A, p50 RTT)
with an interval that holds together with the others of its family (Bonferroni), or the
twin's dose-response slope with its interval adjusted the same way.  Phases that failed an
excluding validity gate are left out of its rounds (bench/question.py), and the family
says how many, and how many it kept although they failed an advisory gate.  A member with fewer
than ``MIN_ROUNDS`` paired rounds stays in the family and says so.  Beside each, the
calibration's prediction and its equivalence test.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from bench.analysis.dose import fit_slope
from bench.analysis.equivalence import EquivalenceTest, equivalence
from bench.analysis.prediction import Prediction, predict, price
from bench.analysis.stats import MIN_ROUNDS, Interval, bonferroni_confidence, paired_t_interval
from bench.factors import factor
from bench.question import (
    ADJUSTMENT,
    DOSE,
    DOSE_ROLE,
    FAMILY_CONFIDENCE,
    KERNEL_VS_TWIN,
    PATH_CONTROL_ROLE,
    PREDICTION_ALPHA,
    PRIMARY_METRIC,
    PRIMARY_MODE,
    PRIMARY_RX_CPU,
    PRIMARY_SIZE,
    PRIMARY_TOPOLOGY,
    TRANSITION_DOSE,
    TRANSITIONS,
    TWIN_ROLE,
    WAKE_UP,
    excluding_failure,
    margin_ns,
)
from bench.results.metrics import metric
from bench.results.rows import DEFAULT_CLIENT_WAIT, Configuration, PhaseRow
from bench.results.run import Run

REQUEST_SYSCALLS = "server_request_syscalls_per_req"


@dataclass(frozen=True)
class Contrast:
    """B − A, named before any value is read.  For a dose, ``a`` is the dose impl's
    configuration without its option and ``b`` the same."""

    env: str
    kinds: tuple[str, ...]
    a: Configuration
    b: Configuration
    dose: str = ""

    @property
    def kind(self) -> str:
        return " and ".join(self.kinds)

    @property
    def change(self) -> str:
        if self.dose:
            return f"{self.a.impl}: +1 {self.dose.replace('_', ' ').rstrip('s')}"
        return f"{self.b.impl} − {self.a.impl}"

    @property
    def idle(self) -> str:
        return self.a.idle


@dataclass(frozen=True)
class Finding:
    """One member of the family, evaluated.  ``mean`` and ``interval`` in ns (a dose: ns
    per unit); None with ``note`` saying why."""

    contrast: Contrast
    n: int
    mean: float | None
    interval: Interval | None
    method: str
    baseline: float | None  # A's mean over the same rounds (ns)
    other: float | None  # B's mean over the same rounds (ns)
    prediction: Prediction
    test: EquivalenceTest | None
    note: str = ""
    # a dose: the twin's request-path syscalls per request, and slope × them
    per_request_count: float | None = None

    @property
    def estimated(self) -> bool:
        return self.mean is not None and self.interval is not None

    @property
    def significant(self) -> bool:
        return self.interval is not None and self.interval.excludes_zero

    @property
    def scaled(self) -> tuple[float, Interval] | None:
        """A dose's slope times the twin's request-path syscalls: what its transitions
        account for per request (ns)."""
        if self.mean is None or self.interval is None or self.per_request_count is None:
            return None
        k = self.per_request_count
        lo, hi = sorted((self.interval.low * k, self.interval.high * k))
        return self.mean * k, Interval(lo, hi)


@dataclass(frozen=True)
class GateUse:
    """How the family used its phases' validity gates (bench/question.py's rule): of the
    ``phases`` ok phases of its configurations, those left out per excluding gate, and
    those kept although they failed an advisory gate, per gate."""

    phases: int = 0
    excluded: tuple[tuple[str, int], ...] = ()  # (gate, phases left out)
    kept_failing: tuple[tuple[str, int], ...] = ()  # (advisory gate, phases kept)

    @property
    def left_out(self) -> int:
        return sum(n for _, n in self.excluded)

    def sentence(self, env: str) -> str | None:
        """The answer's first sentence when the family rests on failed gates, else None."""
        if not self.excluded and not self.kept_failing:
            return None
        parts = []
        if self.excluded:
            each = ", ".join(f"{g} {n}" for g, n in self.excluded)
            parts.append(f"{self.left_out} failed an excluding gate ({each}) and are left out")
        if self.kept_failing:
            each = ", ".join(f"{g} {n}" for g, n in self.kept_failing)
            parts.append(
                f"phases that failed only advisory gates are kept ({each}; the intervals pair "
                "whole rounds, so drift or dependence inside a phase is in their spread)"
            )
        head = f"In {env}, of the {self.phases} phases behind the primary contrasts, "
        return head + "; ".join(parts) + "."


@dataclass(frozen=True)
class Family:
    env: str
    size: int | None
    topology: str | None
    idles: tuple[str, ...]
    findings: tuple[Finding, ...]
    why_empty: str = ""
    gates: GateUse = GateUse()

    @property
    def m(self) -> int:
        return len(self.findings)

    @property
    def adjustment(self) -> str:
        return f"simultaneous {FAMILY_CONFIDENCE:.0%} intervals ({ADJUSTMENT}, m = {self.m})"

    def at(self, idle: str) -> list[Finding]:
        return [f for f in self.findings if f.contrast.idle == idle]


def user_space_twin(run: Run) -> str | None:
    """The impl the kernel-side ones are judged against (its manifest's role)."""
    return next((n for n, info in sorted(run.impls.items()) if TWIN_ROLE in info.roles), None)


def path_corners(run: Run) -> dict[tuple[bool, bool], str]:
    """(transitions, sleeps) -> the path-control impl whose manifest says so (first by
    name): other impls may declare their server path without joining the ladder."""
    found: dict[tuple[bool, bool], str] = {}
    for name in sorted(run.impls):
        info = run.impls[name]
        path = info.server_path
        if PATH_CONTROL_ROLE in info.roles and "transitions" in path and "sleeps" in path:
            found.setdefault((bool(path["transitions"]), bool(path["sleeps"])), name)
    return found


def _primary_keys(run: Run, env: str) -> dict[tuple[str, str, str], Configuration]:
    """(impl, idle, server_options) -> the configuration the design attempted at the
    primary placement (any status), at the claim's size and topology, the client blocking,
    the fewest requests outstanding."""
    skipped = {s.impl for s in run.skipped if s.env == env}
    keys = [
        r.configuration
        for r in run.rows
        if r.env == env
        and r.mode == PRIMARY_MODE
        and r.rx_cpu == PRIMARY_RX_CPU
        and r.client_wait == DEFAULT_CLIENT_WAIT
        and r.impl not in skipped
    ]
    size = _size(run, sorted({k.size for k in keys}))
    topologies = sorted({k.topology for k in keys})
    topology = PRIMARY_TOPOLOGY if PRIMARY_TOPOLOGY in topologies else next(iter(topologies), None)
    out: dict[tuple[str, str, str], Configuration] = {}
    for k in sorted(keys, key=Configuration.sort_key):
        if k.size != size or k.topology != topology:
            continue
        slot = (k.impl, k.idle, k.server_options)
        if slot not in out or (k.outstanding or 1) < (out[slot].outstanding or 1):
            out[slot] = k
    return out


def _size(run: Run, sizes: Sequence[int]) -> int | None:
    configured = run.config.get("default_size")
    for s in (configured, PRIMARY_SIZE):
        if isinstance(s, int) and s in sizes:
            return s
    return sizes[0] if sizes else None


def contrasts(run: Run, env: str) -> list[Contrast]:
    """The primary family of ``env``: fixed by the manifests and the design's attempted
    configurations at the primary placement."""
    keys = _primary_keys(run, env)
    twin = user_space_twin(run)
    corners = path_corners(run)
    idles = [i for i in factor("idle").levels if any(k[1] == i for k in keys)]
    out: list[Contrast] = []
    for idle in idles:
        here: list[Contrast] = []
        pairs: list[tuple[str, str | None, str | None]] = [
            (KERNEL_VS_TWIN, twin, name)
            for name in run.impl_order(run.impls)
            if run.impls[name].kernel_side and twin is not None
            and twin in run.impls[name].compare_with
        ]  # fmt: skip
        pairs += [
            (TRANSITIONS, corners.get((True, True)), corners.get((False, True))),
            (WAKE_UP, corners.get((True, True)), corners.get((True, False))),
            (WAKE_UP, corners.get((False, True)), corners.get((False, False))),
        ]
        for kind, a, b in pairs:
            _add(here, env, kind, keys.get((a or "", idle, "")), keys.get((b or "", idle, "")))
        if not any(TRANSITIONS in c.kinds for c in here):
            dose = _dose_contrast(run, env, idle, keys)
            if dose is not None:
                here.append(dose)
        out.extend(here)
    return out


def _add(
    here: list[Contrast], env: str, kind: str, a: Configuration | None, b: Configuration | None
) -> None:
    """Add B − A as ``kind``; a pair already there takes the kind as well."""
    if a is None or b is None:
        return
    for i, c in enumerate(here):
        if (c.a, c.b) == (a, b):
            here[i] = replace(c, kinds=(*c.kinds, kind))
            return
    here.append(Contrast(env, (kind,), a, b))


def _dose_contrast(
    run: Run, env: str, idle: str, keys: Mapping[tuple[str, str, str], Configuration]
) -> Contrast | None:
    dosed = sorted(
        (k for (impl, i, opts), k in keys.items()
         if i == idle and opts.startswith(f"{TRANSITION_DOSE}=") and "," not in opts
         and DOSE_ROLE in run.impl(impl).roles),
        key=Configuration.sort_key,
    )  # fmt: skip
    if len({k.server_options for k in dosed}) < 2:
        return None
    base = replace(dosed[0], server_options="")
    return Contrast(env, (DOSE,), base, base, TRANSITION_DOSE)


def ok_trials(rows: Iterable[PhaseRow]) -> dict[Configuration, dict[int, PhaseRow]]:
    """Per configuration, its ok rows by trial (a trial is a round)."""
    out: dict[Configuration, dict[int, PhaseRow]] = {}
    for row in rows:
        if row.ok:
            out.setdefault(row.configuration, {})[row.trial] = row
    return out


def _uses(c: Contrast, key: Configuration) -> bool:
    if c.dose:
        return replace(key, server_options="") == c.a
    return key in (c.a, c.b)


def gated_trials(
    trials: Mapping[Configuration, Mapping[int, PhaseRow]], found: Sequence[Contrast]
) -> tuple[dict[Configuration, dict[int, PhaseRow]], GateUse]:
    """``trials`` without the phases of the family's configurations that failed an
    excluding gate, and what the gates said of those configurations' phases."""
    excluded: Counter[str] = Counter()
    kept: Counter[str] = Counter()
    phases = 0
    out: dict[Configuration, dict[int, PhaseRow]] = {}
    for key, rows in trials.items():
        if not any(_uses(c, key) for c in found):
            out[key] = dict(rows)
            continue
        for t, row in rows.items():
            phases += 1
            failed = [g.name for g in row.gates if not g.passed]
            gate = excluding_failure(failed)
            if gate is not None:
                excluded[gate] += 1
                continue
            for name in dict.fromkeys(failed):
                kept[name] += 1
            out.setdefault(key, {})[t] = row
    return out, GateUse(phases, tuple(sorted(excluded.items())), tuple(sorted(kept.items())))


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _too_few(n: int) -> str:
    return f"too few rounds: {n} paired, {MIN_ROUNDS} needed for an interval"


def _evaluate_pair(
    run: Run, c: Contrast, trials: Mapping[Configuration, Mapping[int, PhaseRow]], m: int
) -> Finding:
    read = metric(PRIMARY_METRIC).read
    a, b = trials.get(c.a, {}), trials.get(c.b, {})
    pairs = []
    for t in sorted(set(a) & set(b)):
        va, vb = read(a[t]), read(b[t])
        if va is not None and vb is not None:
            pairs.append((float(va), float(vb)))
    calibration = run.environment(c.env).calibration
    guess = predict(
        PRIMARY_METRIC, calibration,
        [(-1.0, c.a, list(a.values())), (1.0, c.b, list(b.values()))],
    )  # fmt: skip
    base, other = _mean([p[0] for p in pairs]), _mean([p[1] for p in pairs])
    est = paired_t_interval(
        [vb - va for va, vb in pairs],
        bonferroni_confidence(m, FAMILY_CONFIDENCE),
        adjustment=f" per interval ({ADJUSTMENT}, m={m})",
    )
    if est is None:
        note = _too_few(len(pairs))
        return Finding(c, len(pairs), None, None, "", base, other, guess, None, note)
    test = None
    if guess.value is not None:
        test = equivalence(
            est.mean, est.se, est.df, guess.value, guess.se or 0.0,
            margin_ns(base), PREDICTION_ALPHA,
        )  # fmt: skip
    return Finding(c, est.n, est.mean, est.interval, est.method, base, other, guess, test)


def _evaluate_dose(
    run: Run, c: Contrast, trials: Mapping[Configuration, Mapping[int, PhaseRow]], m: int
) -> Finding:
    read = metric(PRIMARY_METRIC).read
    points: list[tuple[float, float]] = []
    rounds: set[int] = set()
    counts: list[float] = []
    count_of = metric(REQUEST_SYSCALLS).read
    for key, rows in trials.items():
        if replace(key, server_options="") != c.a or not key.server_options:
            continue
        name, _, value = key.server_options.partition("=")
        if name != c.dose:
            continue
        amount = float(value)
        for t, row in rows.items():
            v = read(row)
            if v is not None:
                points.append((amount, float(v)))
                rounds.add(t)
            n_sys = count_of(row)
            if amount == 0 and n_sys is not None:
                counts.append(float(n_sys))
    calibration = run.environment(c.env).calibration
    syscall = price(calibration, "null_syscall_ns")
    guess = (
        Prediction(syscall.value, "the calibrated null syscall", syscall.se)
        if syscall is not None
        else Prediction(None, "no calibrated null syscall")
    )
    count = _mean(counts)
    if len(rounds) < MIN_ROUNDS:
        return Finding(c, len(rounds), None, None, "", None, None, guess, None,
                       _too_few(len(rounds)), count)  # fmt: skip
    slope = fit_slope(points, PRIMARY_METRIC, bonferroni_confidence(m, FAMILY_CONFIDENCE))
    if slope is None:
        note = "the slope could not be fitted (one dose value measured)"
        return Finding(c, len(rounds), None, None, "", None, None, guess, None, note, count)
    method = slope.method + f" ({ADJUSTMENT}, m={m})"
    test = None
    if guess.value is not None:
        test = equivalence(
            slope.slope, slope.se, slope.n - 2, guess.value, guess.se or 0.0,
            margin_ns(None, per_unit=guess.value), PREDICTION_ALPHA,
        )  # fmt: skip
    return Finding(
        c, slope.n, slope.slope, slope.interval, method, None, None, guess, test, "", count
    )


def family(run: Run, env: str) -> Family:
    """The primary family of ``env``, evaluated."""
    found = contrasts(run, env)
    keys = _primary_keys(run, env)
    size = next(iter(keys.values())).size if keys else None
    topology = next(iter(keys.values())).topology if keys else None
    idles = tuple(dict.fromkeys(c.idle for c in found))
    if not found:
        why = (
            f"the design attempted no pingpong phase with rx_cpu={PRIMARY_RX_CPU} in {env}"
            if not keys
            else f"no two impls of a primary contrast were attempted at rx_cpu={PRIMARY_RX_CPU}"
        )
        return Family(env, size, topology, (), (), why)
    trials, gate_use = gated_trials(ok_trials(run.rows), found)
    m = len(found)
    findings = tuple(
        _evaluate_dose(run, c, trials, m) if c.dose else _evaluate_pair(run, c, trials, m)
        for c in found
    )
    return Family(env, size, topology, idles, findings, gates=gate_use)


def families(run: Run) -> dict[str, Family]:
    return {env: family(run, env) for env in run.env_names}
