"""hellobench_kthread.ko: a kernel thread serves HELLO; its thread id goes to the probes.

Module parameters port/addr/cpu come from the ServerConfig; ``options["fault_hang"]``
(tests only) loads it with the fault switch set.  See hellobench_kthread.c.
"""

from __future__ import annotations

from bench.impl.api import Impl
from bench.impl.manifest import Manifest
from bench.kmod.impl import KernelModuleImpl


class KmodKthread(KernelModuleImpl):
    module_name = "hellobench_kthread"
    threaded = True
    accounting_note = "kernel thread hellokt/PORT: its switches and CPU are the server's"


def create(manifest: Manifest) -> Impl:
    return KmodKthread(manifest)
