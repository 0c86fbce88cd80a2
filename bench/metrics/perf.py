"""perf_event_open(2) through ctypes: per-task counting events, enabled and read as a set."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import platform
import struct
from collections.abc import Iterable
from typing import Any

from bench.errors import HellobenchError
from bench.metrics import tasks

# Syscall numbers of perf_event_open by machine; other machines report "unsupported".
_PERF_EVENT_OPEN_NR = {"x86_64": 298, "amd64": 298, "aarch64": 241, "arm64": 241, "i686": 336}

PERF_TYPE_SOFTWARE = 1
PERF_TYPE_TRACEPOINT = 2
PERF_FLAG_FD_CLOEXEC = 1 << 3
PERF_ATTR_SIZE_VER0 = 64

_FLAG_DISABLED = 1 << 0
_FLAG_INHERIT = 1 << 1

PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_DISABLE = 0x2401
PERF_EVENT_IOC_RESET = 0x2403


def _iow(group: str, nr: int, size: int) -> int:
    """The generic _IOW(group, nr, type of ``size`` bytes) of asm-generic/ioctl.h."""
    return (1 << 30) | (size << 16) | (ord(group) << 8) | nr


# _IOW('$', 6, char *): 0x40082406 on x86-64 (and every 64-bit machine of the generic
# encoding); the filter string is the one perf's --filter passes.
PERF_EVENT_IOC_SET_FILTER = _iow("$", 6, ctypes.sizeof(ctypes.c_void_p))


class PerfError(HellobenchError, OSError):
    """perf_event_open is unavailable or refused a counter; the message says why."""


class _PerfEventAttr(ctypes.Structure):
    """The first PERF_ATTR_SIZE_VER0 bytes of struct perf_event_attr (enough for counting)."""

    _fields_ = (
        ("type", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("config", ctypes.c_uint64),
        ("sample_period", ctypes.c_uint64),
        ("sample_type", ctypes.c_uint64),
        ("read_format", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
        ("wakeup_events", ctypes.c_uint32),
        ("bp_type", ctypes.c_uint32),
        ("config1", ctypes.c_uint64),
    )


_libc: ctypes.CDLL | None = None


def _syscall() -> Any:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    fn = _libc.syscall
    fn.restype = ctypes.c_long
    return fn


def syscall_number() -> int | None:
    """perf_event_open's syscall number on this machine, None when not known."""
    return _PERF_EVENT_OPEN_NR.get(platform.machine().lower())


def open_counter(type_: int, config: int, tid: int, *, inherit: bool = True) -> int:
    """A disabled counting event on task ``tid`` (any CPU); returns its fd.

    With ``inherit`` the threads and processes the task creates later count into it.
    """
    nr = syscall_number()
    if nr is None:
        raise PerfError(0, f"perf_event_open: unknown syscall number on {platform.machine()}")
    attr = _PerfEventAttr()
    attr.type = type_
    attr.size = PERF_ATTR_SIZE_VER0
    attr.config = config
    attr.flags = _FLAG_DISABLED | (_FLAG_INHERIT if inherit else 0)
    fd = _syscall()(
        ctypes.c_long(nr),
        ctypes.byref(attr),
        ctypes.c_long(tid),
        ctypes.c_long(-1),
        ctypes.c_long(-1),
        ctypes.c_ulong(PERF_FLAG_FD_CLOEXEC),
    )
    if fd < 0:
        err = ctypes.get_errno()
        raise PerfError(err, f"perf_event_open(tid {tid}): {os.strerror(err)}")
    return int(fd)


def enable(fd: int) -> None:
    fcntl.ioctl(fd, PERF_EVENT_IOC_ENABLE, 0)


def disable(fd: int) -> None:
    fcntl.ioctl(fd, PERF_EVENT_IOC_DISABLE, 0)


def set_filter(fd: int, expression: str) -> None:
    """Sets the tracepoint filter ``expression`` (ftrace syntax, e.g. ``ret == -11``) on a
    tracepoint counter; counters it inherits to threads born later match through it too.

    PerfError with the reason when the kernel refuses it."""
    try:
        fcntl.ioctl(fd, PERF_EVENT_IOC_SET_FILTER, expression.encode() + b"\0")
    except OSError as e:
        why = os.strerror(e.errno) if e.errno else str(e)
        raise PerfError(e.errno or 0, f"tracepoint filter {expression!r} refused: {why}") from e


def read_count(fd: int) -> int:
    """The counter's value: its own task plus every inherited child, live or exited."""
    data = os.read(fd, 8)
    if len(data) != 8:
        raise PerfError(0, f"short read from perf counter ({len(data)} bytes)")
    return int(struct.unpack("=Q", data)[0])


PERF_COUNT_SW_TASK_CLOCK = 1
PERF_COUNT_SW_CONTEXT_SWITCHES = 3
PERF_COUNT_SW_CPU_MIGRATIONS = 4
_ESRCH = 3


class TaskCounters:
    """One inherited counter of a given event on every thread of ``pids`` present at ``open``.

    Threads created later (by any counted thread) count into their creator's counter and
    threads that exit keep what they counted, so the total covers the whole process tree.
    ``open`` attaches disabled counters (the slow part), ``start`` enables them all,
    ``stop`` disables them and returns the sum; ``close`` releases the fds.
    With ``filter_expr`` (tracepoints only) every counter counts only the events it matches.
    """

    def __init__(
        self, pids: Iterable[int], type_: int, config: int, filter_expr: str | None = None
    ) -> None:
        self.pids = tuple(pids)
        self.type = type_
        self.config = config
        self.filter_expr = filter_expr
        self._fds: list[int] = []
        self.total: int | None = None

    def open(self) -> None:
        """Raises PerfError with the reason when counting is not possible."""
        try:
            for pid in self.pids:
                tids = tasks.thread_ids(pid)
                if not tids:
                    raise PerfError(_ESRCH, f"process {pid} not found")
                for tid in tids:
                    try:
                        self._fds.append(open_counter(self.type, self.config, tid))
                    except PerfError as e:
                        if e.errno != _ESRCH:  # else the thread exited meanwhile
                            raise
                        continue
                    if self.filter_expr is not None:
                        set_filter(self._fds[-1], self.filter_expr)
        except BaseException:
            self.close()
            raise

    def start(self) -> None:
        for fd in self._fds:
            enable(fd)

    def halt(self) -> None:
        """Disables every counter (idempotent); ``stop`` then only reads."""
        for fd in self._fds:
            disable(fd)

    def stop(self) -> int:
        self.halt()
        self.total = sum(read_count(fd) for fd in self._fds)
        return self.total

    def close(self) -> None:
        fds, self._fds = self._fds, []
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> TaskCounters:
        self.open()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._fds and self.total is None:
                self.stop()
        finally:
            self.close()
