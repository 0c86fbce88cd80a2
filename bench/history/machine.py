"""The machine a run measured on, as the history keys it: a :class:`MachineKey` of
hostname, CPU model and count, and kernel release, read from the run's environment record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.errors import UsageError
from bench.results.run import Run

UNKNOWN = "unknown"  # a field the environment record does not have


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
    def of_record(cls, record: dict[str, Any]) -> MachineKey:
        """The key of an environment record of results.json (missing fields: unknown)."""
        try:
            count = int(record.get("cpu_count") or 0)
        except (TypeError, ValueError):
            count = 0
        return cls(
            hostname=str(record.get("hostname") or UNKNOWN),
            cpu_model=str(record.get("cpu_model") or UNKNOWN),
            cpu_count=count,
            kernel=str(record.get("kernel") or UNKNOWN),
        )


def machine_key(run: Run, env: str = "host") -> MachineKey:
    """The key of ``run``'s environment ``env`` (default host; a run without one, e.g.
    measured in a guest only, is keyed by its first environment)."""
    names = [n for n in run.env_names if run.environments.get(n)]
    if env not in names:
        if not names:
            raise UsageError(f"run {run.run_id} describes no environment: no machine to key")
        env = names[0]
    return MachineKey.of_record(run.environments[env])
