"""Processes the suite owns: who they are, and stopping them within a bounded time.

A pid alone is not an identity (pids are reused), so a process is named by its pid and its
start time as psutil reports it; a process whose start time differs is someone else's and
is never signalled.  Stopping is always SIGTERM, a grace period, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import psutil

DEFAULT_GRACE_S = 3.0
POLL_S = 0.02


@dataclass(frozen=True)
class ProcessIdentity:
    """A process as it was when recorded: its pid and its start time (seconds since the
    epoch, psutil's ``create_time``)."""

    pid: int
    started: float

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity | None:
        """The identity of the running process ``pid``; None when there is none (an exited
        process not yet reaped, a zombie, runs no more)."""
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return cls(pid, proc.create_time())
        except psutil.Error:
            return None

    def process(self) -> psutil.Process | None:
        """The live process with this identity (zombies count as gone), else None."""
        try:
            proc = psutil.Process(self.pid)
            if proc.create_time() != self.started or proc.status() == psutil.STATUS_ZOMBIE:
                return None
        except psutil.Error:
            return None
        return proc

    def alive(self) -> bool:
        return self.process() is not None


def _gone_within(identity: ProcessIdentity, seconds: float) -> bool:
    """Wait until the process has exited (a zombie counts), without reaping it: its exit
    status stays for its parent."""
    deadline = time.monotonic() + seconds
    while identity.alive():
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)
    return True


def carrying(name: str, value: str) -> list[ProcessIdentity]:
    """The running processes whose environment has ``name=value`` (those it may read)."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, OSError):
            if proc.environ().get(name) == value:
                found.append(ProcessIdentity(proc.pid, proc.create_time()))
    return found


def stop_identified(identity: ProcessIdentity, grace_s: float = DEFAULT_GRACE_S) -> bool:
    """Stop the process ``identity`` names, if it still runs.  True when it was running."""
    proc = identity.process()
    if proc is None:
        return False
    with contextlib.suppress(psutil.NoSuchProcess):
        proc.terminate()
    if not _gone_within(identity, grace_s):
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
        _gone_within(identity, grace_s)
    return True


def stop_child(proc: subprocess.Popen[Any], grace_s: float = DEFAULT_GRACE_S) -> int | None:
    """Stop a child of this process and reap it; returns its exit status.

    The child is reaped through ``proc`` itself so that Popen keeps its status."""
    if proc.poll() is not None:
        return proc.returncode
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        return proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    try:
        return proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        return None  # stuck in the kernel (an uninterruptible wait): left for the ledger
