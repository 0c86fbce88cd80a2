"""A child process the suite owns: started, recorded in the ledger while it lives, and
stopped (SIGTERM, grace, SIGKILL) and reaped on every way out.

The ledger record names :func:`stop_recorded` as its cleaner, so a run killed with the
child still running has it stopped by the next sweep — and the child's scratch folder
removed with it, when it had one of the suite's.  The record is written before the child
is started, with a token the child carries in its environment (``HELLOBENCH_OWNED``): a
run killed between the fork and the record of the pid leaves a child the sweep still
finds.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.system import ledger
from bench.system.processes import (
    DEFAULT_GRACE_S,
    ProcessIdentity,
    carrying,
    stop_child,
    stop_identified,
)

KIND = "process"
CLEANER = "bench.system.owned:stop_recorded"
SCRATCH_PREFIX = "hellobench-"
OWNER_ENV = "HELLOBENCH_OWNED"  # the token every owned child carries in its environment


class OwnedProcess:
    """``subprocess.Popen(argv, **popen)`` recorded in the ledger as ``name-TOKEN``."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str = "process",
        scratch: Path | None = None,
        **popen: Any,
    ) -> None:
        self.argv = [str(a) for a in argv]
        token = secrets.token_hex(8)
        self.ident = f"{name}-{token}"
        self._details: dict[str, Any] = {
            "pid": None,
            "token": token,
            "argv": self.argv,
            "scratch": str(scratch) if scratch else None,
        }
        ledger.record(KIND, self.ident, CLEANER, **self._details)
        env = dict(popen.pop("env", None) or os.environ)
        env[OWNER_ENV] = token
        try:
            self.proc: subprocess.Popen[Any] = subprocess.Popen(self.argv, env=env, **popen)
        except BaseException:
            ledger.release(KIND, self.ident)
            raise
        identity = ProcessIdentity.of(self.proc.pid)
        self._details["pid"] = self.proc.pid
        self._details["started"] = identity.started if identity else None
        ledger.record(KIND, self.ident, CLEANER, **self._details)
        self._released = False

    def note(self, **details: Any) -> None:
        """Add ``details`` to the ledger record (e.g. that a server became ready)."""
        self._details.update(details)
        ledger.record(KIND, self.ident, CLEANER, **self._details)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def stop(self, grace_s: float = DEFAULT_GRACE_S) -> int | None:
        """Stop and reap the process (idempotent); returns its exit status.  The ledger
        record stays when the process could not be reaped."""
        code = stop_child(self.proc, grace_s)
        if self.proc.poll() is not None and not self._released:
            ledger.release(KIND, self.ident)
            self._released = True
        return code


def _remove_scratch(folder: object) -> None:
    if not isinstance(folder, str):
        return
    path = Path(folder)
    if path.parent == Path(tempfile.gettempdir()) and path.name.startswith(SCRATCH_PREFIX):
        shutil.rmtree(path, ignore_errors=True)


def stop_recorded(rec: ledger.Record) -> None:
    """Ledger cleaner: stop the recorded process if it still runs (found by its pid and
    start time, or, when the run died before recording them, by its token), remove its
    scratch."""
    pid, started = rec.details.get("pid"), rec.details.get("started")
    token = rec.details.get("token")
    if isinstance(pid, int) and isinstance(started, int | float):
        stop_identified(ProcessIdentity(pid, float(started)))
    elif isinstance(token, str):
        for identity in carrying(OWNER_ENV, token):
            stop_identified(identity)
    _remove_scratch(rec.details.get("scratch"))
