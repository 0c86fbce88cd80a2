"""System-wide and per-CPU CPU time and context switches from /proc/stat.

Times are kept in USER_HZ ticks as read and converted to ns in deltas.  ``user`` includes
``nice`` (and, as the kernel counts it, guest time); ``total`` is the busy time
user + system + softirq + irq + steal (idle and iowait are not busy).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

USER_HZ = os.sysconf("SC_CLK_TCK")
TICK_NS = 1_000_000_000 / USER_HZ

# Column order of a "cpu" line in /proc/stat.
_COLUMNS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
KINDS = ("user", "system", "softirq", "irq", "steal", "idle", "iowait")
BUSY = ("user", "system", "softirq", "irq", "steal")


def _kinds(ticks: Mapping[str, int]) -> dict[str, int]:
    return {
        "user": ticks["user"] + ticks["nice"],
        "system": ticks["system"],
        "softirq": ticks["softirq"],
        "irq": ticks["irq"],
        "steal": ticks["steal"],
        "idle": ticks["idle"],
        "iowait": ticks["iowait"],
    }


@dataclass(frozen=True)
class Snapshot:
    """One read of /proc/stat: ticks by kind, overall and per CPU, and the ctxt counter."""

    total: dict[str, int]
    by_cpu: dict[int, dict[str, int]] = field(default_factory=dict)
    ctxt: int = 0


def parse(text: str) -> Snapshot:
    total: dict[str, int] = {}
    by_cpu: dict[int, dict[str, int]] = {}
    ctxt = 0
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0].startswith("cpu"):
            values = [int(v) for v in parts[1 : 1 + len(_COLUMNS)]]
            values += [0] * (len(_COLUMNS) - len(values))
            kinds = _kinds(dict(zip(_COLUMNS, values, strict=True)))
            if parts[0] == "cpu":
                total = kinds
            else:
                by_cpu[int(parts[0][3:])] = kinds
        elif parts[0] == "ctxt":
            ctxt = int(parts[1])
    return Snapshot(total, by_cpu, ctxt)


def snapshot(path: str = "/proc/stat") -> Snapshot:
    with open(path) as f:
        return parse(f.read())


def _delta_ns(start: Mapping[str, int], stop: Mapping[str, int]) -> dict[str, float]:
    out = {k: max(0, stop.get(k, 0) - start.get(k, 0)) * TICK_NS for k in KINDS}
    out["total"] = sum(out[k] for k in BUSY)
    return out


@dataclass(frozen=True)
class Delta:
    """CPU ns by kind (with ``total``), overall and per CPU, and context switches."""

    cpu_ns: dict[str, float]
    cpu_ns_by_cpu: dict[int, dict[str, float]]
    ctxt: int


def delta(start: Snapshot, stop: Snapshot) -> Delta:
    by_cpu = {
        cpu: _delta_ns(start.by_cpu[cpu], ticks)
        for cpu, ticks in stop.by_cpu.items()
        if cpu in start.by_cpu
    }
    return Delta(_delta_ns(start.total, stop.total), by_cpu, max(0, stop.ctxt - start.ctxt))
