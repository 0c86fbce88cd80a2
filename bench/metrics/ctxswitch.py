"""Context switches (voluntary + involuntary) summed over every thread of given processes.

Preferred: inherited perf software counters (PERF_COUNT_SW_CONTEXT_SWITCHES), which also
cover threads that are born or exit during the phase.  Fallback: /proc/PID/task/TID/status
of each thread (/proc/PID/status counts only one task; psutil reads the main thread's).
Kernel threads are single long-lived tasks: /proc/TID/status.
"""

from __future__ import annotations

from collections.abc import Iterable

from bench.metrics import perf, tasks


def parse_status(text: str) -> tuple[int, int]:
    """(voluntary, nonvoluntary) context switches from a status file's text."""
    voluntary = nonvoluntary = 0
    for line in text.splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            voluntary = int(line.split()[1])
        elif line.startswith("nonvoluntary_ctxt_switches:"):
            nonvoluntary = int(line.split()[1])
    return voluntary, nonvoluntary


def read_thread(pid: int, tid: int) -> int | None:
    """Voluntary + nonvoluntary switches of one thread, None when it is gone."""
    text = tasks.read_text(f"{tasks.PROC}/{pid}/task/{tid}/status")
    if text is None:
        return None
    voluntary, nonvoluntary = parse_status(text)
    return voluntary + nonvoluntary


def snapshot(pids: Iterable[int]) -> tasks.ThreadValues:
    """Per-thread switch counts of every thread of ``pids``."""
    return tasks.snapshot(pids, read_thread)


def snapshot_kernel_threads(tids: Iterable[int]) -> tasks.ThreadValues:
    """Switch counts of kernel threads (or any single tasks) by tid."""
    return tasks.snapshot_tasks(tids, read_thread)


def total(pids: Iterable[int]) -> int:
    """Switches so far of all threads of ``pids`` (live threads only)."""
    return sum(snapshot(pids).values())


def counters(pids: Iterable[int]) -> perf.TaskCounters:
    """perf counters of every switch-out of all threads of ``pids`` (open, start, stop)."""
    return perf.TaskCounters(pids, perf.PERF_TYPE_SOFTWARE, perf.PERF_COUNT_SW_CONTEXT_SWITCHES)
