"""The kernel.bpf_stats_enabled switch: the kernel counts BPF program run time only while
it is 1 (it costs two clock reads per program run).  The counts themselves are read by
bench/bpf/progstats.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

STATS_SYSCTL = Path("/proc/sys/kernel/bpf_stats_enabled")


def stats_enabled() -> bool | None:
    """The current kernel.bpf_stats_enabled, None when the kernel has no such sysctl."""
    try:
        return STATS_SYSCTL.read_text().strip() == "1"
    except OSError:
        return None


@contextlib.contextmanager
def bpf_stats_enabled() -> Iterator[bool]:
    """Sets kernel.bpf_stats_enabled=1 for the block and then restores the old value.

    Yields whether stats are on inside the block (False: no sysctl or not permitted).
    """
    try:
        old = STATS_SYSCTL.read_text().strip()
    except OSError:
        yield False
        return
    changed = False
    if old != "1":
        try:
            STATS_SYSCTL.write_text("1\n")
            changed = True
        except OSError:
            yield False
            return
    try:
        yield True
    finally:
        if changed:
            STATS_SYSCTL.write_text(f"{old}\n")
