"""Network sysctls held at a value for a while: the previous values are recorded in the
ledger before the first write, so ``bench cleanup`` restores them after a killed run.

Holds are counted per (namespace, key) inside this process, so that two holders of the
same setting restore it only when the last one lets go.  Only network sysctls
(``net.*``) are held, and a key read back from a ledger record is checked again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import HellobenchError
from bench.system import ledger
from bench.system.ledger import Record
from bench.system.netns import entered
from bench.system.netns import exists as netns_exists

KIND = "sysctl"
CLEANER = "bench.system.sysctl:restore_recorded"
PROC_SYS = Path("/proc/sys")
KEY = re.compile(r"net(\.[A-Za-z0-9_-]{1,64}){1,8}")
VALUE = re.compile(r"[0-9A-Za-z_ .:-]{0,256}")

_holders: dict[tuple[str | None, str], int] = {}
_previous: dict[tuple[str | None, str], str] = {}  # values this process changed


class SysctlError(HellobenchError):
    """A sysctl could not be read or written."""


def _path(key: str) -> Path:
    if not KEY.fullmatch(key):
        raise SysctlError(f"{key!r} is not a network sysctl (net.<name>...)")
    return PROC_SYS / key.replace(".", "/")


def read(netns: str | None, key: str) -> str:
    try:
        with entered(netns):
            return _path(key).read_text().strip()
    except OSError as exc:
        raise SysctlError(f"reading {key}: {exc}") from exc


def write(netns: str | None, key: str, value: str) -> None:
    if not VALUE.fullmatch(value):
        raise SysctlError(f"{value!r} is not a sysctl value")
    try:
        with entered(netns):
            _path(key).write_text(f"{value}\n")
    except OSError as exc:
        raise SysctlError(f"writing {key}={value}: {exc}") from exc


def _ident(netns: str | None, key: str) -> str:
    return f"{netns or 'host'}-{key}"


@dataclass
class SysctlHold:
    """``values`` held in ``netns`` until :meth:`release` (idempotent)."""

    netns: str | None
    values: Mapping[str, str]
    _taken: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        try:
            for key, value in self.values.items():
                self._take(key, value)
        except BaseException:
            self.release()
            raise

    def _take(self, key: str, value: str) -> None:
        slot = (self.netns, key)
        if _holders.get(slot):
            _holders[slot] += 1
            self._taken.append(key)
            return
        previous = read(self.netns, key)
        if previous != value:
            ident = _ident(self.netns, key)
            ledger.record(KIND, ident, CLEANER, netns=self.netns, key=key, value=previous)
            try:
                write(self.netns, key, value)
            except SysctlError:
                ledger.release(KIND, ident)
                raise
            _previous[slot] = previous
        _holders[slot] = 1
        self._taken.append(key)

    def release(self) -> None:
        while self._taken:
            key = self._taken.pop()
            slot = (self.netns, key)
            _holders[slot] -= 1
            if _holders[slot]:
                continue
            del _holders[slot]
            previous = _previous.pop(slot, None)
            if previous is not None:
                if not self.netns or netns_exists(self.netns):
                    write(self.netns, key, previous)
                ledger.release(KIND, _ident(self.netns, key))


def restore_recorded(rec: Record) -> None:
    """Ledger cleaner for kind ``sysctl``: put the recorded value back (a namespace that is
    gone took its settings with it)."""
    netns = rec.details.get("netns")
    if netns and not netns_exists(str(netns)):
        return
    write(netns, str(rec.details["key"]), str(rec.details["value"]))
