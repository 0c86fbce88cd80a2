"""Which machine an environment record describes, defined once: the history keys its lines
by it and a comparison names what differs between two runs' machines by it.

A :class:`MachineKey` is the machine (hostname, CPU model and count) under one kernel
release: its fields are the keys bench/host/metadata.py flags as identity.  How the suite
ran on it (``accel``: native, kvm or tcg) is not the machine, but two runs under different
accelerators are not comparable as one machine's either: :func:`differences` names both."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from bench.host import metadata

UNKNOWN = "unknown"  # a field the environment record does not have
ACCEL = metadata.ACCEL  # the environment record's field naming how the suite ran there


@dataclass(frozen=True)
class MachineKey:
    """What makes two runs' numbers comparable as one line over time: the same machine
    (hostname, CPU model and count) under the same kernel release."""

    hostname: str
    cpu_model: str
    cpu_count: int
    kernel: str

    def describe(self) -> str:
        """One phrase naming the machine and kernel, for messages."""
        return f"{self.hostname} ({self.cpu_count}x {self.cpu_model}), kernel {self.kernel}"

    def label(self) -> str:
        """Short: hostname and kernel release (a figure's legend, a table cell)."""
        return f"{self.hostname} · {self.kernel.split()[0] if self.kernel else UNKNOWN}"

    @classmethod
    def of_record(cls, record: Mapping[str, Any]) -> MachineKey:
        """The key of an environment record of results.json (missing fields: unknown)."""
        values: dict[str, Any] = {n: _read(record, metadata.ENVIRONMENT[n]) for n in IDENTITY}
        return cls(**values)


IDENTITY = metadata.IDENTITY
if tuple(f.name for f in fields(MachineKey)) != IDENTITY:
    raise ImportError(f"MachineKey's fields are not the registry's identity keys {IDENTITY}")


def _read(record: Mapping[str, Any], key: metadata.Key) -> Any:
    """An identity field of ``record``: a count as an int (0 when unreadable), anything else
    as text (``UNKNOWN`` when absent or empty)."""
    value = record.get(key.name)
    if key.types == metadata.INT:
        try:
            return int(value or 0)
        except (TypeError, ValueError):
            return 0
    return str(value or UNKNOWN)


def differences(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """What differs between two environment records' machines and accelerators, one
    ``"field old -> new"`` each (empty: the same machine, run the same way)."""
    a, b = MachineKey.of_record(before), MachineKey.of_record(after)
    found = [
        f"{f} {getattr(a, f)} -> {getattr(b, f)}"
        for f in IDENTITY
        if getattr(a, f) != getattr(b, f)
    ]
    accel_a, accel_b = before.get(ACCEL) or UNKNOWN, after.get(ACCEL) or UNKNOWN
    if accel_a != accel_b:
        found.append(f"{ACCEL} {accel_a} -> {accel_b}")
    return found
