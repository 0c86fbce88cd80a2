"""A loaded HELLO kernel module seen as a RunningServer: started by insmod, stopped by rmmod.

The module opens its socket in the network namespace of the process that loads it, so a
ServerConfig with ``netns`` runs insmod through ``ip netns exec``.  Only one instance of a
module can be loaded at a time.  The module is recorded in the ledger (kind
``module``) before insmod, so a killed run's module is unloaded by the next sweep.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bench.impl.api import Accounting, ImplError, RunningServer, ServerConfig
from bench.kmod.cleanup import CLEANER, LEDGER_KIND
from bench.kmod.module import (
    ModuleError,
    insmod,
    is_loaded,
    load_dependencies,
    read_attrs,
    rmmod,
    write_param,
)
from bench.system import ledger
from bench.system.netns import exec_prefix

# sysfs attributes that describe the server rather than count requests
STATE_ATTRS = ("thread_pid", "running")
# ServerConfig.options passed on to the module as parameters
MODULE_OPTIONS = ("fault_hang",)


def module_params(config: ServerConfig) -> dict[str, str | int]:
    """The insmod parameters for ``config``."""
    if not 1 <= config.port <= 65535:
        raise ImplError(f"port {config.port} outside 1..65535")
    params: dict[str, str | int] = {
        "port": config.port,
        "addr": config.addr,
        "cpu": -1 if config.cpu is None else config.cpu,
    }
    for key in MODULE_OPTIONS:
        if key in config.options:
            params[key] = int(config.options[key])
    return params


class ModuleServer(RunningServer):
    """The module ``name`` loaded from ``ko``; ``threaded`` when it serves from a kthread;
    ``fixed``: parameters the impl sets whatever the config (they win over it)."""

    def __init__(
        self,
        name: str,
        ko: Path,
        config: ServerConfig,
        *,
        threaded: bool,
        note: str = "",
        fixed: Mapping[str, str | int] | None = None,
    ) -> None:
        self.name = name
        self.threaded = threaded
        self._note = note
        self._stopped = False
        self.unload_s: float | None = None  # how long rmmod took, once stopped
        params = {**module_params(config), **(fixed or {})}
        if is_loaded(name):
            raise ImplError(
                f"module {name} is already loaded (by another run, or left over: "
                "unload it with rmmod or `python -m bench cleanup`)"
            )
        ledger.record(LEDGER_KIND, name, CLEANER, ko=str(ko), params=params, netns=config.netns)
        try:
            load_dependencies(ko)
            insmod(ko, params, prefix=exec_prefix(config.netns))
        except ModuleError as exc:
            if not is_loaded(name):
                ledger.release(LEDGER_KIND, name)
            raise ImplError(str(exc)) from exc
        self.tid = read_attrs(name).get("thread_pid", 0) if threaded else 0
        if threaded and self.tid <= 0:
            self.stop()
            raise ImplError(f"module {name} loaded but reports no server thread")

    def accounting(self) -> Accounting:
        if self.threaded:
            return Accounting(kernel_tids=(self.tid,), note=self._note)
        return Accounting(note=self._note)

    def counters(self) -> dict[str, int]:
        attrs = read_attrs(self.name)
        return {key: value for key, value in attrs.items() if key not in STATE_ATTRS}

    def health(self) -> str | None:
        if self._stopped:
            return f"module {self.name} was stopped"
        if not is_loaded(self.name):
            return f"module {self.name} is no longer loaded"
        attrs = read_attrs(self.name)
        if attrs.get("running") == 0:
            what = "server thread exited" if self.threaded else "socket closed"
            return f"module {self.name} is loaded but its {what}"
        if self.threaded and not Path(f"/proc/{self.tid}").exists():
            return f"module {self.name}: server thread {self.tid} is gone"
        return None

    def set_fault(self, value: int) -> None:
        """Tests only: set the module's ``fault_hang`` switch while it runs."""
        try:
            write_param(self.name, "fault_hang", value)
        except ModuleError as exc:
            raise ImplError(str(exc)) from exc

    def stop(self) -> None:
        """rmmod, bounded by a timeout; idempotent.  The ledger record stays when it fails."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self.unload_s = rmmod(self.name)
        except ModuleError as exc:
            raise ImplError(str(exc)) from exc
        ledger.release(LEDGER_KIND, self.name)
