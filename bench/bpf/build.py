"""Compiles BPF objects (clang -target bpf) and the hb-bpfctl loader, cached by content hash."""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from bench.native.build import NATIVE_DIR, BuildError, build_executable, cache_dir
from bench.system.files import atomic_path

BPF_DIR = Path(__file__).resolve().parent
BPF_CFLAGS = ("-O2", "-g", "-Wall", "-Werror", "-target", "bpf")
LOADER_LIBS = ("-lbpf", "-lelf", "-lz")
LIBBPF_INCLUDE = Path("/usr/include/bpf")
# the oldest libbpf hb-bpfctl builds against (bpfctl.c refuses older ones with #error):
# 1.0 made bpf_object__open_file() return NULL and the attach calls -errno
LIBBPF_MIN_VERSION = (1, 0)


def clang() -> str:
    """The compiler for BPF objects: $BPF_CLANG, else clang."""
    for name in (os.environ.get("BPF_CLANG"), "clang"):
        if name and shutil.which(name):
            return name
    raise BuildError("no clang found (install clang and llvm: apt-get install clang llvm)")


@cache
def _multiarch_include() -> list[str]:
    """The multiarch include folder (asm/types.h) that -target bpf does not search by itself."""
    triplet = ""
    if shutil.which("cc"):
        proc = subprocess.run(["cc", "-print-multiarch"], capture_output=True, text=True)
        triplet = proc.stdout.strip() if proc.returncode == 0 else ""
    if not triplet:
        triplet = f"{platform.machine()}-linux-gnu"
    folder = Path("/usr/include") / triplet
    return [f"-I{folder}"] if folder.is_dir() else []


@cache
def _clang_version(cc: str) -> str:
    return subprocess.run([cc, "--version"], capture_output=True, text=True).stdout


def _digest(source: Path, flags: Sequence[str], cc: str) -> str:
    h = hashlib.sha256()
    h.update(source.name.encode())
    h.update(source.read_bytes())
    headers = {*source.parent.glob("*.h"), *BPF_DIR.glob("*.h"), *NATIVE_DIR.glob("*.h")}
    for header in sorted(headers):
        h.update(header.name.encode())
        h.update(header.read_bytes())
    h.update(" ".join([cc, *flags]).encode())
    h.update(_clang_version(cc).encode())
    return h.hexdigest()[:16]


def build_bpf_object(source: Path, extra_flags: Sequence[str] = ()) -> Path:
    """The BPF object compiled from ``source``; compiled only when no cached build matches."""
    cc = clang()
    flags = [
        *BPF_CFLAGS,
        f"-I{BPF_DIR}",
        f"-I{NATIVE_DIR}",
        f"-I{source.parent}",
        *_multiarch_include(),
        *extra_flags,
    ]
    name = source.name.removesuffix(".c") + ".o"
    target = cache_dir() / "bpf" / _digest(source, flags, cc) / name
    if target.exists():
        return target
    with atomic_path(target) as tmp:
        cmd = [cc, *flags, "-c", str(source), "-o", str(tmp)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(
                f"compiling {source.name} failed:\n{' '.join(cmd)}\n{proc.stderr[-2000:]}"
            )
    return target


def libbpf_version(include: Path = LIBBPF_INCLUDE) -> tuple[int, int] | None:
    """The libbpf version its headers declare (libbpf_version.h, since 0.6), or None."""
    try:
        text = (include / "libbpf_version.h").read_text()
    except OSError:
        return None
    found = dict(re.findall(r"#define\s+LIBBPF_(MAJOR|MINOR)_VERSION\s+(\d+)", text))
    if set(found) != {"MAJOR", "MINOR"}:
        return None
    return int(found["MAJOR"]), int(found["MINOR"])


def loader_unavailable_reason(include: Path = LIBBPF_INCLUDE) -> str | None:
    """Why hb-bpfctl cannot be built here, or None."""
    if not (include / "libbpf.h").exists():
        return "libbpf headers missing (apt-get install libbpf-dev libelf-dev zlib1g-dev)"
    version = libbpf_version(include)
    need = ".".join(map(str, LIBBPF_MIN_VERSION))
    if version is None:
        return f"libbpf older than 0.6 (no libbpf_version.h); hb-bpfctl needs {need} or later"
    if version < LIBBPF_MIN_VERSION:
        have = ".".join(map(str, version))
        return f"libbpf {have} is too old; hb-bpfctl needs {need} or later"
    return None


def bpfctl() -> Path:
    """The hb-bpfctl loader (bench/bpf/bpfctl.c linked against libbpf), built on first use."""
    reason = loader_unavailable_reason()
    if reason:
        raise BuildError(reason)
    return build_executable("hb-bpfctl", [BPF_DIR / "bpfctl.c"], libs=LOADER_LIBS)
