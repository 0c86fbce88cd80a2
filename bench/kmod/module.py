"""Loading, unloading and reading a kernel module: insmod/rmmod with timeouts, /proc/modules,
its parameters (/sys/module/NAME/parameters) and its counters (/sys/kernel/NAME)."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.errors import HellobenchError

PROC_MODULES = Path("/proc/modules")
SYS_MODULE = Path("/sys/module")
SYS_KERNEL = Path("/sys/kernel")
INSMOD_TIMEOUT_S = 30.0
RMMOD_TIMEOUT_S = 10.0


class ModuleError(HellobenchError):
    """A module could not be loaded or unloaded; the message says why."""


def loaded_modules() -> set[str]:
    """Names of the modules loaded now (empty without /proc/modules)."""
    try:
        text = PROC_MODULES.read_text()
    except OSError:
        return set()
    return {line.split(maxsplit=1)[0] for line in text.splitlines() if line.strip()}


def is_loaded(name: str) -> bool:
    return name in loaded_modules()


def _run(argv: Sequence[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run ``argv``, bounded: a child stuck in the kernel (rmmod of a wedged module sits in
    an uninterruptible wait) is killed and left behind rather than waited for forever."""
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    except FileNotFoundError as exc:
        raise ModuleError(f"{argv[0]} not found (apt-get install kmod)") from exc
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=1.0)
        raise ModuleError(
            f"{' '.join(argv)} did not return within {timeout_s:g} s: the module may be stuck"
        ) from exc
    return subprocess.CompletedProcess(list(argv), proc.returncode, out, err)


def dependencies(ko: Path) -> list[str]:
    """The modules ``ko`` needs loaded first (its modinfo ``depends``)."""
    proc = _run(["modinfo", "-F", "depends", str(ko)], INSMOD_TIMEOUT_S)
    if proc.returncode != 0:
        raise ModuleError(f"modinfo {ko} failed: {proc.stderr.strip()}")
    return [dep for dep in proc.stdout.strip().split(",") if dep]


def load_dependencies(ko: Path) -> None:
    """modprobe every module ``ko`` depends on (insmod resolves none)."""
    for dep in dependencies(ko):
        if is_loaded(dep):
            continue
        proc = _run(["modprobe", dep], INSMOD_TIMEOUT_S)
        if proc.returncode != 0:
            raise ModuleError(f"modprobe {dep} (needed by {ko.name}) failed: {proc.stderr.strip()}")


def kernel_log_lines(name: str, last: int = 3) -> list[str]:
    """The last kernel log lines that ``name`` printed (``name: ...``), best effort."""
    try:
        proc = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    lines = [line for line in proc.stdout.splitlines() if f"{name}: " in line]
    return lines[-last:]


def insmod(
    ko: Path,
    params: Mapping[str, str | int],
    *,
    prefix: Sequence[str] = (),
    timeout_s: float = INSMOD_TIMEOUT_S,
) -> None:
    """Load ``ko`` with ``params``; ``prefix`` runs insmod through e.g. ``ip netns exec NS``.

    A refusal raises ModuleError with insmod's message and the module's own log line.
    """
    argv = [*prefix, "insmod", str(ko), *(f"{key}={value}" for key, value in params.items())]
    proc = _run(argv, timeout_s)
    if proc.returncode != 0:
        name = ko.name.removesuffix(".ko")
        said = "; ".join(kernel_log_lines(name, last=1))
        raise ModuleError(f"{' '.join(argv)} failed: {proc.stderr.strip()} {said}".strip())


def rmmod(name: str, timeout_s: float = RMMOD_TIMEOUT_S) -> float:
    """Unload ``name`` if it is loaded; returns the seconds rmmod took (0 when not loaded).

    Raises ModuleError when rmmod fails or does not return within ``timeout_s``.
    """
    if not is_loaded(name):
        return 0.0
    started = time.monotonic()
    proc = _run(["rmmod", name], timeout_s)
    took = time.monotonic() - started
    if proc.returncode != 0 and is_loaded(name):
        raise ModuleError(f"rmmod {name} failed: {proc.stderr.strip()}")
    return took


def read_attrs(name: str) -> dict[str, int]:
    """Every integer attribute under /sys/kernel/``name`` (empty when it is not there)."""
    folder = SYS_KERNEL / name
    found: dict[str, int] = {}
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return found
    for entry in entries:
        try:
            found[entry.name] = int(entry.read_text().strip())
        except (OSError, ValueError):
            continue
    return found


def read_param(name: str, param: str) -> str | None:
    try:
        return (SYS_MODULE / name / "parameters" / param).read_text().strip()
    except OSError:
        return None


def write_param(name: str, param: str, value: str | int) -> None:
    path = SYS_MODULE / name / "parameters" / param
    try:
        path.write_text(f"{value}\n")
    except OSError as exc:
        raise ModuleError(f"cannot set {name}.{param}={value}: {exc}") from exc
