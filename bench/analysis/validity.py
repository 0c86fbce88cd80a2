"""What the validity gates of a run's phases say, counted (the gates themselves:
bench/analysis/gates.py, recorded per row by the runner)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bench.question import excluding_failure
from bench.results.rows import Configuration, GateCheck, PhaseRow


@dataclass(frozen=True)
class GateTally:
    """The ok phases of one environment: how many were checked, how many passed every gate,
    and per gate how many phases it checked and how many it failed."""

    env: str
    phases: int  # ok phases
    checked: int  # of those, with at least one gate
    clean: int  # of those checked, passing every gate
    per_gate: Mapping[str, tuple[int, int]]  # gate -> (phases checked, phases failed)
    failures: tuple[tuple[Configuration, int, GateCheck], ...]  # (configuration, trial, gate)
    retried: int = 0  # ok phases that are a re-run (their first attempt failed a gate)

    def line(self) -> str:
        """One line: what the gates found in this environment."""
        if not self.checked:
            return (f"{self.env}: validity gates: none of {self.phases} ok phases was "
                    "checked (rows written before the gates, or too few samples)")  # fmt: skip
        failed = ", ".join(
            f"{name} {bad}/{seen}" for name, (seen, bad) in self.per_gate.items() if bad
        )
        head = f"{self.env}: validity gates: {self.clean} of {self.checked} checked phases pass all"
        rerun = f"; re-run once: {self.retried}" if self.retried else ""
        return head + (f"; failed: {failed}" if failed else "") + rerun


def tally(rows: Iterable[PhaseRow]) -> list[GateTally]:
    """Per environment (in the rows' order), what the gates of the ok phases say."""
    by_env: dict[str, list[PhaseRow]] = {}
    for row in rows:
        if row.ok:
            by_env.setdefault(row.env, []).append(row)
    out = []
    for env, ok in by_env.items():
        seen: Counter[str] = Counter()
        bad: Counter[str] = Counter()
        failures: list[tuple[Configuration, int, GateCheck]] = []
        for row in ok:
            for gate in row.gates:
                seen[gate.name] += 1
                if not gate.passed:
                    bad[gate.name] += 1
                    failures.append((row.configuration, row.trial, gate))
        checked = [r for r in ok if r.gates]
        out.append(
            GateTally(
                env=env,
                phases=len(ok),
                checked=len(checked),
                clean=sum(all(g.passed for g in r.gates) for r in checked),
                per_gate={name: (seen[name], bad[name]) for name in seen},
                failures=tuple(failures),
                retried=sum(r.retried is not None for r in ok),
            )
        )
    return out


@dataclass(frozen=True)
class Mark:
    """A configuration's validity mark: what its phases' gates said, in a few words."""

    text: str
    checked: int  # ok phases with gates
    failed: Mapping[str, int]  # gate -> phases that failed it
    excluding: bool  # some phase failed a gate that leaves it out of the primary family
    detail: str  # the failed gates' values, for a tooltip

    @property
    def clean(self) -> bool:
        return self.checked > 0 and not self.failed


DRIVER_GATE = "driver_not_bottleneck"
DRIVER_BOUND = "driver-bound (does not rank servers)"


def mark(rows: Iterable[PhaseRow]) -> Mark:
    """The mark of one configuration's ok rows."""
    ok = [r for r in rows if r.ok]
    checked = [r for r in ok if r.gates]
    if not checked:
        return Mark("not checked", 0, {}, False, "no gate was recorded for these phases")
    failed: Counter[str] = Counter()
    details: list[str] = []
    for r in checked:
        for g in r.gates:
            if not g.passed:
                failed[g.name] += 1
                value = "—" if g.value is None else f"{g.value:.3g}"
                details.append(f"round {r.trial}: {g.name} {value}: {g.detail}")
    if not failed:
        return Mark(f"all pass ({len(checked)})", len(checked), {}, False, "")
    shown = {DRIVER_GATE: DRIVER_BOUND}
    order = sorted(failed, key=lambda name: name != DRIVER_GATE)
    parts = [f"{shown.get(name, name)} {failed[name]}/{len(checked)}" for name in order]
    excluding = excluding_failure(failed) is not None
    return Mark("; ".join(parts), len(checked), dict(failed), excluding, " | ".join(details[:20]))
