"""The experiment's design: which phases a run measures, and for how many rounds.

A design is a list of blocks.  A block is a product — impls × server levels × sizes ×
modes × receive CPU × idle policy × client wait — measured for ``rounds`` rounds with
phases of ``duration_s``.  A phase that two blocks name is measured once per round, for
the larger of their round counts, with the longer of their durations.

- ``matrix``: one block, the product of the run's own options (``--impl``, ``--mode``,
  ``--rx-cpu``, ...), ``--trials`` rounds.
- ``claim``: the experiment the claim is judged by (under ``--quick``: at the question's
  placement, rx on the server's CPU, and the default idle policy only).  The ladder — the
  impls whose manifests give them the ``claim`` role: the user-space twin, its controls one
  server-path property away (one never sleeps, one makes no syscalls, one neither) and the
  kernel-side servers — in pingpong at the claim size, at both levels of the receive CPU
  and of the idle policy, for ``--trials`` rounds (10 unless given); and the transition
  dose-response of the ``transition-dose`` impl (``extra_syscalls`` = 0, 100, 200) at the
  question's placement (bench/question.py) and each idle level, for as many rounds.
  ``--impl`` replaces the ladder.
- ``ladder``: the claim's ladder at both levels of the receive CPU and the default idle
  policy only, no dose-response; the ladder is the impls with the ``claim-vm`` role (the
  user-space twin, its controls and the kernel modules: the comparisons only a modular
  kernel can make).  What the vm environment measures unless the run's budget is
  ``full``: the primary contrasts are evaluated with receive processing on the server's
  CPU (bench/question.py: where a NIC would put it), so that level is measured wherever
  the ladder is; under TCG a phase costs seconds, so the idle policy's second level and
  the dose-response are the host's to measure.
- ``standard`` (what ``bench run`` measures when no impl is named): ``claim``, then the
  survey — the run's own product (every impl in every mode unless the options narrow it)
  for ``matrix_trials`` rounds, its rate and flood phases for one round fewer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bench import factors
from bench.driver.modes import Mode
from bench.factors import Levels, factor
from bench.impl.registry import manifests
from bench.question import (
    DOSE_ROLE,
    PRIMARY_RX_CPU,
    PRIMARY_SIZE,
    TRANSITION_DOSE,
)
from bench.runner.config import RunConfig

CLAIM_ROLE = "claim"  # manifests' role: in the ladder
LADDER_VM_ROLE = "claim-vm"  # manifests' role: in the ladder the vm environment measures
# the claim's phases are the question's (bench/question.py): its mode and request size
CLAIM_MODE: Mode = "pingpong"  # PRIMARY_MODE as a driver mode (tests/test_design.py)
CLAIM_SIZE = PRIMARY_SIZE
DOSE_LEVELS = (TRANSITION_DOSE, ("0", "100", "200"))  # DOSE_ROLE's server option
CLAIM_ROUNDS = 10


@dataclass(frozen=True)
class Block:
    """One part of the schedule: the phases of a product, for ``rounds`` rounds."""

    name: str
    impls: tuple[str, ...]  # empty: every selected impl
    modes: tuple[Mode, ...]
    sizes: tuple[int, ...]
    levels: Levels  # the run factors' levels, by factor name (bench/factors.py)
    server_levels: tuple[tuple[str, tuple[str, ...]], ...]
    rounds: int
    duration_s: float

    def levels_of(self, name: str) -> tuple[str, ...]:
        return self.levels[name]

    def settings(self, mode: str) -> list[dict[str, str]]:
        """Every combination of factor levels a phase of ``mode`` is measured at."""
        return factors.combinations(self.levels, mode)

    def covers(self, impl: str) -> bool:
        return not self.impls or impl in self.impls

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "impls": list(self.impls) or "all",
            "modes": list(self.modes),
            "sizes": list(self.sizes),
            "levels": {name: list(chosen) for name, chosen in self.levels.items()},
            "server_levels": {key: list(values) for key, values in self.server_levels},
            "rounds": self.rounds,
            "duration_s": self.duration_s,
        }


def matrix_block(cfg: RunConfig, name: str, rounds: int) -> Block:
    """The product of the run's own options."""
    return Block(
        name, cfg.impls, cfg.modes, cfg.sizes, cfg.levels, cfg.server_levels, rounds,
        cfg.duration_s,
    )  # fmt: skip


