"""The CPUs this process may run on (its affinity), and the check that a CPU asked for is
one of them: the run's --server-cpu and --client-cpu here, the agent's ``cpu`` on the
server host.  A CPU outside the set would only fail later, when a child pins itself."""

from __future__ import annotations

import os


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on, in order."""
    return sorted(os.sched_getaffinity(0))


def allowed_text() -> str:
    """The allowed CPUs as ``0, 1, ...`` (what CPU errors name)."""
    return ", ".join(str(c) for c in allowed_cpus())


def cpu_problem(name: str, number: int, who: str = "this process") -> str | None:
    """None when ``number`` is a CPU this process may run on; else the message naming
    ``name`` (a flag or a field), the number, ``who`` runs here and the allowed set."""
    if number in os.sched_getaffinity(0):
        return None
    return f"{name} {number}: not a CPU {who} may run on (allowed: {allowed_text()})"
