"""Switching BPF run-time statistics on: the kernel counts program run time only while they
are on (it costs two clock reads per program run), through a BPF_ENABLE_STATS descriptor or
the kernel.bpf_stats_enabled sysctl.  The counts themselves are read by
bench/bpf/progstats.py.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from bench.bpf import BpfError
from bench.bpf.progstats import enable_run_time_stats

STATS_SYSCTL = Path("/proc/sys/kernel/bpf_stats_enabled")


def stats_enabled() -> bool | None:
    """The current kernel.bpf_stats_enabled, None when the kernel has no such sysctl."""
    try:
        return STATS_SYSCTL.read_text().strip() == "1"
    except OSError:
        return None


@contextlib.contextmanager
def bpf_stats_enabled(use_descriptor: bool = True) -> Iterator[bool]:
    """BPF run-time statistics on for the block.

    First choice is a BPF_ENABLE_STATS descriptor, closed at the end of the block: the
    kernel drops it with the process, so a killed run cannot leave statistics on.  When the
    kernel refuses one (before 5.8), kernel.bpf_stats_enabled is set to 1 and the old value
    restored.  Yields whether statistics are on inside the block (False: neither works).
    """
    if use_descriptor:
        try:
            fd = enable_run_time_stats()
        except BpfError:
            pass
        else:
            try:
                yield True
            finally:
                os.close(fd)
            return
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
