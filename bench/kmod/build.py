"""Builds an impl's kernel module against one kernel release, out of tree and cached.

The build runs in a temporary copy of the impl folder (never in the repository) with
``make -C /lib/modules/REL/build M=COPY modules`` and lands in
``cache_dir()/kmod/REL/DIGEST/NAME.ko``.  DIGEST covers the impl's sources, the shared
headers (the protocol's and the modules' common code, include/hello_kmod.h) and the
kernel's Module.symvers, so the same sources built for the same kernel always map to the
same path: a guest that sees the host's cache (bench/vm shares the host root and sets
$HELLOBENCH_CACHE) finds a module the host built before booting it.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from bench.errors import HellobenchError
from bench.native.build import NATIVE_DIR, cache_dir
from bench.system.files import atomic_path, write_atomic

MODULES_ROOT = Path("/lib/modules")
PROTO_HEADER = NATIVE_DIR / "hello_proto.h"
KMOD_HEADER = Path(__file__).resolve().parent / "include" / "hello_kmod.h"
# Copied next to the impl's sources for a build; part of every module's digest.
SHARED_HEADERS = (PROTO_HEADER, KMOD_HEADER)
SOURCE_SUFFIXES = (".c", ".h")
BUILD_FILES = ("Kbuild", "Makefile")
BUILD_TIMEOUT_S = 600.0


class KmodBuildError(HellobenchError):
    """Headers are missing or the kernel build failed; the message carries its output."""


@dataclass(frozen=True)
class BuiltModule:
    """A built module and the build's output (empty when it came from the cache)."""

    path: Path
    log: str
    cached: bool


def headers_dir(kernel_release: str) -> Path:
    """The kernel build tree for ``kernel_release``; KmodBuildError when absent."""
    build = MODULES_ROOT / kernel_release / "build"
    if not (build / "Makefile").exists():
        raise KmodBuildError(
            f"no kernel headers for {kernel_release}: {build} is missing "
            f"(install them: apt-get install linux-headers-{kernel_release})"
        )
    return build


def module_sources(folder: Path) -> list[Path]:
    """The files of ``folder`` that a module build reads, in a stable order."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix in SOURCE_SUFFIXES]
    files += [folder / name for name in BUILD_FILES if (folder / name).exists()]
    return sorted(files, key=lambda p: p.name)


@cache
def _symvers_digest(build: Path) -> str:
    symvers = build / "Module.symvers"
    try:
        return hashlib.sha256(symvers.read_bytes()).hexdigest()
    except OSError:
        return "no-symvers"


def build_digest(folder: Path, kernel_release: str) -> str:
    """The cache key of ``folder``'s module for ``kernel_release``."""
    h = hashlib.sha256()
    for src in [*module_sources(folder), *SHARED_HEADERS]:
        h.update(src.name.encode() + b"\0" + src.read_bytes() + b"\0")
    h.update(kernel_release.encode())
    h.update(_symvers_digest(headers_dir(kernel_release)).encode())
    return h.hexdigest()[:16]


def module_path(folder: Path, name: str, kernel_release: str) -> Path:
    """Where the build of ``name`` for ``kernel_release`` is (or will be) cached."""
    digest = build_digest(folder, kernel_release)
    return cache_dir() / "kmod" / kernel_release / digest / f"{name}.ko"


def _make(build: Path, work: Path, strict: bool) -> subprocess.CompletedProcess[str]:
    cmd = ["make", "-C", str(build), f"M={work}", f"HELLO_PROTO_DIR={work}"]
    cmd += [f"HELLO_KMOD_DIR={work}", "modules"]
    if strict:
        cmd.insert(-1, "W=1")
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
        )
    except FileNotFoundError as exc:
        raise KmodBuildError("make not found (apt-get install make gcc)") from exc
    except subprocess.TimeoutExpired as exc:
        raise KmodBuildError(f"kernel module build timed out after {BUILD_TIMEOUT_S:g} s") from exc


def build_module(
    folder: Path, name: str, kernel_release: str, *, strict: bool = False
) -> BuiltModule:
    """``name``.ko from the sources in ``folder``, built against ``kernel_release``.

    Cached: a build only happens when no module for these sources and this kernel exists.
    ``strict`` adds the kernel's W=1 warnings (the tests require a build without any).
    """
    build = headers_dir(kernel_release)
    target = module_path(folder, name, kernel_release)
    if target.exists():
        return BuiltModule(target, "", cached=True)
    with tempfile.TemporaryDirectory(prefix=f"hellobench-kmod-{name}-") as tmp:
        work = Path(tmp)
        for src in [*module_sources(folder), *SHARED_HEADERS]:
            shutil.copy2(src, work / src.name)
        proc = _make(build, work, strict)
        log = proc.stdout + proc.stderr
        built = work / f"{name}.ko"
        if proc.returncode != 0 or not built.exists():
            raise KmodBuildError(
                f"building {name}.ko for {kernel_release} failed (make exited "
                f"{proc.returncode}):\n{log[-3000:]}"
            )
        write_atomic(target.parent / "build.log", log)
        with atomic_path(target) as partial:
            shutil.copyfile(built, partial)
    return BuiltModule(target, log, cached=False)


def build_warnings(log: str) -> list[str]:
    """The compiler's warning and error lines in a build log."""
    return [line for line in log.splitlines() if "warning:" in line or "error:" in line]
