"""The answer to the question the suite exists for, generated from the primary family only.

Per environment and idle level, at the primary placement (receive work on the server's
CPU): how much faster or slower each kernel-side server answers than its user-space twin,
how much of a difference the server's transitions make (an impl without them, or the
twin's dose-response per extra syscall times its request-path syscalls), and how much the
server's wake-up; then whether the transitions the kernel-side servers avoid are
measurable, and how large next to their whole difference.  Every number is a member of the
family with its simultaneous interval; the sentences only say them, they choose nothing.
When any phase behind the family failed a validity gate, the answer's first sentence says
how many were left out (an excluding gate) or kept (an advisory one; bench/question.py).
Where the run traced its anatomy, each level's verdict is followed by where the time went
(bench/analysis/anatomy.py): a description of one traced pass per impl, no estimate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bench.analysis import anatomy
from bench.analysis.primary import Family, Finding, families
from bench.analysis.stats import Interval
from bench.question import DOSE, KERNEL_VS_TWIN, PRIMARY_RX_CPU, TRANSITIONS, WAKE_UP
from bench.results.metrics import fmt_us
from bench.results.run import Run

NOT_MEASURED = (
    "no primary contrast measured: the question is asked at rx on the server's CPU, and "
    "this run measured no pair of its impls there (the standard, claim and ladder designs "
    "do; --impl alone runs what it names)"
)


def _us(ns: float) -> str:
    return f"{fmt_us(ns)} µs"


def _span(interval: Interval, sign: float = 1.0) -> str:
    lo, hi = sorted((sign * interval.low, sign * interval.high))
    return f"[{fmt_us(lo)}, {fmt_us(hi)}]"


def _difference(f: Finding, subject: str, against: str) -> str:
    """ "X answers 22.4 µs [18.0, 26.8] faster than Y (p50 33.0 vs 55.4 µs)"."""
    if f.mean is None or f.interval is None:
        return f"{subject} vs {against}: {f.note}"
    values = ""
    if f.other is not None and f.baseline is not None:
        values = f" (p50 {fmt_us(f.other)} vs {fmt_us(f.baseline)} µs)"
    if not f.significant:
        return (
            f"{subject} and {against} do not differ measurably{values}: "
            f"{fmt_us(f.mean)} µs {_span(f.interval)}"
        )
    if f.mean < 0:
        return (
            f"{subject} answers {_us(-f.mean)} {_span(f.interval, -1.0)} faster than "
            f"{against}{values}"
        )
    return f"{subject} answers {_us(f.mean)} {_span(f.interval)} slower than {against}{values}"


def _transitions(f: Finding) -> tuple[str, tuple[float, Interval] | None]:
    """What removing the transitions did, and (value, interval) per request in ns."""
    if DOSE in f.contrast.kinds:
        twin = f.contrast.a.impl
        if f.mean is None or f.interval is None:
            return f"the transitions' dose-response: {f.note}", None
        per = f"{f.mean:.0f} ns [{f.interval.low:.0f}, {f.interval.high:.0f}]"
        scaled = f.scaled
        if scaled is None:
            return (
                f"each extra syscall on {twin}'s request path costs {per} (dose-response; "
                f"{twin}'s request-path syscalls were not counted apart in this run)",
                None,
            )
        value, interval = scaled
        count = f.per_request_count or 0.0
        return (
            f"{twin}'s transitions account for {_us(value)} {_span(interval)} per request "
            f"({count:.2f} request-path syscalls × {per} each, dose-response)",
            scaled,
        )
    if f.mean is None or f.interval is None:
        return f"removing the transitions ({f.contrast.change}): {f.note}", None
    return (
        f"removing the transitions ({f.contrast.change}) moves p50 RTT by "
        f"{fmt_us(f.mean)} µs {_span(f.interval)}",
        (-f.mean, Interval(-f.interval.high, -f.interval.low)),
    )


def _wake_up(f: Finding) -> str:
    if f.mean is None or f.interval is None:
        return f"the server's wake-up ({f.contrast.change}): {f.note}"
    return (
        f"a server that polls instead of sleeping ({f.contrast.change}) moves p50 RTT by "
        f"{fmt_us(f.mean)} µs {_span(f.interval)}"
    )


def _verdict(kernel: Sequence[Finding], saved: tuple[float, Interval] | None) -> str:
    """Whether the transitions the kernel-side servers avoid are measurable, and how large
    next to their whole difference."""
    measured = [f for f in kernel if f.mean is not None]
    if not measured:
        return ""
    if saved is None:
        return "the transitions' share of that cannot be told here (not measured)"
    value, interval = saved
    whole = ", ".join(f"{f.contrast.b.impl} {fmt_us(-(f.mean or 0.0))} µs" for f in measured)
    if interval.excludes_zero:
        return (
            f"so the transitions they avoid are measurable: {fmt_us(value)} µs "
            f"{_span(interval)}, next to whole differences of {whole}"
        )
    return (
        f"so the transitions they avoid are not measurable here ({fmt_us(value)} µs "
        f"{_span(interval)} includes zero), next to whole differences of {whole}"
    )


def _at_idle(fam: Family, idle: str) -> str:
    here = fam.at(idle)
    kernel = [f for f in here if KERNEL_VS_TWIN in f.contrast.kinds]
    parts = [_difference(f, f.contrast.b.impl, f.contrast.a.impl) for f in kernel]
    saved = None
    for f in here:
        if TRANSITIONS in f.contrast.kinds or DOSE in f.contrast.kinds:
            said, found = _transitions(f)
            saved = saved or found
            if KERNEL_VS_TWIN not in f.contrast.kinds or DOSE in f.contrast.kinds:
                parts.append(said)
    parts += [_wake_up(f) for f in here if WAKE_UP in f.contrast.kinds]
    verdict = _verdict(kernel, saved)
    text = f"with idle {idle}: " + "; ".join(parts)
    return text + (f"; {verdict}" if verdict else "")


def _with_anatomy(run: Run, fam: Family, idle: str, found: Sequence[anatomy.Group]) -> str:
    """One idle level's verdict, then where the time went there (the anatomy, when traced)."""
    said = _at_idle(fam, idle)
    cited = anatomy.citation(run, fam.env, idle, found)
    return f"{said}. {cited[0].upper()}{cited[1:]}" if cited else said


def env_answer(run: Run, fam: Family) -> str | None:
    """The primary verdict of one environment, or None when its family is empty."""
    if not fam.findings:
        return None
    label = run.environment(fam.env).label()
    found = anatomy.groups(run)
    levels = [_with_anatomy(run, fam, idle, found) for idle in fam.idles]
    rest = "".join(f" {t[0].upper()}{t[1:]}." for t in levels[1:])
    gated = fam.gates.sentence(fam.env)
    return (
        (f"{gated} " if gated else "")
        + f"In {fam.env} ({label}), at rx on the server's CPU (rx_cpu={PRIMARY_RX_CPU}), "
        f"{levels[0]}.{rest} ({fam.adjustment}.)"
    )


def answers(run: Run, found: Mapping[str, Family] | None = None) -> dict[str, str]:
    """Per environment with a primary family, its answer."""
    found = families(run) if found is None else found
    out = {}
    for env in run.env_names:
        fam = found.get(env)
        said = env_answer(run, fam) if fam is not None else None
        if said:
            out[env] = said
    return out


def one_sentence(run: Run) -> str:
    """Every environment's answer, one after the other."""
    said = answers(run)
    return " ".join(said.values()) if said else NOT_MEASURED[0].upper() + NOT_MEASURED[1:] + "."
