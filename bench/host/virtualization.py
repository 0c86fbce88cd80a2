"""Whether this kernel runs under a hypervisor, and which, from every sign Linux leaves.

No single sign is reliable on its own (a container hides DMI, Firecracker has no DMI at
all, the boot log rotates), so each one found is kept as evidence and the verdict names
the hypervisor only when some sign names it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.host.kernel_log import read_kernel_log

SYS = Path("/sys")
PROC = Path("/proc")

# DMI vendors and products that only virtual machines report, with the hypervisor's name.
_DMI_HYPERVISORS = {
    "qemu": "KVM/QEMU",
    "kvm": "KVM",
    "amazon ec2": "KVM (Nitro)",
    "google": "KVM (Google Compute Engine)",
    "vmware": "VMware",
    "microsoft corporation": "Hyper-V",
    "xen": "Xen",
    "innotek gmbh": "VirtualBox",
    "parallels": "Parallels",
    "bochs": "Bochs",
}
_BOOT_LINE = re.compile(r"Hypervisor detected: (\S.*)$", re.MULTILINE)
# cpuidle drivers and clocksources that exist only inside a guest.
_GUEST_CPUIDLE = {"haltpoll": "KVM"}
_GUEST_CLOCKSOURCES = {"kvm-clock": "KVM", "xen": "Xen", "hyperv_clocksource_tsc_page": "Hyper-V"}


@dataclass(frozen=True)
class Virtualization:
    """``virtualized`` is None when no sign either way could be read."""

    virtualized: bool | None
    hypervisor: str | None
    evidence: tuple[str, ...] = field(default_factory=tuple)

    def label(self) -> str:
        if self.virtualized is None:
            return "unknown (no sign of a hypervisor could be read)"
        if not self.virtualized:
            return "bare metal"
        return f"virtualized ({self.hypervisor} guest)" if self.hypervisor else "virtualized"

    def to_json(self) -> dict[str, Any]:
        return {
            "virtualized": self.virtualized,
            "hypervisor": self.hypervisor,
            "label": self.label(),
            "evidence": list(self.evidence),
        }


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _cpu_flag(proc: Path) -> tuple[str | None, str | None] | None:
    text = _read(proc / "cpuinfo")
    if text is None:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            if "hypervisor" in line.split(":", 1)[1].split():
                return "cpu flag 'hypervisor' set", None
            return None
    return None


def _sys_hypervisor(sys: Path) -> tuple[str | None, str | None] | None:
    kind = _read(sys / "hypervisor" / "type")
    return (f"/sys/hypervisor/type: {kind}", kind.capitalize()) if kind else None


def _dmi(sys: Path) -> tuple[str | None, str | None] | None:
    folder = sys / "class" / "dmi" / "id"
    for name in ("sys_vendor", "product_name", "bios_vendor"):
        value = _read(folder / name)
        if not value:
            continue
        for marker, hypervisor in _DMI_HYPERVISORS.items():
            if marker in value.lower():
                return f"DMI {name}: {value}", hypervisor
    return None


def _cpuidle(sys: Path) -> tuple[str | None, str | None] | None:
    driver = _read(sys / "devices" / "system" / "cpu" / "cpuidle" / "current_driver")
    if driver in _GUEST_CPUIDLE:
        return f"cpuidle driver {driver} (guest-only)", _GUEST_CPUIDLE[driver]
    return None


def _clocksources(sys: Path) -> tuple[str | None, str | None] | None:
    folder = sys / "devices" / "system" / "clocksource" / "clocksource0"
    available = (_read(folder / "available_clocksource") or "").split()
    for source in available:
        if source in _GUEST_CLOCKSOURCES:
            return f"clocksource {source} available (guest-only)", _GUEST_CLOCKSOURCES[source]
    return None


def _boot_log(log: str | None) -> tuple[str | None, str | None] | None:
    match = _BOOT_LINE.search(log or "")
    if not match:
        return None
    return f"kernel log: Hypervisor detected: {match.group(1)}", match.group(1).strip()


def detect_virtualization(
    sys: Path = SYS, proc: Path = PROC, kernel_log: Callable[[], str | None] = read_kernel_log
) -> Virtualization:
    """Every sign of a hypervisor this kernel shows.  With none, the machine counts as bare
    metal only when /proc/cpuinfo could be read (the cpu flag is the one sign every x86
    hypervisor sets); otherwise the answer is unknown."""
    signs: list[tuple[str | None, str | None]] = []
    for probe in (_cpu_flag, _sys_hypervisor, _dmi, _cpuidle, _clocksources):
        found = probe(proc) if probe is _cpu_flag else probe(sys)
        if found:
            signs.append(found)
    booted = _boot_log(kernel_log())
    if booted:
        signs.append(booted)
    if not signs:
        readable = _read(proc / "cpuinfo") is not None
        return Virtualization(False if readable else None, None)
    names = [name for _, name in signs if name]
    return Virtualization(
        True, names[0] if names else None, tuple(text for text, _ in signs if text)
    )
