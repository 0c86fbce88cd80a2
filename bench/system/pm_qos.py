"""Holding the CPU latency limit (PM QoS) at a value while phases run, as tuned's
latency-performance profile does: with 0, idle CPUs stay in their shallowest state.

The request lives as long as the open file descriptor of /dev/cpu_dma_latency; the kernel
drops it when the descriptor closes, including when the process is killed, so nothing
outlives the run and the ledger need not record it.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.errors import HellobenchError

DEVICE = Path("/dev/cpu_dma_latency")


class PmQosError(HellobenchError):
    """The limit could not be requested."""


@contextmanager
def cpu_latency_held(limit_us: int = 0, device: Path = DEVICE) -> Iterator[None]:
    """For the body, no CPU enters an idle state whose exit latency exceeds ``limit_us``."""
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        raise PmQosError(f"cannot hold the CPU latency limit: {device}: {exc.strerror}") from exc
    try:
        os.write(fd, struct.pack("<i", limit_us))
        yield
    finally:
        os.close(fd)
