"""The answer to the question the suite exists for, in a few generated sentences.

Does putting the server in the kernel avoid the user/kernel transition overhead, and how
much of a difference is transitions, wake-ups, placement and idle policy?  Per
environment: what removing the server's transitions did to p50 RTT (the ``transitions``
effect, measured between control impls one property apart), and which measured effect was
largest, and what one extra syscall on the request path cost (the dose-response slope)
beside the calibrated null syscall.  Only pingpong effects answer (in rate and flood modes
the RTT is mostly queueing).  Every figure is a measured difference with its interval; the
sentences only choose which to say.
"""

from __future__ import annotations

from collections.abc import Sequence

from bench.analysis.dose import DoseResponse, dose_responses
from bench.analysis.effects import Effect, effects
from bench.results.run import Run

ANSWER_MODE = "pingpong"  # the claim's mode: one request in flight, RTT without queueing

NOT_MEASURED = (
    "no effect measured: the claim's ladder was not run (the standard and claim designs "
    "run it; --impl alone runs the matrix)"
)


def _us(ns: float) -> str:
    return f"{ns / 1000:+.1f} µs"


def _interval(e: Effect) -> str:
    i = e.estimate.interval
    return f"[{_us(i.low)}, {_us(i.high)}]"


def _default_context(candidates: Sequence[Effect]) -> Effect | None:
    """The effect measured at the default levels of the other factors, else the first."""
    plain = [e for e in candidates if not e.context]
    chosen = plain or list(candidates)
    return chosen[0] if chosen else None


def _dose_part(dose: DoseResponse | None) -> str | None:
    slope = dose.slope("rtt_p50") if dose is not None else None
    if dose is None or slope is None:
        return None
    i = slope.interval
    said = (
        f"each extra syscall on the request path added {slope.slope:.0f} ns of p50 RTT "
        f"[{i.low:.0f}, {i.high:.0f}] (dose-response slope)"
    )
    if dose.predicted is not None:
        said += f" against a calibrated null syscall of {dose.predicted:.0f} ns"
    return said


def env_answer(
    run: Run, env: str, found: Sequence[Effect], doses: Sequence[DoseResponse] = ()
) -> str | None:
    """One sentence for ``env``: the transitions effect, the largest effect and the
    transition dose-response."""
    rtt = [
        e for e in found if e.key.env == env and e.metric == "rtt_p50" and e.key.mode == ANSWER_MODE
    ]
    dose = next((d for d in doses if d.key.env == env and d.key.mode == ANSWER_MODE), None)
    if not rtt:
        return None
    label = run.environment(env).label()
    biggest = max(rtt, key=lambda e: abs(e.estimate.mean))
    transitions = _default_context([e for e in rtt if e.factor == "transitions"])
    parts = []
    if transitions is not None:
        parts.append(
            f"taking the transitions off the server's path ({transitions.change}) moved p50 "
            f"RTT by {_us(transitions.estimate.mean)} {_interval(transitions)}"
        )
    if biggest is not transitions:
        at = f", {biggest.context}" if biggest.context else ""
        who = "" if biggest.key.impl in biggest.change else f" of {biggest.key.impl}"
        parts.append(
            f"the largest effect is {biggest.factor}{who} ({biggest.change}{at}): "
            f"{_us(biggest.estimate.mean)} {_interval(biggest)}"
        )
    dose_said = _dose_part(dose)
    if dose_said:
        parts.append(dose_said)
    return f"in {env} ({label}), " + "; ".join(parts)


def answers(run: Run, found: Sequence[Effect] | None = None) -> dict[str, str]:
    """Per environment with effects, its sentence (``found``: the run's effects, when the
    caller has them)."""
    found = effects(run) if found is None else found
    doses = dose_responses(run)
    out = {}
    for env in run.env_names:
        said = env_answer(run, env, found, doses)
        if said:
            out[env] = said
    return out


def one_sentence(run: Run) -> str:
    """Every environment's answer in one sentence (95 % paired-t intervals over rounds)."""
    said = answers(run)
    if not said:
        return NOT_MEASURED
    text = "; ".join(said.values())
    return text[0].upper() + text[1:] + " (95 % intervals over rounds)."
