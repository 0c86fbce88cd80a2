"""Keep the kernel's measurement hooks switched on for a whole run.

Opening the first perf event of a kind, or turning ``kernel.bpf_stats_enabled`` on, flips a
static key: the kernel patches its own text on every CPU.  Doing that at every phase
boundary costs time on the measured machine and, under emulation (QEMU TCG), has been seen
to wedge a vCPU.  Holding one idle event of each kind on this process, and the BPF stats on,
for the run keeps the keys set, so the per-phase probes only add and remove users.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from bench.metrics import perf
from bench.metrics.bpf import bpf_stats_enabled
from bench.metrics.syscalls import SYS_ENTER, SYS_EXIT, tracepoint_id

# every kind of event a phase's probes open (bench/metrics: context switches, CPU time,
# migrations, syscalls and their empty polls)
SOFTWARE_ANCHORS = (
    ("context-switches", perf.PERF_COUNT_SW_CONTEXT_SWITCHES),
    ("task-clock", perf.PERF_COUNT_SW_TASK_CLOCK),
    ("cpu-migrations", perf.PERF_COUNT_SW_CPU_MIGRATIONS),
)
TRACEPOINT_ANCHORS = (("raw_syscalls:sys_enter", SYS_ENTER), ("raw_syscalls:sys_exit", SYS_EXIT))


def _anchor_events() -> tuple[list[int], list[str]]:
    fds: list[int] = []
    notes: list[str] = []
    kinds = [(name, perf.PERF_TYPE_SOFTWARE, config) for name, config in SOFTWARE_ANCHORS]
    for name, event in TRACEPOINT_ANCHORS:
        tp_id, why = tracepoint_id(event)
        if tp_id is None:
            notes.append(f"{name}: {why}")
        else:
            kinds.append((name, perf.PERF_TYPE_TRACEPOINT, tp_id))
    for name, type_, config in kinds:
        try:
            fds.append(perf.open_counter(type_, config, 0, inherit=False))
        except perf.PerfError as exc:
            notes.append(f"{name}: {exc}")
    return fds, notes


@contextlib.contextmanager
def measurement_hooks_held(bpf_stats: bool) -> Iterator[list[str]]:
    """Hold the hooks for the duration of the block; yields notes on what could not be held."""
    fds, notes = _anchor_events()
    try:
        with bpf_stats_enabled() if bpf_stats else contextlib.nullcontext(False):
            yield notes
    finally:
        for fd in fds:
            os.close(fd)
