"""The machine a run measured on, as the history keys it: the :class:`MachineKey` of the
run's environment record (bench/host/identity.py defines it)."""

from __future__ import annotations

from bench.errors import UsageError
from bench.host.identity import MachineKey
from bench.results.run import Run

__all__ = ["MachineKey", "machine_key"]


def machine_key(run: Run, env: str = "host") -> MachineKey:
    """The key of ``run``'s environment ``env`` (default host; a run without one, e.g.
    measured in a guest only, is keyed by its first environment)."""
    names = [n for n in run.env_names if run.environments.get(n)]
    if env not in names:
        if not names:
            raise UsageError(f"run {run.run_id} describes no environment: no machine to key")
        env = names[0]
    return MachineKey.of_record(run.environments[env])
