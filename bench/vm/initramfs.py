"""Builds the guest's initramfs: static busybox, the modules to reach the 9p shares, /init.

The archive (newc cpio, gzip) is written once per content under
``bench.native.build.cache_dir()/vm/`` and reused while busybox, the modules and the init
script stay the same.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.errors import HellobenchError
from bench.native.build import cache_dir
from bench.system.files import write_atomic
from bench.vm.init_script import INIT_SCRIPT, MODPROBE_HELPER
from bench.vm.kernel import GuestKernel

# What the initramfs itself must load: virtio PCI, 9p over virtio, overlayfs.
INITRAMFS_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")
# Loaded by /init from the shared /lib/modules once the host root is mounted.
PRELOAD_MODULES = ("veth", "sch_ingress", "cls_bpf")
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")


class InitramfsError(HellobenchError):
    """A part of the initramfs is missing; the message says what to install."""


@dataclass(frozen=True)
class _Entry:
    name: str
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def _is_static_elf(path: Path) -> bool:
    """True for an ELF executable without a program interpreter (statically linked)."""
    with path.open("rb") as f:
        head = f.read(64)
        if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2:
            return False
        endian = "<" if head[5] == 1 else ">"
        (phoff,) = struct.unpack_from(endian + "Q", head, 32)
        phentsize, phnum = struct.unpack_from(endian + "HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for i in range(phnum):
        (p_type,) = struct.unpack_from(endian + "I", table, i * phentsize)
        if p_type == 3:  # PT_INTERP
            return False
    return True


def find_busybox() -> Path:
    for name in (os.environ.get("HELLOBENCH_BUSYBOX"), *BUSYBOX_CANDIDATES):
        if name and Path(name).is_file() and _is_static_elf(Path(name)):
            return Path(name)
    raise InitramfsError(
        "no statically linked busybox (install it: apt-get install busybox-static)"
    )


def module_files(kernel: GuestKernel, names: tuple[str, ...]) -> list[Path]:
    """The module files for ``names`` and their dependencies, in load order, without repeats."""
    ordered: list[Path] = []
    for name in names:
        proc = subprocess.run(
            ["modprobe", "-S", kernel.release, "-d", "/", "--show-depends", name],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise InitramfsError(
                f"cannot resolve module {name} for {kernel.release}: {proc.stderr.strip()} "
                "(is kmod installed and modules.dep complete?)"
            )
        for line in proc.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "insmod":
                path = Path(parts[1])
                if path not in ordered:
                    ordered.append(path)
    return ordered


def _uncompressed(path: Path) -> tuple[str, bytes]:
    """(name.ko, content) of a module file that may be compressed."""
    raw = path.read_bytes()
    name = path.name
    if name.endswith(".ko.xz"):
        return name[:-3], lzma.decompress(raw)
    if name.endswith(".ko.gz"):
        return name[:-3], gzip.decompress(raw)
    if name.endswith(".ko.zst"):
        if not shutil.which("zstd"):
            raise InitramfsError(f"{path} is zstd-compressed: install zstd")
        out = subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True)
        return name[:-4], out.stdout
    return name, raw


def _entries(kernel: GuestKernel, busybox: Path) -> list[_Entry]:
    entries = [
        _Entry(d, 0o040755)
        for d in ("bin", "dev", "etc", "etc/hellobench", "lib", "lib/modules", "proc", "sys")
    ]
    entries.append(_Entry("dev/console", 0o020600, rdev=(5, 1)))
    entries.append(_Entry("bin/busybox", 0o100755, busybox.read_bytes()))
    entries.append(_Entry("bin/sh", 0o120777, b"busybox"))
    entries.append(_Entry("init", 0o100755, INIT_SCRIPT.encode()))
    entries.append(_Entry("bin/hb-modprobe", 0o100755, MODPROBE_HELPER.encode()))
    order: list[str] = []
    for path in module_files(kernel, INITRAMFS_MODULES):
        name, data = _uncompressed(path)
        entries.append(_Entry(f"lib/modules/{name}", 0o100644, data))
        order.append(name)
    entries.append(_Entry("etc/hellobench/modules", 0o100644, "\n".join(order).encode() + b"\n"))
    preload = "\n".join(PRELOAD_MODULES).encode() + b"\n"
    entries.append(_Entry("etc/hellobench/preload", 0o100644, preload))
    entries.append(_Entry("etc/hellobench/kernel", 0o100644, kernel.release.encode() + b"\n"))
    return entries


def _pad4(n: int) -> bytes:
    return b"\0" * (-n % 4)


def cpio_newc(entries: list[_Entry]) -> bytes:
    """A newc ("070701") cpio archive of ``entries``, owned by root, mtime 0."""
    out = bytearray()
    for ino, entry in enumerate([*entries, _Entry("TRAILER!!!", 0)], start=1):
        name = entry.name.encode() + b"\0"
        fields = (
            ino, entry.mode, 0, 0, 2 if entry.mode & 0o040000 else 1, 0, len(entry.data),
            0, 0, entry.rdev[0], entry.rdev[1], len(name), 0,
        )  # fmt: skip
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        out += header + name + _pad4(len(header) + len(name))
        out += entry.data + _pad4(len(entry.data))
    return bytes(out)


def build_initramfs(kernel: GuestKernel) -> Path:
    """Path of the gzipped initramfs for ``kernel``; built only when no cached one matches."""
    archive = cpio_newc(_entries(kernel, find_busybox()))
    digest = hashlib.sha256(archive).hexdigest()[:16]
    target = cache_dir() / "vm" / f"initramfs-{kernel.release}-{digest}.cpio.gz"
    if target.exists():
        return target
    write_atomic(target, gzip.compress(archive, compresslevel=6, mtime=0))
    return target