def claim_blocks(cfg: RunConfig) -> list[Block]:
    """The ladder at every receive-CPU and idle level, and the dose-response."""
    found = manifests()  # roles only: no availability probed
    ladder = cfg.impls or tuple(n for n, m in found.items() if CLAIM_ROLE in m.roles)
    dose = [n for n in ladder if n in found and DOSE_ROLE in found[n].roles]
    # A quick look measures the ladder where the question is asked only: receive work on
    # the server's CPU, the default idle policy; otherwise at every receive-CPU and idle
    # level.  The driver blocks for replies (the claim's client), arrivals are unused.
    every = factors.default_levels()
    if cfg.budget != "quick":
        every |= {"rx_cpu": factor("rx_cpu").levels, "idle": factor("idle").levels}
    else:
        every |= {"rx_cpu": (PRIMARY_RX_CPU,)}
    blocks = [
        Block(
            "claim", ladder, (CLAIM_MODE,), (CLAIM_SIZE,), every, (), cfg.trials,
            cfg.claim_duration_s,
        )
    ]  # fmt: skip
    if dose:
        # the transitions' price in place, at the question's placement and every idle level
        at_question = every | {"rx_cpu": (PRIMARY_RX_CPU,)}
        blocks.append(
            Block(
                "dose", (dose[0],), (CLAIM_MODE,), (CLAIM_SIZE,), at_question, (DOSE_LEVELS,),
                cfg.trials, cfg.claim_duration_s,
            )
        )  # fmt: skip
    return blocks


def ladder_block(cfg: RunConfig) -> Block:
    """The ``claim-vm`` ladder (or ``--impl``) at every receive-CPU level, the question's
    placement (bench/question.py) among them, the default idle policy and client wait."""
    found = manifests()  # roles only: no availability probed
    ladder = cfg.impls or tuple(n for n, m in found.items() if LADDER_VM_ROLE in m.roles)
    every = factors.default_levels() | {"rx_cpu": factor("rx_cpu").levels}
    return Block(
        "claim", ladder, (CLAIM_MODE,), (CLAIM_SIZE,), every, (), cfg.trials,
        cfg.claim_duration_s,
    )  # fmt: skip


def blocks(cfg: RunConfig) -> list[Block]:
    if cfg.design == "matrix":
        return [matrix_block(cfg, "matrix", cfg.trials)]
    if cfg.design == "ladder":
        return [ladder_block(cfg)]
    claim = claim_blocks(cfg)
    if cfg.design == "claim":
        return claim
    return [*claim, *survey_blocks(cfg)]


def survey_blocks(cfg: RunConfig) -> list[Block]:
    """The run's own product for ``matrix_trials`` rounds — its load sweep and flood (rate
    and flood modes) for one round fewer (at least one): where precision matters less."""
    survey = matrix_block(cfg, "survey", cfg.matrix_trials)
    pingpong = tuple(m for m in cfg.modes if m == CLAIM_MODE)
    loads = tuple(m for m in cfg.modes if m != CLAIM_MODE)
    if not pingpong or not loads:
        return [survey]
    return [
        replace(survey, modes=pingpong),
        replace(survey, name="survey-load", modes=loads, rounds=max(1, cfg.matrix_trials - 1)),
    ]


def design_impls(cfg: RunConfig) -> tuple[str, ...]:
    """The impls the design names, in order (empty: every registered impl)."""
    named: list[str] = []
    for block in blocks(cfg):
        if not block.impls:
            return ()
        named.extend(block.impls)
    return tuple(dict.fromkeys(named))
