"""Network namespaces: entering one from this thread, running a command inside one, and
removing the suite's own (named ``hb-*``)."""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.errors import HellobenchError
from bench.system.ledger import Record

NETNS_DIR = Path("/run/netns")
SUITE_PREFIX = "hb-"
COMMAND_TIMEOUT_S = 30.0
_CLONE_NEWNET = 0x40000000
NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")  # a file name in /run/netns


class NetnsError(HellobenchError):
    """A namespace could not be removed."""


def checked(name: str) -> str:
    """``name`` if it can name a namespace (a record read back from a file is checked
    before its name reaches a path or a command)."""
    if not NAME.fullmatch(name):
        raise NetnsError(f"{name!r} is not a network namespace name")
    return name


def exec_prefix(netns: str | None) -> list[str]:
    """The argv prefix that runs a command inside ``netns`` (empty for this namespace)."""
    return ["ip", "netns", "exec", checked(netns)] if netns else []


def exists(name: str) -> bool:
    return (NETNS_DIR / checked(name)).exists()


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextmanager
def entered(netns: str | None) -> Iterator[None]:
    """Run the body with this thread inside ``netns`` (None: stay where it is).

    Sockets created in the body stay in that namespace after it ends, which is how tests and
    clients get a socket in another namespace without a subprocess.
    """
    if netns is None:
        yield
        return
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(NETNS_DIR / checked(netns), os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


def remove(name: str) -> None:
    """Delete the named namespace if it exists and is one of the suite's (``hb-``)."""
    if not name.startswith(SUITE_PREFIX):
        raise ValueError(f"refusing to delete netns {name!r}: not one of the suite's")
    if not exists(name):
        return
    proc = subprocess.run(
        ["ip", "netns", "del", name], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
    )
    if proc.returncode != 0 and exists(name):
        raise NetnsError(f"ip netns del {name}: {proc.stderr.strip()}")


def remove_recorded(rec: Record) -> None:
    """Ledger cleaner for kind ``netns``: the record's ident is the namespace's name."""
    remove(str(rec.ident))
