"""The question the suite answers, fixed in code before any run takes data.

    Does a UDP server in the kernel avoid the user/kernel transition overhead, and how
    large are the transitions next to the whole difference?

It is asked where a real NIC would put the receive work: on the server's CPU
(``rx_cpu=server``, the queue's interrupt on the server core), in pingpong mode (one
request in flight), of the round trip's median (``rtt_p50``), at every idle level the
design measures there.  The *primary family* of each environment is every contrast below
whose two impls the environment's design attempted (a row, ok or failed, at the primary
placement) and could run (not skipped):

- ``kernel vs twin``: each kernel-side impl whose manifest compares it with the impl of the
  ``user-space-twin`` role, minus that twin;
- ``transitions``: the ``path-control`` impl without transitions minus the one with them,
  both sleeping (kmod-kthread − blocking-c);
- ``wake-up``: the ``path-control`` impl that polls minus the one that sleeps, with
  transitions and without (spin-c − blocking-c, kmod-kthread-poll − kmod-kthread);
- ``transition dose``: where no impl without transitions runs (a kernel without modules),
  the twin's dose-response slope per extra request-path syscall.

Their intervals hold together (Bonferroni over the family, named beside them); a contrast
with fewer than ``MIN_ROUNDS`` paired rounds stays in the family and says "too few
rounds".  The answer's sentences are generated from this family alone.  Every other
difference the run measured is exploratory: shown with Benjamini-Hochberg q-values, never
chosen as a headline.

Predictions are judged by an equivalence test against ``margin_ns``: *held* within the
margin, *failed* when different, *inconclusive* when the interval is too wide to tell.
"""

from __future__ import annotations

from collections.abc import Iterable

PRIMARY_RX_CPU = "server"  # where receive processing runs, as a NIC would put it
PRIMARY_MODE = "pingpong"
PRIMARY_SIZE = 64  # bytes: the claim's requests (a run's configured default size first)
PRIMARY_TOPOLOGY = "lo"  # where the family is read when the run measured it
PRIMARY_METRIC = "rtt_p50"
FAMILY_CONFIDENCE = 0.95  # the family's intervals hold together with this probability
ADJUSTMENT = "Bonferroni"
EXPLORATORY_ADJUSTMENT = "Benjamini-Hochberg q-values"

TWIN_ROLE = "user-space-twin"
PATH_CONTROL_ROLE = "path-control"
DOSE_ROLE = "transition-dose"
TRANSITION_DOSE = "extra_syscalls"  # the server option that adds syscalls in place

KERNEL_VS_TWIN = "kernel vs twin"
TRANSITIONS = "transitions"
WAKE_UP = "wake-up"
DOSE = "transition dose"
KINDS = (KERNEL_VS_TWIN, TRANSITIONS, WAKE_UP, DOSE)

# The equivalence margin of a prediction: max(1 µs, 10 % of the baseline's value); for a
# per-unit slope, 10 % of the predicted price.
MARGIN_FLOOR_NS = 1000.0
MARGIN_FRACTION = 0.10
PREDICTION_ALPHA = 0.05  # each prediction is tested on its own (secondary, not the family)

# The validity gates (bench/analysis/gates.py) as the primary family reads them.  A phase
# that failed an excluding gate is left out of the family's rounds: its number is not what
# it claims to be (it never settled after its warm-up, the offered load was not held, the
# driver was the bottleneck).  One that failed only an advisory gate is kept: the family
# pairs whole rounds, so drift or serial dependence inside a phase shows in the spread of
# its round-to-round differences, which the interval already carries; the answer says how
# many of its phases failed which gate.  A gate not named here is advisory.
EXCLUDING_GATES = ("warmup", "load_held", "driver_not_bottleneck")
ADVISORY_GATES = ("stationarity", "independence", "interarrivals")


def excluding_failure(failed: Iterable[str]) -> str | None:
    """The first excluding gate among the ``failed`` gate names, or None."""
    names = set(failed)
    return next((g for g in EXCLUDING_GATES if g in names), None)


def margin_ns(baseline: float | None, *, per_unit: float | None = None) -> float:
    """The equivalence margin for a prediction against a baseline value (ns), or for a
    per-unit slope whose predicted price is ``per_unit``."""
    if per_unit is not None:
        return MARGIN_FRACTION * abs(per_unit)
    return max(MARGIN_FLOOR_NS, MARGIN_FRACTION * abs(baseline or 0.0))


def statement() -> str:
    """The question and its rules in one paragraph, for the report."""
    return (
        "Asked before any data: at the realistic placement — receive processing on the "
        f"server's CPU (rx_cpu={PRIMARY_RX_CPU}) — in {PRIMARY_MODE} mode, does the p50 "
        "round trip of each kernel-side server differ from its user-space twin's, and how "
        "much of a difference do the server's transitions (an impl without them, or the "
        "twin's dose-response per extra syscall) and its wake-ups (an impl that polls) "
        "make? One family per environment, at each idle level measured; simultaneous "
        f"{FAMILY_CONFIDENCE:.0%} intervals ({ADJUSTMENT} over the family). Everything "
        f"else is exploratory ({EXPLORATORY_ADJUSTMENT}). A phase that failed the "
        f"{', '.join(EXCLUDING_GATES)} gate is left out of the family; one that failed only "
        f"{', '.join(ADVISORY_GATES)} is kept, counted in the answer."
    )
