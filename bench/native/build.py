"""Compiles C programs with the system compiler, cached by a hash of sources and flags."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from bench.errors import HellobenchError
from bench.system.files import atomic_path

NATIVE_DIR = Path(__file__).resolve().parent
DEFAULT_CFLAGS = ("-O2", "-g", "-Wall", "-Wextra", "-Werror", "-std=gnu11")
EXECUTABLE = 0o755


class BuildError(HellobenchError):
    """The compiler is missing or rejected the sources; the message carries its output."""


def cache_dir() -> Path:
    base = os.environ.get("HELLOBENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "hellobench"
    )
    return Path(base)


def compiler() -> str:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    raise BuildError("no C compiler found (install gcc: apt-get install gcc libc6-dev)")


def _digest(sources: Sequence[Path], flags: Sequence[str], cc: str) -> str:
    h = hashlib.sha256()
    for src in sources:
        h.update(src.name.encode())
        h.update(src.read_bytes())
    for header in sorted({*sources[0].parent.glob("*.h"), *NATIVE_DIR.glob("*.h")}):
        h.update(header.read_bytes())
    h.update(" ".join([cc, *flags]).encode())
    return h.hexdigest()[:16]


def build_executable(
    name: str, sources: Sequence[Path], extra_flags: Sequence[str] = (), libs: Sequence[str] = ()
) -> Path:
    """Path of ``name`` built from ``sources``; compiled only when no cached build matches."""
    cc = compiler()
    flags = [*DEFAULT_CFLAGS, f"-I{NATIVE_DIR}", *extra_flags]
    target = cache_dir() / "bin" / _digest(sources, flags, cc) / name
    if target.exists():
        return target
    with atomic_path(target, EXECUTABLE) as tmp:
        cmd = [cc, *flags, "-o", str(tmp), *map(str, sources), *libs]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(f"building {name} failed:\n{' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return target
