"""The claim under test, measured: what answering in the kernel saves, and where it comes from.

The pairs come from the impls' manifests as the run recorded them: each impl is the
candidate against every impl its ``compare_with`` names (kernel-side candidates first).  For
each pair that both ran in one environment, in pingpong mode at the claim size, at each
receive-CPU and idle level measured (the placement comparison), two savings are estimated
from the per-trial values:

* RTT: the trial's p50 round-trip time;
* CPU: the trial's CPU time per request, all kinds (``cpu_ns.total``, system-wide).

saving = mean(baseline trials) - mean(candidate trials); its 95% interval is Student-t
over the rounds' paired differences where two or more rounds measured both, else the
percentile bootstrap of :func:`bench.analysis.stats.bootstrap_diff_ci` (10000 resamples of
each group, seed ``BOOTSTRAP_SEED``).  The calibration predicts each saving as

    Δsyscalls/req × calibrated null syscall cost
  + Δcontext switches/req (system-wide) × the price of a switch
    (bench/analysis/prediction.py: half a cross-CPU wake-up at the idle level, for RTT),

and the prediction holds when the measured saving's interval contains it; what it misses
is its error, reported as such (``rest``), never a part that makes the shares add up.  Here
syscalls are server + client syscalls per request (an impl without a server process
makes no server syscalls: counted 0).  The sentences are generated from these numbers; the
verdict of an environment is about the kernel-side candidates against the impl with the
``user-space-twin`` role.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bench.analysis.prediction import switch_price
from bench.analysis.stats import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    Interval,
    bootstrap_diff_ci,
    paired_t_interval,
)
from bench.results.metrics import metric
from bench.results.rows import (
    DEFAULT_CLIENT_WAIT,
    DEFAULT_IDLE,
    DEFAULT_RX_CPU,
    Configuration,
    PhaseRow,
)
from bench.results.run import Run

CLAIM_MODE = "pingpong"
PREFERRED_SIZE = 64
PREFERRED_TOPOLOGY = "lo"
RTT = "rtt_p50"
CPU = "cpu_ns_per_req"
SYSCALLS = "syscalls_per_req"
SWITCHES = "system_ctx_per_req"
TWIN_ROLE = "user-space-twin"


def fmt_us(ns: float) -> str:
    """Nanoseconds as microseconds with three significant figures or so."""
    us = ns / 1000.0
    a = abs(us)
    if a >= 100:
        return f"{us:.0f}"
    if a >= 10:
        return f"{us:.1f}"
    return f"{us:.2f}"


def fmt_count(x: float) -> str:
    return f"{x:.2f}"


@dataclass(frozen=True)
class Estimate:
    """One saving: baseline minus candidate, over trials; ``method`` names the interval."""

    metric: str
    baseline: tuple[float, ...]
    candidate: tuple[float, ...]
    ci: Interval
    method: str = ""

    @property
    def baseline_mean(self) -> float:
        return sum(self.baseline) / len(self.baseline)

    @property
    def candidate_mean(self) -> float:
        return sum(self.candidate) / len(self.candidate)

    @property
    def saving(self) -> float:
        return self.baseline_mean - self.candidate_mean

    @property
    def relative(self) -> float:
        return self.saving / self.baseline_mean if self.baseline_mean else 0.0

    @property
    def significant(self) -> bool:
        return self.ci.excludes_zero


@dataclass(frozen=True)
class Decomposition:
    """The calibration's prediction of a saving: fewer syscalls × the calibrated null
    syscall + fewer context switches × the cost of a switch (all ns).  ``rest`` is what the
    measured saving differs from the prediction by: the prediction's error, not a part."""

    available: bool
    reason: str
    d_syscalls: float | None = None
    syscall_ns: float | None = None
    d_ctx: float | None = None
    ctx_ns: float | None = None
    syscall_part: float = 0.0
    ctx_part: float = 0.0
    rest: float = 0.0
    ctx_basis: str = "calibrated switch"

    @property
    def predicted(self) -> float:
        return self.syscall_part + self.ctx_part

    def held(self, measured: Interval) -> bool:
        """Whether the measured saving's interval contains the prediction."""
        return self.available and measured.contains(self.predicted)


