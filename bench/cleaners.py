"""The cleaners for every kind of object the ledger records (imported by ownership.sweep)."""

from __future__ import annotations

import os
import signal
import time

import bench.bpf.cleanup  # registers the xdp, tc, netns and bpf-pin cleaners
import bench.kmod.cleanup  # registers the kernel module cleaner
import bench.vm.cleanup  # noqa: F401  (registers the qemu guest cleaner)
from bench import ownership
from bench.ownership import Record, process_start_time


def _kill_process(rec: Record) -> None:
    pid = int(rec.details["pid"])
    start = rec.details.get("start")
    if process_start_time(pid) is None or process_start_time(pid) != start:
        return  # gone, or the pid now belongs to somebody else
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline and process_start_time(pid) == start:
        time.sleep(0.05)
    if process_start_time(pid) == start:
        os.kill(pid, signal.SIGKILL)


ownership.register_cleaner("process", _kill_process)
