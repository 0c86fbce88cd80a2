"""The ledger of system objects a run creates (server processes, namespaces, BPF
attachments, modules, guests), so that an interrupted run's leftovers are found and removed.

Each object is one JSON record in the ledger folder, written before the object is created
and removed once it is gone.  A record names the function that removes its object, as
``"package.module:function"``; ``sweep`` imports that function only when it needs it, so
this module depends on nothing of the suite above it and nothing has to import a list of
cleaners.  A cleaner takes the :class:`Record` and must tolerate the object's absence.
Nothing that is not recorded is ever touched.

A record makes this process call a function and restore values, so only this user may
write one: the ledger folder (and the folder above it that the suite creates) must belong
to this user and is kept at mode 0700, a record file must belong to this user, and a
cleaner must be a function of the suite's own package.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import HellobenchError
from bench.system.files import write_atomic
from bench.system.processes import ProcessIdentity

PRIVATE = 0o600
PRIVATE_FOLDER = 0o700
CLEANER_PACKAGE = "bench."


class LedgerError(HellobenchError):
    """The ledger folder is not private to this user."""


@dataclass(frozen=True)
class Record:
    kind: str
    ident: str
    owner: ProcessIdentity | None
    cleaner: str
    details: Mapping[str, Any]
    path: Path

    @property
    def owner_pid(self) -> int | None:
        return self.owner.pid if self.owner else None

    def owner_alive(self) -> bool:
        return self.owner is not None and self.owner.alive()


def _private_folder(path: Path) -> None:
    """Create ``path`` (its parent exists) at mode 0700, or accept an existing one only if
    it is a real folder of this user, made 0700."""
    try:
        path.mkdir(mode=PRIVATE_FOLDER, exist_ok=True)
        info = os.lstat(path)
    except OSError as exc:
        raise LedgerError(f"ledger folder {path}: {exc.strerror or exc}") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise LedgerError(f"ledger folder {path} is not a folder (a link or a file)")
    if info.st_uid != os.geteuid():
        raise LedgerError(
            f"ledger folder {path} belongs to uid {info.st_uid}, not to this user "
            f"({os.geteuid()}): its records would run as you; remove it or set HELLOBENCH_LEDGER"
        )
    if stat.S_IMODE(info.st_mode) != PRIVATE_FOLDER:
        os.chmod(path, PRIVATE_FOLDER)


def ledger_dir() -> Path:
    """$HELLOBENCH_LEDGER, else /run/hellobench/owned for root, else hellobench/owned in
    the user's runtime folder ($XDG_RUNTIME_DIR, or a per-user folder in the temp folder);
    every folder the suite creates there is private (see the module's docstring)."""
    base = os.environ.get("HELLOBENCH_LEDGER")
    if base:
        path = Path(base)
        path.parent.mkdir(parents=True, exist_ok=True)
        _private_folder(path)
        return path
    if os.geteuid() == 0:
        top = Path("/run/hellobench")
    elif os.environ.get("XDG_RUNTIME_DIR"):
        top = Path(os.environ["XDG_RUNTIME_DIR"]) / "hellobench"
    else:
        top = Path(tempfile.gettempdir()) / f"hellobench-{os.geteuid()}"
    _private_folder(top)
    _private_folder(top / "owned")
    return top / "owned"


def _file_name(kind: str, ident: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{kind}--{ident}") + ".json"


def _check_cleaner(cleaner: str) -> None:
    module, sep, function = cleaner.partition(":")
    if not sep or not module or not function.isidentifier():
        raise ValueError(f"cleaner {cleaner!r} is not 'package.module:function'")
    if not module.startswith(CLEANER_PACKAGE) or not all(
        part.isidentifier() for part in module.split(".")
    ):
        raise ValueError(f"cleaner {cleaner!r} is not a function of the suite's package")


def record(kind: str, ident: str, cleaner: str, **details: Any) -> Path:
    """Note that this process is creating ``kind``/``ident``, removed by ``cleaner``
    (``"package.module:function"``); recording the same object again updates its details."""
    _check_cleaner(cleaner)
    me = ProcessIdentity.of(os.getpid())
    path = ledger_dir() / _file_name(kind, ident)
    body = {
        "kind": kind,
        "ident": ident,
        "owner_pid": os.getpid(),
        "owner_started": me.started if me else None,
        "cleaner": cleaner,
        "created": time.time(),
        "details": details,
    }
    write_atomic(path, json.dumps(body), mode=PRIVATE)
    return path


def release(kind: str, ident: str) -> None:
    """The object is gone: forget it."""
    (ledger_dir() / _file_name(kind, ident)).unlink(missing_ok=True)


def _parse(path: Path) -> Record:
    if os.lstat(path).st_uid != os.geteuid():
        raise ValueError(f"{path} does not belong to this user")
    raw = json.loads(path.read_text())
    started = raw.get("owner_started")
    owner = ProcessIdentity(int(raw["owner_pid"]), float(started)) if started else None
    return Record(
        kind=str(raw["kind"]),
        ident=str(raw["ident"]),
        owner=owner,
        cleaner=str(raw.get("cleaner") or ""),
        details=raw.get("details") or {},
        path=path,
    )


def records() -> list[Record]:
    """Every record in the ledger (an unreadable one is dropped: it names nothing usable)."""
    found: list[Record] = []
    for path in sorted(ledger_dir().glob("*.json")):
        try:
            found.append(_parse(path))
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
    return found


def _resolve(cleaner: str) -> Callable[[Record], None]:
    _check_cleaner(cleaner)
    module, _, function = cleaner.partition(":")
    found = getattr(importlib.import_module(module), function, None)
    if not callable(found):
        raise ValueError(f"{module} has no function {function}")
    return found  # type: ignore[no-any-return]


def _mine(rec: Record) -> bool:
    return rec.owner is not None and rec.owner.pid == os.getpid() and rec.owner_alive()


def sweep(include_live: bool = False, own: bool = False) -> list[str]:
    """Remove the leftovers of dead runs (and of live ones with ``include_live``); with
    ``own``, remove instead what this very process created and has not released (the
    path an interrupt takes).  Returns one line per object removed or not removable.
    """
    lines: list[str] = []
    for rec in records():
        if own:
            if not _mine(rec):
                continue
        elif _mine(rec) or (rec.owner_alive() and not include_live):
            continue
        if not rec.cleaner:
            lines.append(f"left {rec.kind} {rec.ident}: its record names no cleaner")
            continue
        try:
            _resolve(rec.cleaner)(rec)
        except Exception as exc:
            lines.append(f"could not remove {rec.kind} {rec.ident}: {exc}")
            continue
        rec.path.unlink(missing_ok=True)
        lines.append(f"removed {rec.kind} {rec.ident}")
    return lines
