"""Metadata about the machine a run measured on, collected by small ``collect_*`` functions."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path
from typing import Any

from bench.host.power import collect_clocksource, collect_cpuidle, collect_pm_qos_cpu_latency_us
from bench.host.virtualization import detect_virtualization

Accel = str  # how the suite itself ran the environment: "native" (no QEMU of ours) | "kvm" | "tcg"


def collect_cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def collect_mitigations() -> dict[str, str]:
    folder = Path("/sys/devices/system/cpu/vulnerabilities")
    if not folder.is_dir():
        return {}
    return {p.name: p.read_text().strip() for p in sorted(folder.iterdir()) if p.is_file()}


def collect_cpu_governor() -> str | None:
    path = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    return path.read_text().strip() if path.exists() else None


def collect_boot_params() -> str:
    try:
        return Path("/proc/cmdline").read_text().strip()
    except OSError:
        return ""


def collect_environment(name: str, accel: Accel, placement: dict[str, Any]) -> dict[str, Any]:
    """The ``environments[name]`` record of results.json (calibration is added by the runner).

    ``accel`` says how the suite ran the environment; ``virtualization`` says what the
    kernel itself runs on (a host environment can be a cloud VM).  Every key is registered
    in bench/host/metadata.py (``ENVIRONMENT``)."""
    return {
        "name": name,
        "kernel": platform.release(),
        "kernel_version": platform.version(),
        "accel": accel,
        "emulated": accel == "tcg",
        "cpu_model": collect_cpu_model(),
        "cpu_count": os.cpu_count() or 1,
        "cpu_governor": collect_cpu_governor(),
        "virtualization": detect_virtualization().to_json(),
        "cpuidle": collect_cpuidle(),
        "pm_qos_cpu_latency_us": collect_pm_qos_cpu_latency_us(),
        "clocksource": collect_clocksource(),
        "mitigations": collect_mitigations(),
        "boot_params": collect_boot_params(),
        "hostname": socket.gethostname(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "placement": placement,
    }