@dataclass(frozen=True)
class PairResult:
    env: str
    env_label: str
    candidate: str
    baseline: str
    size: int
    topology: str
    rtt: Estimate
    cpu: Estimate | None
    rtt_parts: Decomposition
    cpu_parts: Decomposition | None
    sentences: tuple[str, ...]
    rx_cpu: str = DEFAULT_RX_CPU
    idle: str = DEFAULT_IDLE

    @property
    def default_levels(self) -> bool:
        return (self.rx_cpu, self.idle) == (DEFAULT_RX_CPU, DEFAULT_IDLE)

    @property
    def levels(self) -> str:
        """The factor levels in words, e.g. "rx at client, idle default"."""
        return f"rx at {self.rx_cpu}, idle {self.idle}"


@dataclass(frozen=True)
class Claim:
    pairs: tuple[PairResult, ...]
    missing: tuple[str, ...]
    size_note: str
    method: str
    verdicts: Mapping[str, str]


def claim_pairs(run: Run) -> list[tuple[str, str]]:
    """(candidate, baseline) pairs from the impls' ``compare_with``, kernel side first."""
    order = run.impl_order(run.impls)
    order.sort(key=lambda name: not run.impl(name).kernel_side)
    return [(cand, base) for cand in order for base in run.impl(cand).compare_with]


def user_space_twin(run: Run) -> str | None:
    """The impl the kernel-side ones are judged against (its manifest's role)."""
    return next((n for n, info in sorted(run.impls.items()) if TWIN_ROLE in info.roles), None)


