"""The cleaners for every kind of object the ledger records (imported by ownership.sweep)."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import bench.bpf.cleanup  # registers the xdp, tc, netns and bpf-pin cleaners
import bench.kmod.cleanup  # registers the kernel module cleaner
import bench.vm.cleanup  # noqa: F401  (registers the qemu guest cleaner)
from bench import ownership
from bench.ownership import Record, process_start_time


def _kill_process(rec: Record) -> None:
    pid = int(rec.details["pid"])
    start = rec.details.get("start")
    if process_start_time(pid) is not None and process_start_time(pid) == start:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and process_start_time(pid) == start:
            time.sleep(0.05)
        if process_start_time(pid) == start:
            os.kill(pid, signal.SIGKILL)
    _remove_scratch(rec.details.get("scratch"))


def _remove_scratch(folder: object) -> None:
    """The process's scratch folder, when it recorded one of the suite's."""
    if not isinstance(folder, str):
        return
    path = Path(folder)
    if path.parent == Path(tempfile.gettempdir()) and path.name.startswith("hellobench-"):
        shutil.rmtree(path, ignore_errors=True)


ownership.register_cleaner("process", _kill_process)
