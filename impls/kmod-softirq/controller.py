"""hellobench_softirq.ko: HELLO answered in the receive softirq, with no server thread.

Module parameters port/addr/cpu come from the ServerConfig (cpu is validated but cannot
place a softirq); ``options["fault_hang"]`` (tests only) loads it with the fault switch set.
See hellobench_softirq.c.
"""

from __future__ import annotations

from bench.impl.api import Impl
from bench.impl.manifest import Manifest
from bench.kmod.impl import KernelModuleImpl


class KmodSoftirq(KernelModuleImpl):
    module_name = "hellobench_softirq"
    threaded = False
    accounting_note = "no server thread: cost shows in softirq CPU"


def create(manifest: Manifest) -> Impl:
    return KmodSoftirq(manifest)
