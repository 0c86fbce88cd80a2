"""Threads of a process, and per-thread counters summed into one phase delta."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

PROC = "/proc"

# (pid, tid) -> counter value read from /proc/PID/task/TID/...
ThreadValues = dict[tuple[int, int], int]


def thread_ids(pid: int) -> list[int]:
    """Ids of every thread of ``pid`` (empty when the process is gone)."""
    try:
        return sorted(int(name) for name in os.listdir(f"{PROC}/{pid}/task") if name.isdigit())
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return []


def exists(pid: int) -> bool:
    return os.path.isdir(f"{PROC}/{pid}")


def read_text(path: str) -> str | None:
    """A /proc file's text, None when the task has gone meanwhile."""
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None


def snapshot(pids: Iterable[int], read: Callable[[int, int], int | None]) -> ThreadValues:
    """``read(pid, tid)`` for every thread of every pid; vanished threads are left out."""
    values: ThreadValues = {}
    for pid in pids:
        for tid in thread_ids(pid):
            value = read(pid, tid)
            if value is not None:
                values[(pid, tid)] = value
    return values


def snapshot_tasks(tids: Iterable[int], read: Callable[[int, int], int | None]) -> ThreadValues:
    """``read(tid, tid)`` for single tasks such as kernel threads (no thread listing)."""
    values: ThreadValues = {}
    for tid in tids:
        value = read(tid, tid)
        if value is not None:
            values[(tid, tid)] = value
    return values


@dataclass(frozen=True)
class Delta:
    """A phase delta summed over threads.

    Threads born during the phase count from zero; ``lost`` threads were present at the start
    but gone at the end, so what they did during the phase is missing from ``value``.
    """

    value: int
    lost: int


def delta(start: Mapping[tuple[int, int], int], stop: Mapping[tuple[int, int], int]) -> Delta:
    total = 0
    for key, value in stop.items():
        total += max(0, value - start.get(key, 0))
    lost = sum(1 for key in start if key not in stop)
    return Delta(total, lost)
