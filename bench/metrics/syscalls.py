"""Syscall counts of processes: an inherited perf counter on the raw_syscalls:sys_enter
tracepoint on each thread present at the start, so threads created later count too; and,
counted apart, the empty polls (a counter on raw_syscalls:sys_exit with a tracepoint
filter, as ``perf stat --filter`` sets it: ``ret == -11``, or a ppoll() whose ``ret`` is 0):
the polls that found nothing — a busy-polling server's or client's empty
recvfrom(MSG_DONTWAIT), the spinning driver's zero-timeout ppoll() — which are not on any
request's path.

Needs tracefs (mounted at /sys/kernel/tracing here when missing) and perf_event_open on
tracepoints (root, or perf_event_paranoid <= -1).  A filter is set on each counter opened
here; the counters the kernel inherits to threads born later match through their parent's
filter (checked on 6.18: exact counts of a loop of empty recv(MSG_DONTWAIT), a thread born
during the phase included).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
from collections.abc import Iterable
from pathlib import Path

from bench.metrics import perf

TRACEFS_DIRS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
SYS_ENTER = "events/raw_syscalls/sys_enter/id"
SYS_EXIT = "events/raw_syscalls/sys_exit/id"
# raw_syscalls:sys_exit's ``ret`` is the syscall's return value (-errno on failure) and
# ``id`` its number.  An empty poll is a call that returned EAGAIN, or a ppoll() that
# returned 0 (nothing ready: the spinning driver polls with a zero timeout).
PPOLL_NR = {"x86_64": 271, "aarch64": 73}.get(platform.machine())
EAGAIN_FILTER = f"ret == -{errno.EAGAIN}" + (
    f" || (id == {PPOLL_NR} && ret == 0)" if PPOLL_NR is not None else ""
)


def _mount_tracefs(target: str) -> bool:
    if not os.path.isdir(target):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    rc = libc.mount(b"nodev", target.encode(), b"tracefs", ctypes.c_ulong(0), None)
    return bool(rc == 0)


def _read_id(base: str, event: str) -> int:
    return int((Path(base) / event).read_text().strip())


def _name(event: str) -> str:
    """``raw_syscalls:sys_enter`` of ``events/raw_syscalls/sys_enter/id``."""
    _, system, name, _ = event.split("/")
    return f"{system}:{name}"


def tracepoint_id(event: str = SYS_ENTER) -> tuple[int | None, str]:
    """(id of the tracepoint ``event``, "") or (None, why it cannot be found)."""
    for base in TRACEFS_DIRS:
        try:
            return _read_id(base, event), ""
        except PermissionError:
            return None, f"{base}/{event} not readable (needs root)"
        except (FileNotFoundError, NotADirectoryError, ValueError):
            continue
    if os.geteuid() == 0 and _mount_tracefs(TRACEFS_DIRS[0]):
        try:
            return _read_id(TRACEFS_DIRS[0], event), ""
        except (OSError, ValueError):
            pass
    return None, f"{_name(event)} tracepoint not found (tracefs missing or not mountable)"


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


class EagainCounter(perf.TaskCounters):
    """Counts the empty polls of every thread of ``pids`` between ``start`` and ``stop``:
    syscalls that returned EAGAIN (EWOULDBLOCK), and ppoll() calls that returned 0.
    ``open`` raises PerfError with the reason when the tracepoint or its filter is refused:
    the count is then unknown, never 0."""

    def __init__(self, pids: Iterable[int]) -> None:
        super().__init__(pids, perf.PERF_TYPE_TRACEPOINT, -1, filter_expr=EAGAIN_FILTER)

    def open(self) -> None:
        tp, why = tracepoint_id(SYS_EXIT)
        if tp is None:
            raise perf.PerfError(0, why)
        self.config = tp
        super().open()
