"""CPU migrations summed over every thread of given processes: a pinned thread that moved
was not where the phase says it ran.

Preferred: inherited perf software counters (PERF_COUNT_SW_CPU_MIGRATIONS).  Fallback:
``se.nr_migrations`` of /proc/PID/task/TID/sched (kernels with scheduler debug files).
"""

from __future__ import annotations

from collections.abc import Iterable

from bench.metrics import perf, tasks


def parse_sched(text: str) -> int | None:
    """``se.nr_migrations`` from a sched file's text (None: not in it)."""
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "se.nr_migrations":
            return int(value.split()[0])
    return None


def read_thread(pid: int, tid: int) -> int | None:
    text = tasks.read_text(f"{tasks.PROC}/{pid}/task/{tid}/sched")
    return None if text is None else parse_sched(text)


def snapshot(pids: Iterable[int]) -> tasks.ThreadValues:
    return tasks.snapshot(pids, read_thread)


def counters(pids: Iterable[int]) -> perf.TaskCounters:
    """perf counters of every migration of all threads of ``pids`` (open, start, stop)."""
    return perf.TaskCounters(pids, perf.PERF_TYPE_SOFTWARE, perf.PERF_COUNT_SW_CPU_MIGRATIONS)
