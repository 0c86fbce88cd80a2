"""The validity gates of a measured phase (bench/analysis/gates.py), as its row records
them: from the timed run's ordered sample stream (warm-up, stationarity, independence), its
schedule (rate mode: load held, inter-arrivals) and the client CPU's busy share in the
counting run (flood and rate: is the driver the bottleneck?)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from bench.analysis import gates
from bench.driver.client import DriverResult
from bench.results.rows import Configuration, GateCheck, PhaseRow

# fewer ordered samples than this: the latency gates cannot judge the phase
MIN_ORDERED = 100
# whose busy share the driver gate reads: the client's pinned CPU over the timed run's
# measured window (/proc/stat ticks read by the driver at its edges), so receive
# processing that runs there counts too
PINNED_CPU = "the client's pinned CPU (softirq included, /proc/stat ticks)"


def _check(gate: gates.Gate) -> GateCheck:
    def finite(x: float) -> float | None:
        return x if math.isfinite(x) else None

    return GateCheck(gate.name, finite(gate.value), finite(gate.threshold), gate.passed,
                     gate.detail)  # fmt: skip


Check = Callable[[], Iterable[gates.Gate]]


def _read(share: float | None) -> float:
    """The driver CPU's busy share over the measured window, as the driver read its ticks
    (a probe window is longer than the driver's run, so it would read low: not used)."""
    if share is None:
        raise ValueError("the driver did not read its CPU's ticks over the measured window")
    return share


def _checks(
    c: Configuration,
    offered_rps: float | None,
    result: DriverResult,
    client_busy_share: float | None,
    machine: Machine,
) -> Iterator[tuple[str, Check]]:
    """(what, how) for every gate that applies to the phase."""
    if len(result.ordered_latency_ns) >= MIN_ORDERED:
        yield "latency gates", lambda: gates.latency_gates(result.ordered_latency_ns)
    schedule = result.schedule
    if c.mode == "rate" and offered_rps and schedule is not None:
        rate = offered_rps
        yield "load held", lambda: [
            gates.load_held(rate, schedule.sent, result.duration_s,
                            dropped_due=schedule.dropped_due, due=schedule.due)
        ]  # fmt: skip
        yield (
            "inter-arrivals",
            lambda: [
                gates.interarrivals(
                    result.ordered_send_ns, rate, c.arrivals, stride=result.ordered_stride
                )
            ],
        )
    # a spinning client is busy by design: the driver gate cannot judge it
    share = client_busy_share
    if c.mode in ("rate", "flood") and c.client_wait != "spin":
        yield "driver", lambda: [gates.driver_not_bottleneck(_read(share), what=PINNED_CPU)]
    if machine.steal_pct is not None:
        stolen = machine.steal_pct
        yield "steal", lambda: [gates.steal(stolen)]
    pinned = [
        (who, moves)
        for who, moves, cpu in (
            ("the server's threads", machine.server_migrations, c.server_cpu),
            ("the driver's threads", machine.client_migrations, c.client_cpu),
        )
        if moves is not None and cpu is not None
    ]
    if pinned:
        moved = sum(m for _, m in pinned)
        whose = ", ".join(f"{who} {m}" for who, m in pinned)
        yield "migrations", lambda: [gates.migrations(moved, whose)]


@dataclass(frozen=True)
class Machine:
    """What the counting run saw of the machine under the phase."""

    steal_pct: float | None = None
    server_migrations: int | None = None
    client_migrations: int | None = None


def phase_gates(
    configuration: Configuration,
    offered_rps: float | None,
    result: DriverResult,
    client_busy_share: float | None,
    machine: Machine | None = None,
) -> tuple[tuple[GateCheck, ...], tuple[str, ...]]:
    """Every gate that applies to the phase (of ``configuration``, at the offered rate the
    run computed), as recorded in its row, and a note for each that could not be computed
    (a gate never fails a phase by raising)."""
    checked: list[GateCheck] = []
    notes: list[str] = []
    seen = machine or Machine()
    for what, check in _checks(configuration, offered_rps, result, client_busy_share, seen):
        try:
            checked.extend(_check(g) for g in check())
        except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
            notes.append(f"validity gates: {what} not computed ({exc})")
    return tuple(checked), tuple(notes)


# A phase whose first attempt failed one of these gates is measured once more and the
# second attempt kept (its row says why: ``retried``), as Lancet retries.  At most
# RETRY_SHARE of each round's phases are re-run, first come first served in the round's
# random order, so that a machine that drifts everywhere costs a twentieth more, not double.
RETRY_GATES = ("warmup", "stationarity")
RETRY_SHARE = 0.05


def retry_reason(row: PhaseRow) -> str | None:
    """Why ``row``'s phase should be measured again, or None."""
    if not row.ok or row.retried is not None:
        return None
    failed = [g for g in row.gates if not g.passed and g.name in RETRY_GATES]
    if not failed:
        return None
    said = "; ".join(
        f"{g.name} {'—' if g.value is None else f'{g.value:.3g}'} "
        f"(threshold {'—' if g.threshold is None else f'{g.threshold:.3g}'})"
        for g in failed
    )
    return f"first attempt failed {said}"


def retry_budget(phases: int) -> int:
    """Re-runs allowed in a round of ``phases`` phases."""
    return math.ceil(RETRY_SHARE * phases)
