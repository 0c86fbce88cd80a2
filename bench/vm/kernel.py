"""Finds the kernel a guest boots: a stock distro kernel with its modules (and headers)."""

from __future__ import annotations

import hashlib
import lzma
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from bench.errors import HellobenchError
from bench.native.build import cache_dir
from bench.system.files import write_atomic

BOOT_DIR = Path("/boot")
MODULES_ROOT = Path("/lib/modules")

# Debian's stock flavours, best first: the generic one carries every driver a test needs.
_STOCK = re.compile(r"^\d+\.\d+\.\d+-\d+-(amd64|cloud-amd64|rt-amd64)$")
_FLAVOUR_RANK = {"amd64": 0, "cloud-amd64": 1, "rt-amd64": 2}


class GuestKernelError(HellobenchError):
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


# Compressed payloads a bzImage may carry: (magic, decompress the stream starting there).
def _xz(data: bytes) -> bytes:
    return lzma.LZMADecompressor().decompress(data)


def _gzip(data: bytes) -> bytes:
    return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)


_PAYLOADS = ((b"\xfd7zXZ\x00", _xz), (b"\x1f\x8b\x08", _gzip))
_XEN_ELFNOTE_PHYS32_ENTRY = 18


def has_pvh_entry(elf: bytes) -> bool:
    """True when the ELF image has the Xen PVH entry note that lets QEMU boot it directly."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        return False
    phoff = struct.unpack_from("<Q", elf, 32)[0]
    phentsize, phnum = struct.unpack_from("<HH", elf, 54)
    for i in range(phnum):
        base = phoff + i * phentsize
        p_type, _flags, p_offset = struct.unpack_from("<IIQ", elf, base)
        p_filesz = struct.unpack_from("<Q", elf, base + 32)[0]
        if p_type != 4:  # PT_NOTE
            continue
        pos, end = p_offset, p_offset + p_filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12 : pos + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and ntype == _XEN_ELFNOTE_PHYS32_ENTRY:
                return True
            pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def _extract_vmlinux(vmlinuz: bytes) -> bytes | None:
    for magic, decompress in _PAYLOADS:
        start = vmlinuz.find(magic)
        while start >= 0:
            try:
                elf = decompress(vmlinuz[start:])
            except (lzma.LZMAError, zlib.error, EOFError):
                elf = b""
            if has_pvh_entry(elf):
                return elf
            start = vmlinuz.find(magic, start + 1)
    return None


def boot_image(kernel: GuestKernel) -> Path:
    """The image to hand QEMU: the uncompressed vmlinux when the kernel supports PVH boot
    (extracted once and cached: it spares the guest decompressing itself, seconds under
    TCG), else the vmlinuz.  $HELLOBENCH_VM_PVH=0 always uses the vmlinuz."""
    if os.environ.get("HELLOBENCH_VM_PVH") == "0":
        return kernel.vmlinuz
    raw = kernel.vmlinuz.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()[:16]
    target = cache_dir() / "vm" / f"vmlinux-{kernel.release}-{digest}"
    failed = target.with_name(target.name + ".no-pvh")
    if target.exists():
        return target
    if failed.exists():
        return kernel.vmlinuz
    target.parent.mkdir(parents=True, exist_ok=True)
    elf = _extract_vmlinux(raw)
    if elf is None:
        failed.write_text("no PVH-bootable vmlinux inside this vmlinuz\n")
        return kernel.vmlinuz
    write_atomic(target, elf)
    return target
