"""On-CPU time of tasks in ns.

Preferred: inherited perf task-clock counters, which also cover threads born or exiting
during the phase.  Fallback: /proc/PID/task/TID/schedstat (first field, exact ns), or
utime + stime from .../stat (clock ticks) on kernels without CONFIG_SCHED_INFO.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import cache

from bench.metrics import perf, tasks

_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def _schedstat_ns(pid: int, tid: int) -> int | None:
    text = tasks.read_text(f"{tasks.PROC}/{pid}/task/{tid}/schedstat")
    if not text:
        return None
    return int(text.split()[0])


def _stat_ns(pid: int, tid: int) -> int | None:
    text = tasks.read_text(f"{tasks.PROC}/{pid}/task/{tid}/stat")
    if not text:
        return None
    # Fields after the parenthesised comm: state is field 3, utime 14 and stime 15.
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) * _TICK_NS


@cache
def has_schedstat() -> bool:
    return os.path.exists(f"{tasks.PROC}/self/schedstat")


def method() -> str:
    return "schedstat" if has_schedstat() else "utime+stime"


def read_thread(pid: int, tid: int) -> int | None:
    """CPU time of one thread in ns, None when it is gone."""
    return _schedstat_ns(pid, tid) if has_schedstat() else _stat_ns(pid, tid)


def snapshot(pids: Iterable[int]) -> tasks.ThreadValues:
    return tasks.snapshot(pids, read_thread)


def snapshot_kernel_threads(tids: Iterable[int]) -> tasks.ThreadValues:
    return tasks.snapshot_tasks(tids, read_thread)


def counters(pids: Iterable[int]) -> perf.TaskCounters:
    """perf task-clock counters (ns on CPU) of all threads of ``pids`` (open, start, stop)."""
    return perf.TaskCounters(pids, perf.PERF_TYPE_SOFTWARE, perf.PERF_COUNT_SW_TASK_CLOCK)
