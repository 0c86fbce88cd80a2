"""Removes QEMU guests left behind by runs that died (ledger kind ``qemu``)."""

from __future__ import annotations

from pathlib import Path

from bench.system.ledger import Record
from bench.system.processes import ProcessIdentity, stop_identified
from bench.vm.qemu import NAME_PREFIX


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


def kill_guest(rec: Record) -> None:
    """Kill the QEMU process of ``rec``; tolerates its absence."""
    pid, started = rec.details.get("pid"), rec.details.get("started")
    if isinstance(pid, int) and isinstance(started, int | float):
        stop_identified(ProcessIdentity(pid, float(started)))
        return
    name = str(rec.details.get("name") or NAME_PREFIX + rec.ident)
    for found in _guest_pids(name):  # recorded before QEMU's pid was known
        identity = ProcessIdentity.of(found)
        if identity is not None:
            stop_identified(identity)
