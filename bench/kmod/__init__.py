"""Kernel-module impls: building a module for a kernel release, loading and unloading it,
reading its sysfs counters, and the runner-facing Impl/RunningServer both kmod impls share.

- ``build.build_module``      an out-of-tree build against /lib/modules/REL/build, cached;
- ``module``                  insmod/rmmod with timeouts, /proc/modules, sysfs;
- ``server.ModuleServer``     a loaded module as a RunningServer;
- ``impl.KernelModuleImpl``   the Impl base class of impls/kmod-*/controller.py;
- ``cleanup``                 the ledger cleaner for kind ``module``.
"""
