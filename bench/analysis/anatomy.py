"""Where the time goes: the run's anatomy passes (results ``anatomy``), grouped by
environment and level, each stage put in one of a few kinds (wake-ups, the stack, inside
syscalls, ...), and the calibrated transitions shown inside the syscall stages.

The composition a pass is read by is that of its median requests (those ranked between the
45th and 55th percentile of the traced round trip): per request the stages sum exactly to
its round trip, so their means over those requests sum to the median requests' mean round
trip — a composition that adds up, which stage p50s do not.

"Calibrated transitions" = the configuration's request-path syscalls per request (server
and client, those that returned EAGAIN excluded; the median over the claim's rounds) × the
environment's calibrated null syscall: a price measured elsewhere, never traced, and
labelled so wherever it is shown.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bench.analysis.prediction import price
from bench.question import PRIMARY_MODE, PRIMARY_RX_CPU
from bench.results.anatomy import AnatomyRecord
from bench.results.metrics import fmt_us, metric
from bench.results.run import Run

WAKE_UPS = "wake-ups"
STACK = "the stack"
SYSCALLS = "inside syscalls"
QUEUES = "socket queues"
USER_SPACE = "server user space"
HANDLER = "in-kernel handler"
UNSPLIT = "receive, handler and way back (not split)"
KINDS = (WAKE_UPS, STACK, SYSCALLS, QUEUES, USER_SPACE, HANDLER, UNSPLIT)
SYSCALL_STAGES = ("client send", "server receive", "server send", "client receive")
NOT_TRACED = "no anatomy traced in this run (bench run --anatomy-requests, or bench anatomy)"


def kind_of(stage: str) -> str:
    """The kind a stage's time is: by its name, so that a stage this module does not list
    still lands somewhere said (an in-kernel server's own stages are its handler's)."""
    if stage in SYSCALL_STAGES:
        return SYSCALLS
    if "wake-up" in stage:
        return WAKE_UPS
    if "queue" in stage:
        return QUEUES
    if "user space" in stage:
        return USER_SPACE
    if "way back" in stage:
        return UNSPLIT
    if "stack" in stage or "receive processing" in stage:
        return STACK
    return HANDLER


@dataclass(frozen=True)
class Pass:
    """One anatomy pass with what the rest of the run says about it."""

    record: AnatomyRecord
    request_syscalls: float | None  # request-path syscalls per request, claim's rounds
    transitions_ns: float | None  # × the calibrated null syscall
    transitions_note: str  # how the transitions were priced, or why not

    @property
    def composition(self) -> dict[str, float]:
        """Mean ns per stage of the median requests, in path order."""
        return {
            n: v for n in self.record.stage_names if (v := self.record.median.get(n)) is not None
        }

    @property
    def median_rtt(self) -> float | None:
        parts = self.composition
        return sum(parts.values()) if parts else None

    def by_kind(self, composition: Mapping[str, float] | None = None) -> dict[str, float]:
        out: dict[str, float] = {}
        for stage, ns in (self.composition if composition is None else composition).items():
            out[kind_of(stage)] = out.get(kind_of(stage), 0.0) + ns
        return out


@dataclass(frozen=True)
class Group:
    """The passes of one environment at one set of levels, impls in the run's order."""

    env: str
    topology: str
    levels: tuple[tuple[str, str], ...]
    passes: tuple[Pass, ...]

    @property
    def title(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.levels if k in ("rx_cpu", "idle"))
        return f"{self.env}/{self.topology}, {shown}"

    def level(self, name: str) -> str | None:
        return dict(self.levels).get(name)


def _request_syscalls(run: Run, r: AnatomyRecord) -> float | None:
    read = metric("request_syscalls_per_req").read
    values = [
        v
        for row in run.rows
        if row.ok
        and row.env == r.env
        and row.impl == r.impl
        and row.topology == r.topology
        and row.mode == PRIMARY_MODE
        and row.size == r.size
        and not row.server_options
        and row.offered_rps is None
        and all(row.configuration.factor_levels().get(k) == v for k, v in r.levels.items())
        and (v := read(row)) is not None
    ]
    return statistics.median(values) if values else None


