"""One command at a time changes this host: runs, servers, calibrations and fuzz campaigns
hold the host lock for their whole life.

They set RPS masks, network sysctls and the PM QoS request and restore what they found;
two of them at once would save each other's values as "previous" and put the wrong ones
back (and would disturb each other's measurements on a small machine anyway).  The lock
is an flock on a file in the ledger folder (private to this user), so the kernel releases
it when its holder dies, however it dies.  A second command waits, saying once whom for.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.system import ledger
from bench.system.processes import ProcessIdentity

LOCK_NAME = ".host.lock"  # not a record: records() reads *.json only


def lock_path() -> Path:
    return ledger.ledger_dir() / LOCK_NAME


def _holder(fd: int) -> str:
    """Who holds the lock, as its holder wrote it down (best effort: it is only said)."""
    try:
        raw = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {int(raw['pid'])} ({str(raw['command'])[:200]})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another command of the suite"


def _write_holder(fd: int, command: str) -> None:
    me = ProcessIdentity.of(os.getpid())
    body = {"pid": os.getpid(), "started": me.started if me else None, "command": command}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(body).encode(), 0)


@contextmanager
def held(command: str, waiting: Callable[[str], None]) -> Iterator[None]:
    """Hold the host lock for the body; if another command holds it, call ``waiting``
    once with a line naming it, then wait (an interrupt stops the wait)."""
    fd = os.open(lock_path(), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waiting(
                f"waiting for {_holder(fd)} to finish: one command at a time changes "
                "this host's settings"
            )
            fcntl.flock(fd, fcntl.LOCK_EX)
        _write_holder(fd, command)
        yield
    finally:
        os.close(fd)
