"""Finds the kernel a guest boots: a stock distro kernel with its modules (and headers)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

BOOT_DIR = Path("/boot")
MODULES_ROOT = Path("/lib/modules")

# Debian's stock flavours, best first: the generic one carries every driver a test needs.
_STOCK = re.compile(r"^\d+\.\d+\.\d+-\d+-(amd64|cloud-amd64|rt-amd64)$")
_FLAVOUR_RANK = {"amd64": 0, "cloud-amd64": 1, "rt-amd64": 2}


class GuestKernelError(RuntimeError):
    """No bootable guest kernel with modules is installed; the message says what to install."""


@dataclass(frozen=True)
class GuestKernel:
    """A kernel image with the module tree of the same release."""

    release: str
    vmlinuz: Path
    modules_dir: Path
    headers_dir: Path | None


def _version_key(release: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", release))


def _headers_for(release: str, modules_dir: Path) -> Path | None:
    for candidate in (modules_dir / "build", Path("/usr/src") / f"linux-headers-{release}"):
        if (candidate / "Makefile").exists():
            return candidate.resolve()
    return None


def _candidate(vmlinuz: Path, modules_root: Path) -> GuestKernel | None:
    release = vmlinuz.name.removeprefix("vmlinuz-")
    modules_dir = modules_root / release
    if not (modules_dir / "modules.dep").exists() or not os.access(vmlinuz, os.R_OK):
        return None
    return GuestKernel(release, vmlinuz, modules_dir, _headers_for(release, modules_dir))


def guest_kernels(
    boot_dir: Path | None = None, modules_root: Path | None = None
) -> list[GuestKernel]:
    """Every usable kernel, best first: Debian stock kernels, newest first, then the rest."""
    boot_dir = boot_dir or BOOT_DIR
    modules_root = modules_root or MODULES_ROOT
    found = [
        kernel
        for path in boot_dir.glob("vmlinuz-*")
        if (kernel := _candidate(path, modules_root)) is not None
    ]

    def rank(kernel: GuestKernel) -> tuple[int, int, tuple[int, ...]]:
        match = _STOCK.match(kernel.release)
        stock = 0 if match else 1
        flavour = _FLAVOUR_RANK.get(match.group(1), 9) if match else 9
        return (stock, flavour, tuple(-n for n in _version_key(kernel.release)))

    return sorted(found, key=rank)


def find_guest_kernel(release: str | None = None) -> GuestKernel:
    """The kernel to boot: ``release`` (or $HELLOBENCH_GUEST_KERNEL) if given, else the best."""
    wanted = release or os.environ.get("HELLOBENCH_GUEST_KERNEL") or None
    kernels = guest_kernels()
    if wanted:
        for kernel in kernels:
            if kernel.release == wanted:
                return kernel
        raise GuestKernelError(
            f"guest kernel {wanted} not found: need {BOOT_DIR}/vmlinuz-{wanted} and "
            f"{MODULES_ROOT}/{wanted}/modules.dep"
        )
    if not kernels:
        raise GuestKernelError(
            f"no guest kernel: no {BOOT_DIR}/vmlinuz-* with a matching "
            f"{MODULES_ROOT}/<release>/modules.dep "
            "(install one: apt-get install linux-image-amd64 linux-headers-amd64)"
        )
    return kernels[0]
