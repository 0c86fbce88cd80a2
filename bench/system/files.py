"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PUBLIC = 0o644  # results, reports and build products are for everyone to read


@contextmanager
def atomic_path(target: Path, mode: int = PUBLIC) -> Iterator[Path]:
    """A temporary path beside ``target`` for the body to fill (write it, or let a tool
    write it); on success it is fsynced, given ``mode`` and renamed over ``target``, on
    failure removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(target: Path, data: str | bytes, mode: int = PUBLIC) -> None:
    """Write ``data`` (text as UTF-8) to ``target`` atomically."""
    with atomic_path(target, mode) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
