"""Compiles C programs with the system compiler, cached by a hash of sources and flags.

An executable may be built from several ``.c`` files (compiled and linked in one call).
The cache key covers every source, every header of the sources' folders and of the
include folders (``bench/native`` and each ``-I`` given), the compiler and the flags: a
changed source or header gives a new key, hence a rebuild.
"""

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


def include_dirs(sources: Sequence[Path], flags: Sequence[str]) -> list[Path]:
    """The folders whose headers the sources may include: their own and every ``-I``."""
    dirs = {src.resolve().parent for src in sources}
    dirs |= {Path(flag[2:]).resolve() for flag in flags if flag.startswith("-I") and flag[2:]}
    return sorted(dirs)


def _digest(sources: Sequence[Path], flags: Sequence[str], cc: str) -> str:
    h = hashlib.sha256()
    for src in sources:
        h.update(src.name.encode())
        h.update(src.read_bytes())
    for folder in include_dirs(sources, flags):
        for header in sorted(folder.glob("*.h")):
            h.update(header.name.encode())
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


SERVER_SCAFFOLD = NATIVE_DIR / "hb_server.c"


def server_sources(folder: Path) -> list[Path]:
    """A C server's sources: its folder's ``server.c`` and the shared scaffold."""
    return [folder / "server.c", SERVER_SCAFFOLD]


def build_server(name: str, folder: Path, libs: Sequence[str] = ()) -> Path:
    """The C server of impl ``folder`` (server.c linked with bench/native/hb_server.c)."""
    return build_executable(name, server_sources(folder), libs=libs)
