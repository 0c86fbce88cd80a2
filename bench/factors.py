"""The run factors: the conditions a phase is measured under besides its impl, mode and
size — each one entry here, and everything else derived from it.

A factor is a row field (every phase records its level), a command-line option (its levels
chosen per run, each measured), a column of the history and of a comparison, a fragment of a
configuration's label and of a phase's key, and a hook: either a condition the runner sets
around the phase (``CONDITION``, runner/conditions.py has one per factor) or an option of
the driver (``DRIVER``, the DriverConfig field it sets).  The first level is the default:
what a row written before the factor existed was measured under.

Adding a factor is one entry in ``FACTORS`` plus its hook (README: "Adding a factor").
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Hook = Literal["condition", "driver"]
CONDITION: Hook = "condition"
DRIVER: Hook = "driver"

# A choice of levels per factor, by factor name: what a run (or one block of its design)
# measures.  Every factor is named; a factor's levels are distinct, the default need not
# be among them.
Levels = Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class Factor:
    name: str  # the row field, the history column, the key in a run's level choice
    levels: tuple[str, ...]  # every level, the default first
    flag: str  # the command-line option (repeatable: each level given is measured)
    help: str  # what the levels mean (the option's help and the README's table)
    label: str  # a configuration label's fragment at a non-default level ("{}": the level)
    key: str  # a phase key's fragment at a non-default level (file names: no "=", "@")
    hook: Hook
    driver_option: str | None = None  # DriverConfig's field, for a DRIVER hook
    modes: tuple[str, ...] | None = None  # the modes it applies to (None: every mode)

    @property
    def default(self) -> str:
        return self.levels[0]

    def applies_to(self, mode: str) -> bool:
        return self.modes is None or mode in self.modes

    def label_of(self, level: str) -> str:
        """`` rx@server`` at a non-default level, "" at the default."""
        return "" if level == self.default else " " + self.label.format(level)

    def key_of(self, level: str) -> str:
        """``-rxserver`` at a non-default level, "" at the default."""
        return "" if level == self.default else "-" + self.key.format(level)


FACTORS: tuple[Factor, ...] = (
    Factor(
        name="rx_cpu",
        levels=("client", "server"),
        flag="--rx-cpu",
        help="where receive processing (and so any kernel-side reply) runs: client (no "
        "RPS: where the sender's transmit puts it, the client's CPU on lo and veth) or "
        "server (RPS steers it to --server-cpu)",
        label="rx@{}",
        key="rx{}",
        hook=CONDITION,
    ),
    Factor(
        name="idle",
        levels=("default", "poll"),
        flag="--idle",
        help="how idle CPUs wait: default (the machine's idle states) or poll (PM QoS CPU "
        "latency held at 0 during phases: the shallowest state only)",
        label="idle={}",
        key="idle{}",
        hook=CONDITION,
    ),
    Factor(
        name="client_wait",
        levels=("block", "spin"),
        flag="--client-wait",
        help="how the driver waits for replies: block (sleeps in recv/ppoll) or spin "
        "(busy-polls, never sleeps)",
        label="{}",
        key="{}",
        hook=DRIVER,
        driver_option="wait",
    ),
    Factor(
        name="arrivals",
        levels=("uniform", "poisson"),
        flag="--arrivals",
        help="rate mode's schedule: uniform (evenly spaced) or poisson (exponential gaps of "
        "the same mean); both corrected and uncorrected latency are kept",
        label="{}",
        key="{}",
        hook=DRIVER,
        driver_option="arrivals",
        modes=("rate",),
    ),
)

BY_NAME: Mapping[str, Factor] = {f.name: f for f in FACTORS}
NAMES = tuple(BY_NAME)
DEFAULTS: Mapping[str, str] = {f.name: f.default for f in FACTORS}


def factor(name: str) -> Factor:
    return BY_NAME[name]


def default_levels() -> dict[str, tuple[str, ...]]:
    """Every factor at its default level only."""
    return {f.name: (f.default,) for f in FACTORS}


def levels_problem(levels: Levels) -> str | None:
    """What is wrong with a choice of levels (naming the option), or None."""
    unknown = sorted(set(levels) - set(NAMES))
    if unknown:
        return f"unknown factor {unknown[0]!r}: the factors are {', '.join(NAMES)}"
    for f in FACTORS:
        chosen = levels.get(f.name, ())
        if not chosen:
            return f"{f.flag}: give at least one level"
        for level in chosen:
            if level not in f.levels:
                return f"{f.flag} {level}: must be one of {', '.join(f.levels)}"
        if len(set(chosen)) != len(chosen):
            return f"{f.flag}: levels must not repeat"
    return None


def combinations(levels: Levels, mode: str) -> list[dict[str, str]]:
    """Every combination of the chosen levels that a phase in ``mode`` is measured at, in
    factor order; a factor that does not apply to the mode stays at its default."""
    per_factor = [levels[f.name] if f.applies_to(mode) else (f.default,) for f in FACTORS]
    return [dict(zip(NAMES, combo, strict=True)) for combo in itertools.product(*per_factor)]


def label(settings: Mapping[str, str], only: Iterable[str] = NAMES) -> str:
    """The label fragments of the non-default levels in ``settings``, in factor order."""
    wanted = set(only)
    return "".join(f.label_of(settings[f.name]) for f in FACTORS if f.name in wanted)


def key(settings: Mapping[str, str]) -> str:
    """The phase-key fragments of the non-default levels in ``settings``, in factor order."""
    return "".join(f.key_of(settings[f.name]) for f in FACTORS)


def driver_options(settings: Mapping[str, str], mode: str) -> dict[str, str]:
    """The DriverConfig fields the DRIVER factors set for a phase of ``mode`` at
    ``settings``' levels (a factor that does not apply to the mode: its default)."""
    return {
        f.driver_option: settings[f.name] if f.applies_to(mode) else f.default
        for f in FACTORS
        if f.hook == DRIVER and f.driver_option is not None
    }


def for_mode(settings: Mapping[str, str], mode: str) -> dict[str, str]:
    """``settings`` as a phase of ``mode`` runs them: a factor that does not apply to the
    mode at its default."""
    return {f.name: settings[f.name] if f.applies_to(mode) else f.default for f in FACTORS}


def markdown_table() -> str:
    """The factors as the README's table shows them (a test keeps the two equal)."""
    lines = [
        "| factor | option | levels (default first) | applies to | set by |",
        "| --- | --- | --- | --- | --- |",
    ]
    for f in FACTORS:
        modes = "every mode" if f.modes is None else ", ".join(f.modes)
        hook = "the runner (a condition)" if f.hook == CONDITION else f"driver `{f.driver_option}`"
        levels = " \\| ".join(f.levels)
        lines.append(f"| `{f.name}` | `{f.flag}` | {levels} | {modes} | {hook} |")
    return "\n".join(lines) + "\n"
