"""What the validity gates of a run's phases say, counted (the gates themselves:
bench/analysis/gates.py, recorded per row by the runner)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

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

    def line(self) -> str:
        """One line: what the gates found in this environment."""
        if not self.checked:
            return (f"{self.env}: validity gates: none of {self.phases} ok phases was "
                    "checked (rows written before the gates, or too few samples)")  # fmt: skip
        failed = ", ".join(
            f"{name} {bad}/{seen}" for name, (seen, bad) in self.per_gate.items() if bad
        )
        head = f"{self.env}: validity gates: {self.clean} of {self.checked} checked phases pass all"
        return head + (f"; failed: {failed}" if failed else "")


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
            )
        )
    return out