def describe(run: Run, r: AnatomyRecord) -> Pass:
    calibration = run.environment(r.env).calibration or {}
    syscalls = _request_syscalls(run, r)
    null = price(calibration, "null_syscall_ns")
    if syscalls is None:
        return Pass(r, None, None, "request-path syscalls not counted in this configuration")
    if null is None:
        return Pass(r, syscalls, None, "no calibrated null syscall in this environment")
    return Pass(
        r,
        syscalls,
        syscalls * null.value,
        f"{syscalls:.1f} request-path syscalls × {fmt_us(null.value)} µs null syscall "
        "(calibrated, not traced)",
    )


def groups(run: Run) -> list[Group]:
    """Every environment's passes, one group per topology and level combination."""
    keyed: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[AnatomyRecord]] = {}
    for r in run.anatomy:
        keyed.setdefault((r.env, r.topology, tuple(sorted(r.levels.items()))), []).append(r)
    out = []
    for (env, topology, levels), records in keyed.items():
        order = run.impl_order(r.impl for r in records)
        ranked = sorted(records, key=lambda r: order.index(r.impl))
        out.append(Group(env, topology, levels, tuple(describe(run, r) for r in ranked)))
    rx_order = {PRIMARY_RX_CPU: 0}
    return sorted(
        out,
        key=lambda g: (
            list(run.env_names).index(g.env) if g.env in run.env_names else 99,
            g.topology,
            rx_order.get(g.level("rx_cpu") or "", 1),
            g.levels,
        ),
    )


def _kinds_text(p: Pass) -> str:
    kinds = p.by_kind()
    parts = []
    for kind in KINDS:
        if kind not in kinds:
            continue
        text = f"{fmt_us(kinds[kind])} µs {kind}"
        if kind == WAKE_UPS:
            parts_of = [(s, v) for s, v in p.composition.items() if kind_of(s) == WAKE_UPS]
            text += " (" + ", ".join(f"{s} {fmt_us(v)}" for s, v in parts_of) + ")"
        if kind == SYSCALLS and p.transitions_ns is not None:
            text += f" (of which ~{fmt_us(p.transitions_ns)} µs calibrated transitions)"
        parts.append(text)
    return ", ".join(parts)


def pass_sentence(p: Pass) -> str:
    """ "blocking-c's 58.1 µs (median requests, traced; untraced p50 47.5 µs): 29.3 µs
    wake-ups, ..." """
    r = p.record
    if not r.ok:
        return f"{r.impl}: not traced ({r.error or 'no request sampled'})"
    whole = p.median_rtt or 0.0
    untraced = f"; untraced p50 {fmt_us(r.untraced.p50)} µs" if r.untraced.p50 else ""
    return (
        f"{r.impl}'s {fmt_us(whole)} µs (its median requests, traced{untraced}): {_kinds_text(p)}"
    )


def citation(run: Run, env: str, idle: str, found: Sequence[Group] | None = None) -> str | None:
    """The answer's sentence on where the time goes, for ``env`` at the question's
    placement and idle level ``idle``; None where no pass was traced there."""
    for g in groups(run) if found is None else found:
        if g.env != env or g.level("rx_cpu") != PRIMARY_RX_CPU or g.level("idle") != idle:
            continue
        traced = [p for p in g.passes if p.record.ok]
        if not traced:
            continue
        every = traced[0].record.every
        return (
            f"where the time goes (anatomy, 1 in {every} requests traced in a pass of its "
            f"own): " + "; ".join(pass_sentence(p) for p in traced)
        )
    return None


def skipped(run: Run) -> dict[str, str]:
    """Environments whose anatomy was not traced, with the reason."""
    raw = run.extra.get("anatomy_skipped")
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): str(v) for k, v in raw.items()}
