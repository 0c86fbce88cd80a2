"""What the environment record says about the machine: the hypervisor from its signs, the
idle states, the PM QoS limit and the clocksource — read from sysfs and procfs trees built
here, and from this machine's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.host.description import collect_environment
from bench.host.power import collect_clocksource, collect_cpuidle, collect_pm_qos_cpu_latency_us
from bench.host.virtualization import detect_virtualization
from bench.results.descriptions import Environment


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return root


CPUINFO_GUEST = "processor\t: 0\nflags\t\t: fpu vme sse2 hypervisor avx2\n"
CPUINFO_METAL = "processor\t: 0\nflags\t\t: fpu vme sse2 avx2\n"


def _no_log() -> str | None:
    return None


def test_a_firecracker_like_guest_is_a_kvm_guest(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "proc/cpuinfo": CPUINFO_GUEST,
            "sys/devices/system/cpu/cpuidle/current_driver": "haltpoll",
            "sys/devices/system/clocksource/clocksource0/available_clocksource": "tsc kvm-clock",
        },
    )
    found = detect_virtualization(root / "sys", root / "proc", _no_log)
    assert found.virtualized is True and found.hypervisor == "KVM"
    assert found.label() == "virtualized (KVM guest)"
    assert len(found.evidence) == 3  # flag, cpuidle driver, clocksource: each kept


@pytest.mark.parametrize(
    ("files", "hypervisor"),
    [
        ({"sys/class/dmi/id/sys_vendor": "VMware, Inc."}, "VMware"),
        ({"sys/class/dmi/id/sys_vendor": "Microsoft Corporation"}, "Hyper-V"),
        ({"sys/hypervisor/type": "xen"}, "Xen"),
        (
            {
                "sys/class/dmi/id/product_name": "Standard PC (Q35 + ICH9, 2009)",
                "sys/class/dmi/id/bios_vendor": "SeaBIOS",
            },
            None,
        ),
    ],
)
def test_each_sign_names_its_hypervisor(
    tmp_path: Path, files: dict[str, str], hypervisor: str | None
) -> None:
    root = _tree(tmp_path, {"proc/cpuinfo": CPUINFO_GUEST, **files})
    found = detect_virtualization(root / "sys", root / "proc", _no_log)
    assert found.virtualized is True
    assert found.hypervisor == hypervisor
    assert found.label() == (f"virtualized ({hypervisor} guest)" if hypervisor else "virtualized")


def test_the_boot_log_names_the_hypervisor_when_nothing_else_does(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"proc/cpuinfo": CPUINFO_METAL})
    found = detect_virtualization(
        root / "sys", root / "proc", lambda: "[    0.000000] Hypervisor detected: KVM\n"
    )
    assert found.virtualized is True and found.hypervisor == "KVM"


def test_no_sign_is_bare_metal_and_nothing_readable_is_unknown(tmp_path: Path) -> None:
    metal = _tree(tmp_path / "metal", {"proc/cpuinfo": CPUINFO_METAL})
    found = detect_virtualization(metal / "sys", metal / "proc", _no_log)
    assert (found.virtualized, found.label()) == (False, "bare metal")
    empty = tmp_path / "empty"
    unknown = detect_virtualization(empty / "sys", empty / "proc", _no_log)
    assert unknown.virtualized is None and unknown.label().startswith("unknown")


def test_cpuidle_states_and_clocksource_are_read(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "cpuidle/current_driver": "intel_idle",
            "cpuidle/current_governor": "menu",
            "cpu0/cpuidle/state0/name": "POLL",
            "cpu0/cpuidle/state0/latency": "0",
            "cpu0/cpuidle/state0/residency": "0",
            "cpu0/cpuidle/state0/disable": "0",
            "cpu0/cpuidle/state10/name": "C6",  # numeric order, not lexical
            "cpu0/cpuidle/state10/latency": "170",
            "cpu0/cpuidle/state10/residency": "600",
            "cpu0/cpuidle/state10/disable": "1",
            "cpu0/cpuidle/state2/name": "C1E",
            "cpu0/cpuidle/state2/latency": "10",
            "cpu0/cpuidle/state2/residency": "20",
            "cpu0/cpuidle/state2/disable": "0",
            "clock/current_clocksource": "tsc",
            "clock/available_clocksource": "tsc hpet acpi_pm",
        },
    )
    idle = collect_cpuidle(root)
    assert (idle["driver"], idle["governor"]) == ("intel_idle", "menu")
    assert [s["name"] for s in idle["states"]] == ["POLL", "C1E", "C6"]
    assert idle["states"][2] == {
        "name": "C6",
        "description": None,
        "latency_us": 170,
        "residency_us": 600,
        "disabled": True,
    }
    assert collect_clocksource(root / "clock") == {
        "current": "tsc",
        "available": ["tsc", "hpet", "acpi_pm"],
    }
    assert collect_cpuidle(tmp_path / "none") == {"driver": None, "governor": None, "states": []}


def test_pm_qos_limit_is_read_from_its_device(tmp_path: Path) -> None:
    fake = tmp_path / "cpu_dma_latency"
    fake.write_bytes((55).to_bytes(4, "little", signed=True))
    assert collect_pm_qos_cpu_latency_us(fake) == 55
    assert collect_pm_qos_cpu_latency_us(tmp_path / "absent") is None


def test_this_machines_record_says_what_it_runs_on() -> None:
    record = collect_environment("host", "native", {})
    found = record["virtualization"]
    flagged = "hypervisor" in Path("/proc/cpuinfo").read_text()
    assert found["virtualized"] is flagged  # the one sign every x86 hypervisor sets
    env = Environment("host", record)
    assert env.label() == found["label"]
    assert env.label() != "native"
    if flagged:
        assert env.label().startswith("virtualized")


def test_a_record_without_detection_does_not_claim_native_silently() -> None:
    assert Environment("host", {"accel": "native"}).label() == (
        "native (virtualization not recorded)"
    )
    assert Environment("vm", {"accel": "tcg", "emulated": True}).label() == "emulated, TCG"
    assert Environment("vm", {"accel": "kvm"}).label() == "KVM guest"