def _span(values: Sequence[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.0f}%" if round(lo) == round(hi) else f"{lo:.0f}–{hi:.0f}%"


def env_verdict(
    env: str, label: str, pairs: Sequence[PairResult], run: Run, twin: str | None
) -> str | None:
    """One generated paragraph: do the kernel-side impls beat the user-space twin here, and
    why."""
    kernel = [p for p in pairs if run.impl(p.candidate).kernel_side and p.baseline == twin]
    if not kernel:
        return None
    faster = [p for p in kernel if p.rtt.significant and p.rtt.saving > 0]
    slower = [p for p in kernel if p.rtt.significant and p.rtt.saving < 0]
    alike = [p for p in kernel if not p.rtt.significant]
    names = ", ".join(p.candidate for p in faster)
    text = f"In {env} ({label}), {len(faster)} of {len(kernel)} kernel-side impls"
    if faster:
        text += (
            f" ({names}) answer significantly faster than {twin}, saving "
            f"{_span([p.rtt.relative * 100 for p in faster])} of its p50 RTT."
        )
    else:
        text += f" answer significantly faster than {twin}."
    if slower:
        text += f" {len(slower)} answer slower ({', '.join(p.candidate for p in slower)})."
    if alike:
        text += f" For {len(alike)} the difference is not significant."
    split = [p for p in faster if p.rtt_parts.available]
    if split:

        def share(part: str) -> list[float]:
            return [getattr(p.rtt_parts, part) / p.rtt.saving * 100 for p in split]

        held = [p for p in split if p.rtt_parts.held(p.rtt.ci)]
        text += (
            " The calibration predicted those savings from fewer syscalls (user/kernel "
            f"transitions, {_span(share('syscall_part'))} of the measured saving) and fewer "
            f"context switches ({_span(share('ctx_part'))}); the prediction held — the "
            f"measured interval contains it — for {len(held)} of {len(split)}."
        )
    elif faster:
        text += " Without calibration the savings cannot be attributed."
    return text


def _mean_of(rows: Sequence[PhaseRow], name: str) -> float | None:
    """Mean over ``rows`` of a metric; None unless every row measured it."""
    read = metric(name).read
    vals: list[float] = []
    for r in rows:
        v = read(r)
        if v is None:
            return None
        vals.append(v)
    return sum(vals) / len(vals) if vals else None


def decompose(
    saving: float,
    base: Sequence[PhaseRow],
    cand: Sequence[PhaseRow],
    calibration: Mapping[str, object],
    key: Configuration,
    name: str,
) -> Decomposition:
    """The model's prediction (bench/analysis/prediction.py) of baseline − candidate for
    metric ``name``, with a switch priced as in configuration ``key``."""
    syscall_ns = calibration.get("null_syscall_ns")
    ctx_ns, basis = switch_price(calibration, key, name)
    if not isinstance(syscall_ns, int | float) or not isinstance(ctx_ns, int | float):
        return Decomposition(False, "calibration (null syscall and context-switch cost) missing")
    b_sys, c_sys = _mean_of(base, SYSCALLS), _mean_of(cand, SYSCALLS)
    b_ctx, c_ctx = _mean_of(base, SWITCHES), _mean_of(cand, SWITCHES)
    if b_sys is None or c_sys is None:
        return Decomposition(False, "syscalls per request not measured for both impls")
    if b_ctx is None or c_ctx is None:
        return Decomposition(False, "context switches per request not measured for both impls")
    d_sys, d_ctx = b_sys - c_sys, b_ctx - c_ctx
    sys_part, ctx_part = d_sys * float(syscall_ns), d_ctx * float(ctx_ns)
    return Decomposition(
        True,
        "",
        d_sys,
        float(syscall_ns),
        d_ctx,
        float(ctx_ns),
        sys_part,
        ctx_part,
        saving - sys_part - ctx_part,
        basis,
    )


def _estimate(name: str, base: Sequence[PhaseRow], cand: Sequence[PhaseRow]) -> Estimate | None:
    """Baseline − candidate: paired by round (Student-t) when two or more rounds measured
    both, else the percentile bootstrap of the two groups."""
    read = metric(name).read

    def by_trial(rows: Sequence[PhaseRow]) -> dict[int, float]:
        return {r.trial: float(v) for r in rows if (v := read(r)) is not None}

    b, c = by_trial(base), by_trial(cand)
    if not b or not c:
        return None
    common = sorted(set(b) & set(c))
    paired = paired_t_interval([b[t] - c[t] for t in common]) if len(common) >= 2 else None
    bv, cv = tuple(b.values()), tuple(c.values())
    if paired is not None:
        return Estimate(name, bv, cv, paired.interval, paired.method)
    method = f"percentile bootstrap, {BOOTSTRAP_RESAMPLES} resamples, n = {len(bv)}/{len(cv)}"
    return Estimate(name, bv, cv, bootstrap_diff_ci(bv, cv), method)


def _more_fewer(d: float, what: str) -> str:
    return f"{fmt_count(abs(d))} {'fewer' if d >= 0 else 'more'} {what} per request"


def _parts_sentence(p: Decomposition, what: str, measured: Estimate | None = None) -> str:
    if not p.available:
        return f"The prediction of the {what} is unavailable: {p.reason}."
    assert p.d_syscalls is not None and p.syscall_ns is not None
    assert p.d_ctx is not None and p.ctx_ns is not None
    text = (
        f"The calibration predicts {'an' if what.startswith('RTT') else 'a'} {what} of "
        f"{fmt_us(p.predicted)} µs: "
        f"{_more_fewer(p.d_syscalls, 'syscalls')} × {fmt_us(p.syscall_ns)} µs "
        f"(calibrated null syscall) = {fmt_us(p.syscall_part)} µs, plus "
        f"{_more_fewer(p.d_ctx, 'context switches')} × {fmt_us(p.ctx_ns)} µs "
        f"({p.ctx_basis}) = {fmt_us(p.ctx_part)} µs."
    )
    if measured is None:
        return text
    verdict = "held" if p.held(measured.ci) else "failed"
    return text + (
        f" Measured: {fmt_us(measured.saving)} µs ({_ci(measured)}): the prediction "
        f"{verdict}{'' if verdict == 'held' else f', off by {fmt_us(p.rest)} µs'}."
    )


def _ci(e: Estimate, sign: float = 1.0) -> str:
    lo, hi = sorted((sign * e.ci.low, sign * e.ci.high))
    return f"95% CI {fmt_us(lo)}, {fmt_us(hi)}"


def rtt_sentence(env: str, label: str, cand: str, base: str, e: Estimate) -> str:
    head = f"In {env} ({label}), "
    values = f"p50 RTT {fmt_us(e.candidate_mean)} µs vs {fmt_us(e.baseline_mean)} µs"
    if not e.significant:
        return (
            head + f"{cand} and {base} answer alike ({values}): the difference of "
            f"{fmt_us(e.saving)} µs is not significant ({_ci(e)} includes zero)."
        )
    if e.saving > 0:
        return (
            head + f"{cand} answers {e.relative * 100:.0f}% faster than {base} ({values}, "
            f"saving {fmt_us(e.saving)} µs [{_ci(e)}])."
        )
    return (
        head + f"{cand} answers {-e.relative * 100:.0f}% slower than {base} ({values}, "
        f"{fmt_us(-e.saving)} µs more [{_ci(e, -1.0)}])."
    )


def cpu_sentence(cand: str, base: str, e: Estimate) -> str:
    values = f"{fmt_us(e.candidate_mean)} µs vs {fmt_us(e.baseline_mean)} µs of CPU per request"
    if not e.significant:
        return (
            f"CPU per request: {cand} and {base} cost alike ({values}): the difference of "
            f"{fmt_us(e.saving)} µs is not significant ({_ci(e)} includes zero)."
        )
    if e.saving > 0:
        return (
            f"{cand} needs {e.relative * 100:.0f}% less CPU than {base} ({values}, "
            f"saving {fmt_us(e.saving)} µs [{_ci(e)}])."
        )
    return (
        f"{cand} needs {-e.relative * 100:.0f}% more CPU than {base} ({values}, "
        f"{fmt_us(-e.saving)} µs more [{_ci(e, -1.0)}])."
    )


def claim_size(run: Run, env: str) -> tuple[int | None, str]:
    """The request size the claim uses in ``env``, and why."""
    sizes = sorted({r.size for r in run.rows if r.env == env and r.mode == CLAIM_MODE and r.ok})
    if not sizes:
        return None, "no pingpong rows"
    configured = run.config.get("default_size")
    if isinstance(configured, int) and configured in sizes:
        return configured, f"{configured} B (the run's default size)"
    if PREFERRED_SIZE in sizes:
        return PREFERRED_SIZE, f"{PREFERRED_SIZE} B (the suite's default size)"
    return sizes[0], f"{sizes[0]} B (the smallest size measured)"


def _topology(groups: Mapping[Configuration, object], env: str) -> str | None:
    topos = sorted({k.topology for k in groups if k.env == env and k.mode == CLAIM_MODE})
    if PREFERRED_TOPOLOGY in topos:
        return PREFERRED_TOPOLOGY
    return topos[0] if topos else None


def _claim_levels(groups: Mapping[Configuration, object], env: str) -> list[tuple[str, str]]:
    """The (rx_cpu, idle) levels measured in pingpong in ``env``, the default first."""
    found = {
        (k.rx_cpu, k.idle)
        for k in groups
        if k.env == env and k.mode == CLAIM_MODE and k.client_wait == DEFAULT_CLIENT_WAIT
    }
    return sorted(found, key=lambda lv: (lv != (DEFAULT_RX_CPU, DEFAULT_IDLE), lv))


def _claim_rows(
    groups: Mapping[Configuration, list[PhaseRow]],
    env: str,
    size: int,
    topo: str,
    levels: tuple[str, str] = (DEFAULT_RX_CPU, DEFAULT_IDLE),
) -> dict[str, list[PhaseRow]]:
    """Per impl, the trials of its claim configuration at ``levels`` (rx_cpu, idle), with
    no server option and the client blocking (one request outstanding where measured so,
    else the fewest measured)."""
    found: dict[str, tuple[int, list[PhaseRow]]] = {}
    for key, rows in groups.items():
        if (key.env, key.mode, key.size, key.topology) != (env, CLAIM_MODE, size, topo):
            continue
        if (key.rx_cpu, key.idle) != levels or key.server_options:
            continue
        if key.client_wait != DEFAULT_CLIENT_WAIT:
            continue
        depth = key.outstanding or 1
        if key.impl not in found or depth < found[key.impl][0]:
            found[key.impl] = (depth, rows)
    return {impl: rows for impl, (_, rows) in found.items()}


def evaluate_claim(run: Run) -> Claim:
    groups = run.groups()
    pairs: list[PairResult] = []
    missing: list[str] = []
    notes: list[str] = []
    for env_name in run.env_names:
        env = run.environment(env_name)
        size, why = claim_size(run, env_name)
        topo = _topology(groups, env_name)
        if size is None or topo is None:
            missing.append(f"{env_name}: no pingpong rows")
            continue
        notes.append(f"{env_name}: {why}, topology {topo}")
        calibration = env.calibration
        for levels in _claim_levels(groups, env_name):
            measured = _claim_rows(groups, env_name, size, topo, levels)
            pairs.extend(
                _level_pairs(run, env_name, size, topo, levels, measured, calibration, missing)
            )
    method = (
        f"Pingpong mode (one request outstanding), per environment: {'; '.join(notes)}. "
        "Saving = mean over trials of the baseline minus mean over trials of the candidate, "
        "for the per-trial p50 RTT and the per-trial CPU ns per request (user + system + "
        "softirq + irq, system-wide), at each receive-CPU and idle level measured. 95% "
        "confidence intervals: Student-t over rounds of the paired differences (a round "
        "measures both impls) when two or more rounds measured both, else the percentile "
        f"bootstrap, {BOOTSTRAP_RESAMPLES} resamples of each impl's trials, numpy seed "
        f"{BOOTSTRAP_SEED}; each interval names its method and n. "
        "Prediction: Δ(server + client syscalls per request) × calibrated null-syscall "
        "cost + Δ(system-wide context switches per request) × the cost of a switch; it "
        "holds when the measured saving's interval contains it, and the difference is "
        "reported as its error, never as a part of the saving. "
        "For CPU time a switch costs the calibrated same-CPU context switch; for RTT with "
        "server and client on different CPUs it costs half the calibrated cross-CPU wake-up "
        "(median; a blocking wait is two switches and one wake-up) at the configuration's "
        "idle policy, otherwise the calibrated switch. An impl without a server process "
        "makes no server syscalls."
    )
    verdicts = {}
    twin = user_space_twin(run)
    for env_name in run.env_names:
        in_env = [p for p in pairs if p.env == env_name and p.default_levels]
        text = env_verdict(env_name, run.environment(env_name).label(), in_env, run, twin)
        if text is not None:
            verdicts[env_name] = text
    return Claim(tuple(pairs), tuple(missing), "; ".join(notes), method, verdicts)


def _level_pairs(
    run: Run,
    env_name: str,
    size: int,
    topo: str,
    levels: tuple[str, str],
    measured: Mapping[str, list[PhaseRow]],
    calibration: Mapping[str, object],
    missing: list[str],
) -> list[PairResult]:
    """The claim's pairs at one (rx_cpu, idle) level; what cannot be paired goes to
    ``missing``."""
    env = run.environment(env_name)
    skip_reason = {(s.env, s.impl): f"{s.impl} skipped: {s.reason}" for s in run.skipped}
    default = levels == (DEFAULT_RX_CPU, DEFAULT_IDLE)
    at = "" if default else f" (rx at {levels[0]}, idle {levels[1]})"
    pairs: list[PairResult] = []
    for cand, base in claim_pairs(run):
        if cand not in measured or base not in measured:
            if at:
                continue  # said once, at the default levels
            absent = [
                skip_reason.get((env_name, i), f"{i}: no ok rows")
                for i in (cand, base)
                if i not in measured
            ]
            missing.append(f"{env_name}: {cand} vs {base} not compared — {'; '.join(absent)}")
            continue
        rc, rb = measured[cand], measured[base]
        rtt = _estimate(RTT, rb, rc)
        if rtt is None and not at:
            missing.append(f"{env_name}: {cand} vs {base} — no RTT measured")
        if rtt is None:
            continue
        cpu = _estimate(CPU, rb, rc)
        label = env.label() + at
        key = rb[0].configuration
        rtt_parts = decompose(rtt.saving, rb, rc, calibration, key, RTT)
        cpu_parts = None if cpu is None else decompose(cpu.saving, rb, rc, calibration, key, CPU)
        sentences = [rtt_sentence(env_name, label, cand, base, rtt)]
        sentences.append(_parts_sentence(rtt_parts, "RTT difference", rtt))
        if cpu is not None and cpu_parts is not None:
            sentences.append(cpu_sentence(cand, base, cpu))
            sentences.append(_parts_sentence(cpu_parts, "CPU difference", cpu))
        else:
            sentences.append("CPU per request was not measured for both impls.")
        pairs.append(
            PairResult(
                env_name,
                label,
                cand,
                base,
                size,
                topo,
                rtt,
                cpu,
                rtt_parts,
                cpu_parts,
                tuple(sentences),
                rx_cpu=levels[0],
                idle=levels[1],
            )
        )
    return pairs
