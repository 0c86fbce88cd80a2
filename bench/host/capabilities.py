"""What the running kernel and machine allow: root, loadable modules, BPF, tools."""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
from dataclasses import dataclass
from functools import cache
from pathlib import Path


@dataclass(frozen=True)
class HostCapabilities:
    kernel: str
    is_root: bool
    loadable_modules: bool
    modules_reason: str
    bpf: bool
    bpf_reason: str

    def has_command(self, name: str) -> bool:
        return shutil.which(name) is not None

    @staticmethod
    def has_python_package(name: str) -> bool:
        return importlib.util.find_spec(name) is not None


def _modules_support() -> tuple[bool, str]:
    if not Path("/proc/modules").exists():
        return False, "kernel built without CONFIG_MODULES (no /proc/modules)"
    disabled = Path("/proc/sys/kernel/modules_disabled")
    if disabled.exists() and disabled.read_text().strip() == "1":
        return False, "module loading disabled (kernel.modules_disabled=1)"
    release = platform.release()
    if not Path(f"/lib/modules/{release}/build").exists():
        return False, f"no kernel headers for the running kernel ({release})"
    return True, ""


def _bpf_support(is_root: bool) -> tuple[bool, str]:
    if not is_root:
        return False, "loading BPF programs needs root"
    if not Path("/sys/kernel/btf/vmlinux").exists() and not Path("/sys/fs/bpf").exists():
        return False, "kernel without BPF filesystem or BTF"
    return True, ""


@cache
def capabilities() -> HostCapabilities:
    """The capabilities of this machine, probed once per process."""
    is_root = os.geteuid() == 0
    modules, modules_reason = _modules_support()
    bpf, bpf_reason = _bpf_support(is_root)
    return HostCapabilities(
        kernel=platform.release(),
        is_root=is_root,
        loadable_modules=modules,
        modules_reason=modules_reason,
        bpf=bpf,
        bpf_reason=bpf_reason,
    )
