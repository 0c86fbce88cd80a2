"""A native server process whose counters live in a shared memfd.

The server creates a memfd named ``hellobench-counters``, maps it and bumps plain 64-bit
counters in it; the controller reads the memfd through ``/proc/PID/fd`` whenever asked,
so keeping count costs the server no syscall on its request path.  The counters' names,
in the order the server lays them out, come from the server binary itself: ``--counters``
prints them, one a line, from the same X-macro list (bench/native/hb_counters.h) that
lays out its memfd.
"""

from __future__ import annotations

import os
import struct
import subprocess
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from bench.impl.api import ImplError, ServerConfig
from bench.impl.process import ServerProcess

MEMFD_NAME = "hellobench-counters"
_LINK = f"/memfd:{MEMFD_NAME}"
COUNTERS_TIMEOUT_S = 10.0


@cache
def counter_names(binary: Path) -> tuple[str, ...]:
    """The counters ``binary`` keeps, in memfd order (asked once per built binary)."""
    try:
        proc = subprocess.run(
            [str(binary), "--counters"], capture_output=True, text=True, timeout=COUNTERS_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ImplError(f"{binary.name} --counters: {exc}") from exc
    names = tuple(proc.stdout.split())
    if proc.returncode != 0 or not names or not all(n.isidentifier() for n in names):
        detail = proc.stderr.strip() or f"status {proc.returncode}, output {proc.stdout!r}"
        raise ImplError(f"{binary.name} --counters gave no counter names: {detail}")
    return names


def find_memfd(pid: int) -> Path | None:
    """``/proc/PID/fd/N`` of the process's counters memfd, or None."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        entries = list(fds.iterdir())
    except OSError:
        return None
    for entry in entries:
        try:
            target = os.readlink(entry)
        except OSError:
            continue
        if target.startswith(_LINK):
            return entry
    return None


def read_counters(path: Path, names: Sequence[str]) -> dict[str, int] | None:
    """The counters stored at ``path`` (native-endian u64s), or None when unreadable."""
    size = 8 * len(names)
    try:
        with open(path, "rb") as f:
            data = f.read(size)
    except OSError:
        return None
    if len(data) != size:
        return None
    return dict(zip(names, struct.unpack(f"={len(names)}Q", data), strict=True))


class CountedServerProcess(ServerProcess):
    """A ServerProcess whose ``counters()`` come from its memfd (the last reading once
    stopped; empty if the server never made one)."""

    def __init__(
        self,
        argv: Sequence[str],
        config: ServerConfig,
        names: Sequence[str],
        env: dict[str, str] | None = None,
    ):
        self._names = tuple(names)
        self._memfd: Path | None = None
        self._last: dict[str, int] = {}
        super().__init__(argv, config, env)

    def counters(self) -> dict[str, int]:
        if self._proc.poll() is None:
            if self._memfd is None:
                self._memfd = find_memfd(self.pid)
            if self._memfd is not None:
                found = read_counters(self._memfd, self._names)
                if found is not None:
                    self._last = found
        return dict(self._last)

    def stop(self) -> None:
        if not getattr(self, "_stopped", True):
            self.counters()
        super().stop()
