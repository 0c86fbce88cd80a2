"""Removes QEMU guests left behind by runs that died (ledger kind ``qemu``)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from bench import ownership
from bench.ownership import Record, process_start_time
from bench.vm.qemu import LEDGER_KIND, NAME_PREFIX


def _guest_pids(name: str) -> list[int]:
    """Pids of QEMU processes started with ``-name guest=<name>`` (the run's unique name)."""
    wanted = f"guest={name}".encode()
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in args and any(b"qemu" in arg for arg in args[:1]):
            found.append(int(entry.name))
    return found


def _alive(pid: int, start: int | None) -> bool:
    """``pid`` still runs the process that started at ``start`` (a zombie counts as gone)."""
    if start is None or process_start_time(pid) != start:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] != "Z"


def _stop(pid: int, start: int | None) -> None:
    if not _alive(pid, start):
        return  # gone, or the pid now belongs to another process
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline and _alive(pid, start):
        time.sleep(0.05)
    if _alive(pid, start):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def kill_guest(rec: Record) -> None:
    """Kill the QEMU process of ``rec``; tolerates its absence."""
    pid = rec.details.get("pid")
    if pid is not None:
        _stop(int(pid), rec.details.get("start"))
        return
    name = str(rec.details.get("name") or NAME_PREFIX + rec.ident)
    for found in _guest_pids(name):  # recorded before QEMU's pid was known
        _stop(found, process_start_time(found))


ownership.register_cleaner(LEDGER_KIND, kill_guest)
