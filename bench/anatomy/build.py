"""Builds the anatomy's BPF object (against a vmlinux.h generated from this kernel's BTF by
bpftool, cached by the BTF's hash) and its loader, anatomyctl (libbpf).

The object is CO-RE: every field it reads is relocated against the running kernel's BTF when
it is loaded, so one built here also loads on another kernel.  A guest is handed the host's
build through ``PREBUILT_OBJECT_ENV`` instead of compiling its own under emulation."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
from pathlib import Path

from bench.bpf.build import LOADER_LIBS, build_bpf_object, loader_unavailable_reason
from bench.native.build import BuildError, build_executable, cache_dir
from bench.system.files import atomic_path

ANATOMY_DIR = Path(__file__).resolve().parent
KERNEL_BTF = Path("/sys/kernel/btf/vmlinux")
BPF_SOURCE = ANATOMY_DIR / "hb_anatomy.bpf.c"
LOADER_SOURCE = ANATOMY_DIR / "anatomyctl.c"
PREBUILT_OBJECT_ENV = "HELLOBENCH_ANATOMY_OBJECT"  # an object built elsewhere, to load as is


def unavailable_reason() -> str | None:
    """Why the anatomy cannot be traced here, or None."""
    if platform.machine() not in ("x86_64", "amd64"):
        return f"the anatomy's syscall hooks know x86-64 only, not {platform.machine()}"
    if not KERNEL_BTF.exists():
        return "the kernel has no BTF (/sys/kernel/btf/vmlinux): tp_btf and fentry need it"
    if shutil.which("bpftool") is None:
        return "bpftool is missing (it writes vmlinux.h from the kernel's BTF)"
    return loader_unavailable_reason()


def vmlinux_header() -> Path:
    """The folder holding vmlinux.h for the running kernel's BTF."""
    btf = KERNEL_BTF.read_bytes()
    folder = cache_dir() / "vmlinux" / hashlib.sha256(btf).hexdigest()[:16]
    header = folder / "vmlinux.h"
    if header.exists():
        return folder
    cmd = ["bpftool", "btf", "dump", "file", str(KERNEL_BTF), "format", "c"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} failed: {proc.stderr.strip()[-500:]}")
    with atomic_path(header) as tmp:
        tmp.write_text(proc.stdout)
    return folder


def build_object() -> Path:
    """hb_anatomy.bpf.o for this kernel (cached), or the one ``PREBUILT_OBJECT_ENV`` names."""
    reason = unavailable_reason()
    if reason:
        raise BuildError(reason)
    prebuilt = os.environ.get(PREBUILT_OBJECT_ENV)
    if prebuilt:
        if not Path(prebuilt).is_file():
            raise BuildError(f"{PREBUILT_OBJECT_ENV}={prebuilt}: no such object")
        return Path(prebuilt)
    return build_bpf_object(BPF_SOURCE, (f"-I{vmlinux_header()}", "-D__TARGET_ARCH_x86"))


def build_loader() -> Path:
    """anatomyctl, linked against libbpf (cached)."""
    reason = loader_unavailable_reason()
    if reason:
        raise BuildError(reason)
    return build_executable(
        "hb-anatomyctl", [LOADER_SOURCE], extra_flags=(f"-I{ANATOMY_DIR}",), libs=LOADER_LIBS
    )
