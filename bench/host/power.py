"""How the CPUs idle and keep time: cpuidle driver, governor and states, the PM QoS CPU
latency request in force, and the clocksource.  On a guest these decide much of a
loopback round trip (waking an idle vCPU can cost tens of microseconds)."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

CPU_SYS = Path("/sys/devices/system/cpu")
CLOCKSOURCE_SYS = Path("/sys/devices/system/clocksource/clocksource0")
CPU_DMA_LATENCY = Path("/dev/cpu_dma_latency")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def collect_cpuidle(cpu_sys: Path = CPU_SYS) -> dict[str, Any]:
    """cpuidle of the machine and cpu0's states (name, exit latency and target residency
    in µs, whether disabled).  Empty lists and None where the kernel has no cpuidle."""
    idle = cpu_sys / "cpuidle"
    states: list[dict[str, Any]] = []
    folder = cpu_sys / "cpu0" / "cpuidle"
    if folder.is_dir():
        for state in sorted(folder.glob("state*"), key=lambda p: int(p.name[5:] or 0)):
            states.append(
                {
                    "name": _read(state / "name"),
                    "description": _read(state / "desc"),
                    "latency_us": _int(_read(state / "latency")),
                    "residency_us": _int(_read(state / "residency")),
                    "disabled": _read(state / "disable") == "1",
                }
            )
    return {
        "driver": _read(idle / "current_driver"),
        "governor": _read(idle / "current_governor") or _read(idle / "current_governor_ro"),
        "states": states,
    }


def collect_pm_qos_cpu_latency_us(device: Path = CPU_DMA_LATENCY) -> int | None:
    """The CPU latency limit in force (µs; 2000000000 means none requested), read from
    /dev/cpu_dma_latency without holding it; None when it cannot be read."""
    try:
        fd = os.open(device, os.O_RDONLY)
    except OSError:
        return None
    try:
        raw = os.read(fd, 4)
    except OSError:
        return None
    finally:
        os.close(fd)
    return struct.unpack("<i", raw)[0] if len(raw) == 4 else None


def collect_clocksource(folder: Path = CLOCKSOURCE_SYS) -> dict[str, Any]:
    return {
        "current": _read(folder / "current_clocksource"),
        "available": (_read(folder / "available_clocksource") or "").split(),
    }
