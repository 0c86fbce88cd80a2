"""How much a run spends: one record per budget (quick, default, full), read by the run's
options for their defaults and by their help text, so a default is written once.

quick is a look (host only, short phases, the question's placement only); default gives
the claim its rounds, a short survey and the vm ladder; full measures every level
everywhere with the whole survey and longer phases.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.driver.modes import MODES, Mode

FULL_RATE_FRACTIONS = (0.25, 0.5, 0.75)


@dataclass(frozen=True)
class Budget:
    name: str
    duration_s: float  # seconds per phase of the survey (or of a matrix)
    warmup_s: float  # seconds before each phase
    claim_duration_s: float  # seconds per phase of the claim's blocks
    claim_trials: int  # rounds of the claim's blocks (design standard or claim)
    matrix_trials: int  # rounds of everything under design matrix
    survey_trials: int  # rounds of the standard design's survey
    rate_fractions: tuple[float, ...]  # rate mode's loads, fractions of the measured maximum
    sample_cap: int  # latency samples kept per phase for the report's distributions
    modes: tuple[Mode, ...]  # modes measured unless --mode says
    anatomy_requests: int  # sampled requests per anatomy pass of the claim's ladder
    fidelity_rtt_repetitions: int  # rotations of the driver-vs-sockperf RTT timings


BUDGETS: dict[str, Budget] = {
    b.name: b
    for b in (
        Budget("quick", duration_s=0.2, warmup_s=0.05, claim_duration_s=0.2, claim_trials=3,
               matrix_trials=3, survey_trials=1, rate_fractions=(0.5,), sample_cap=2000,
               modes=("pingpong",), anatomy_requests=200, fidelity_rtt_repetitions=2),
        Budget("default", duration_s=0.5, warmup_s=0.1, claim_duration_s=0.2, claim_trials=10,
               matrix_trials=5, survey_trials=2, rate_fractions=(0.5,), sample_cap=10000,
               modes=MODES, anatomy_requests=400, fidelity_rtt_repetitions=4),
        Budget("full", duration_s=1.0, warmup_s=0.2, claim_duration_s=0.5, claim_trials=10,
               matrix_trials=5, survey_trials=3, rate_fractions=FULL_RATE_FRACTIONS,
               sample_cap=10000, modes=MODES, anatomy_requests=2000,
               fidelity_rtt_repetitions=8),
    )
}  # fmt: skip
DEFAULT_BUDGET = "default"


def _text(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(_text(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def defaults_text(field: str) -> str:
    """``field``'s value in every budget, for an option's help: "default 0.3, quick 0.2,
    full 0.5" (the default budget's first)."""
    order = [DEFAULT_BUDGET, *(name for name in BUDGETS if name != DEFAULT_BUDGET)]
    values = [(name, _text(getattr(BUDGETS[name], field))) for name in order]
    if len({value for _, value in values}) == 1:
        return f"default {values[0][1]}"
    return ", ".join(f"{name} {value}" for name, value in values)
