"""Syscall counts of processes: an inherited perf counter on the raw_syscalls:sys_enter
tracepoint on each thread present at the start, so threads created later count too.

Needs tracefs (mounted at /sys/kernel/tracing here when missing) and perf_event_open on
tracepoints (root, or perf_event_paranoid <= -1).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable
from pathlib import Path

from bench.metrics import perf

TRACEFS_DIRS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
SYS_ENTER = "events/raw_syscalls/sys_enter/id"


def _mount_tracefs(target: str) -> bool:
    if not os.path.isdir(target):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    rc = libc.mount(b"nodev", target.encode(), b"tracefs", ctypes.c_ulong(0), None)
    return bool(rc == 0)


def _read_id(base: str) -> int:
    return int((Path(base) / SYS_ENTER).read_text().strip())


def tracepoint_id() -> tuple[int | None, str]:
    """(id of raw_syscalls:sys_enter, "") or (None, why it cannot be found)."""
    for base in TRACEFS_DIRS:
        try:
            return _read_id(base), ""
        except PermissionError:
            return None, f"{base}/{SYS_ENTER} not readable (needs root)"
        except (FileNotFoundError, NotADirectoryError, ValueError):
            continue
    if os.geteuid() == 0 and _mount_tracefs(TRACEFS_DIRS[0]):
        try:
            return _read_id(TRACEFS_DIRS[0]), ""
        except (OSError, ValueError):
            pass
    return None, "raw_syscalls:sys_enter tracepoint not found (tracefs missing or not mountable)"


class SyscallCounter(perf.TaskCounters):
    """Counts the syscalls of every thread of ``pids`` between ``start`` and ``stop``."""

    def __init__(self, pids: Iterable[int]) -> None:
        super().__init__(pids, perf.PERF_TYPE_TRACEPOINT, -1)

    def open(self) -> None:
        tp, why = tracepoint_id()
        if tp is None:
            raise perf.PerfError(0, why)
        self.config = tp
        super().open()
