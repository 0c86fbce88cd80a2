"""hellobench_kthread.ko: a kernel thread serves HELLO; its thread id goes to the probes.

Module parameters port/addr/cpu come from the ServerConfig; ``options["fault_hang"]``
(tests only) loads it with the fault switch set.  The manifest's ``wait`` option (``block``
for kmod-kthread, ``poll`` for kmod-kthread-poll) becomes the module's ``wait`` parameter.
See hellobench_kthread.c.
"""

from __future__ import annotations

from bench.impl.api import Impl, ImplError
from bench.impl.manifest import Manifest
from bench.kmod.impl import KernelModuleImpl

WAIT_MODES = ("block", "poll")


class KmodKthread(KernelModuleImpl):
    module_name = "hellobench_kthread"
    threaded = True
    accounting_note = "kernel thread hellokt/PORT: its switches and CPU are the server's"

    def module_options(self) -> dict[str, str | int]:
        wait = self.manifest.options.get("wait", "block")
        if wait not in WAIT_MODES:
            raise ImplError(f"{self.manifest.name}: option wait={wait!r} not in {WAIT_MODES}")
        return {"wait": wait}


def create(manifest: Manifest) -> Impl:
    return KmodKthread(manifest)
