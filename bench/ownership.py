"""A ledger of the system objects a run creates (server processes, netns, BPF attachments,
modules, guests), so that an interrupted run's leftovers can be found and removed later.

Each object is one JSON record under the ledger folder, written before the object is
created and removed after it is gone.  ``sweep`` hands the records of runs that are no
longer alive to the cleaner registered for their kind; nothing unrecorded is touched.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Cleaner = Callable[["Record"], None]
_CLEANERS: dict[str, Cleaner] = {}


@dataclass(frozen=True)
class Record:
    kind: str
    ident: str
    owner_pid: int
    owner_start: int
    details: Mapping[str, Any]
    path: Path


def ledger_dir() -> Path:
    base = os.environ.get("HELLOBENCH_LEDGER")
    if base:
        path = Path(base)
    elif os.geteuid() == 0:
        path = Path("/run/hellobench/owned")
    else:
        path = Path(tempfile.gettempdir()) / f"hellobench-{os.geteuid()}" / "owned"
    path.mkdir(parents=True, exist_ok=True)
    return path


def process_start_time(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def _file_name(kind: str, ident: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{kind}--{ident}") + ".json"


def record(kind: str, ident: str, **details: Any) -> Path:
    """Note that this process is creating ``kind``/``ident``; returns the record's path."""
    me = os.getpid()
    path = ledger_dir() / _file_name(kind, ident)
    body = {
        "kind": kind,
        "ident": ident,
        "owner_pid": me,
        "owner_start": process_start_time(me),
        "created": time.time(),
        "details": details,
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body))
    tmp.replace(path)
    return path


def release(kind: str, ident: str) -> None:
    """The object is gone: forget it."""
    (ledger_dir() / _file_name(kind, ident)).unlink(missing_ok=True)


def register_cleaner(kind: str, cleaner: Cleaner) -> None:
    """``cleaner(record)`` removes a leftover object of ``kind``; it must tolerate absence."""
    _CLEANERS[kind] = cleaner


def records() -> list[Record]:
    found: list[Record] = []
    for path in sorted(ledger_dir().glob("*.json")):
        try:
            raw = json.loads(path.read_text())
            found.append(
                Record(
                    kind=raw["kind"],
                    ident=raw["ident"],
                    owner_pid=int(raw["owner_pid"]),
                    owner_start=int(raw.get("owner_start") or 0),
                    details=raw.get("details", {}),
                    path=path,
                )
            )
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)
    return found


def owner_alive(rec: Record) -> bool:
    start = process_start_time(rec.owner_pid)
    return start is not None and start == rec.owner_start


def sweep(include_live: bool = False, own: bool = False) -> list[str]:
    """Remove the leftovers of dead runs (and of live ones with ``include_live``); with
    ``own``, remove instead what this very process created and has not released (the
    path an interrupt takes).  Returns one line per object removed or not removable.
    """
    import bench.cleaners  # noqa: F401  (registers every kind's cleaner)

    lines: list[str] = []
    me = os.getpid()
    for rec in records():
        if own:
            if rec.owner_pid != me:
                continue
        elif rec.owner_pid == me or (owner_alive(rec) and not include_live):
            continue
        cleaner = _CLEANERS.get(rec.kind)
        if cleaner is None:
            lines.append(f"left {rec.kind} {rec.ident}: no cleaner for this kind")
            continue
        try:
            cleaner(rec)
        except Exception as exc:
            lines.append(f"could not remove {rec.kind} {rec.ident}: {exc}")
            continue
        rec.path.unlink(missing_ok=True)
        lines.append(f"removed {rec.kind} {rec.ident}")
    return lines
