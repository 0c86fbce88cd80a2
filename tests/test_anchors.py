"""The run-long anchors hold one event of every kind a phase's probes open, so that no
phase boundary flips a static key (text patching on every CPU, which has wedged an
emulated vCPU)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.metrics import ctxswitch, migrations, perf, taskcpu
from bench.metrics.anchors import (
    SOFTWARE_ANCHORS,
    TRACEPOINT_ANCHORS,
    measurement_hooks_held,
)
from bench.metrics.syscalls import SYS_ENTER, SYS_EXIT, EagainCounter, SyscallCounter


def test_every_software_event_the_probes_open_is_anchored() -> None:
    anchored = {config for _, config in SOFTWARE_ANCHORS}
    for factory in (ctxswitch.counters, taskcpu.counters, migrations.counters):
        counter = factory([os.getpid()])
        assert counter.type == perf.PERF_TYPE_SOFTWARE
        assert counter.config in anchored, factory.__module__


def test_both_syscall_tracepoints_the_probes_open_are_anchored() -> None:
    anchored = {event for _, event in TRACEPOINT_ANCHORS}
    assert {SYS_ENTER, SYS_EXIT} <= anchored
    for counter in (SyscallCounter([os.getpid()]), EagainCounter([os.getpid()])):
        assert counter.type == perf.PERF_TYPE_TRACEPOINT


def _perf_fds() -> int:
    fds = Path("/proc/self/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            count += os.readlink(fd) == "anon_inode:[perf_event]"
        except OSError:
            continue
    return count


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="tracepoint counters need root")
def test_holding_the_hooks_opens_one_event_of_each_kind_and_closes_them() -> None:
    before = _perf_fds()
    with measurement_hooks_held(False) as notes:
        held = _perf_fds() - before
        assert held + len(notes) == len(SOFTWARE_ANCHORS) + len(TRACEPOINT_ANCHORS), notes
    assert _perf_fds() == before
