"""The anatomy traced in the guest, under the stock kernel where the kernel modules load.

One guest boot runs ``python -m bench anatomy`` for kmod-kthread and kmod-softirq with
receive processing on the server's CPU, as a user runs it, and its JSON is read back on
the host: requests were sampled, every sampled request's stages sum exactly to its traced
round trip, each impl got its own stage model, and the hooks the loader chose for this
kernel (6.1 has no sk_data_ready tracepoint) are named.  The guest is emulated (TCG), so
the run is kept small (few requests, short runs) and bounded by the guest's watchdog;
nothing here asserts a time.  Skipped, with the reason, where no guest can boot.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from typing import Any

import pytest

from bench import PROJECT_ROOT
from bench.anatomy.stages import (
    HANDLER_STAGES,
    KTHREAD,
    KTHREAD_STAGES,
    SOFTIRQ,
    UNHOOKED_STAGES,
)
from bench.impl.api import ImplError
from bench.impl.registry import discover
from bench.kmod.impl import KernelModuleImpl
from bench.vm import qemu
from bench.vm.guest import run_in_guest
from bench.vm.initramfs import InitramfsError, find_busybox
from bench.vm.kernel import GuestKernelError, find_guest_kernel

IMPLS = ("kmod-kthread", "kmod-softirq")
GUEST_TIMEOUT_S = 900.0  # boot, the BPF build and two passes under TCG; the watchdog's bound
REQUESTS = 200


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "sharing the host root with a guest over 9p needs root"
    if (os.cpu_count() or 1) < 2:
        return "needs two CPUs (the guest's server and client CPUs apart)"
    for tool in ("clang", "bpftool"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (the guest builds the anatomy's BPF object with it)"
    try:
        qemu.qemu_binary()
        kernel = find_guest_kernel()
        find_busybox()
    except (qemu.QemuError, GuestKernelError, InitramfsError) as exc:
        return f"no guest: {exc}"
    if kernel.headers_dir is None:
        return f"no headers for the guest kernel {kernel.release} (the modules are built here)"
    return None


_SKIP = _skip_reason()
pytestmark = [
    pytest.mark.vm,
    pytest.mark.slow,
    pytest.mark.skipif(_SKIP is not None, reason=_SKIP or ""),
]


def _prebuild(release: str) -> None:
    """Build the modules for the guest's kernel here; the guest finds them in the cache."""
    entries = discover()
    for name in IMPLS:
        impl = entries[name].impl
        if not isinstance(impl, KernelModuleImpl):
            pytest.skip(f"{name} is not available: {entries[name].unavailable}")
        try:
            impl.build_for(release)
        except ImplError as exc:
            pytest.skip(f"{name} does not build for {release}: {exc}")


@pytest.fixture(scope="module")
def guest_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    workdir = tmp_path_factory.mktemp("anatomy-vm")
    out = workdir / "anatomy.json"
    _prebuild(find_guest_kernel().release)
    argv = [
        sys.executable, "-m", "bench", "anatomy",
        *(f"--impl={name}" for name in IMPLS),
        "--rx-cpu=server", f"--requests={REQUESTS}", "--duration=0.5",
        "--server-cpu=1", "--client-cpu=0", f"--json={out}",
    ]  # fmt: skip
    outcome = run_in_guest(
        argv,
        workdir=workdir,
        timeout_s=GUEST_TIMEOUT_S,
        cwd=PROJECT_ROOT,
        env={"PYTHONPATH": str(PROJECT_ROOT)},
    )
    console = outcome.console_log.read_text(errors="replace")
    assert outcome.ok, f"{outcome.failed_reason}\n{console[-6000:]}"
    assert outcome.kernel_log_problems == [], outcome.kernel_log_problems
    results: list[dict[str, Any]] = json.loads(out.read_text())
    return results


def _by_impl(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {r["impl"]: r for r in results}
    assert sorted(found) == sorted(IMPLS)
    return found


def test_requests_were_sampled_and_their_stages_sum_to_the_traced_round_trip(
    guest_results: list[dict[str, Any]],
) -> None:
    for impl, r in _by_impl(guest_results).items():
        requests = r["requests"]
        assert requests, f"{impl}: no request sampled (loader: {r['loader']})"
        assert r["loader"]["closed"] >= len(requests)
        for q in requests:
            assert list(q["stages"]) == r["stage_names"], impl
            assert sum(q["stages"].values()) == q["rtt_ns"], (impl, q)
            assert all(v >= 0 for v in q["stages"].values()), (impl, q)
        assert r["settings"]["rx_cpu"] == "server"


def test_each_kernel_side_server_gets_its_own_model(
    guest_results: list[dict[str, Any]],
) -> None:
    found = _by_impl(guest_results)
    kthread, softirq = found["kmod-kthread"], found["kmod-softirq"]
    assert kthread["model"] == KTHREAD
    assert kthread["stage_names"] == list(KTHREAD_STAGES)
    assert softirq["model"] == SOFTIRQ
    expected = HANDLER_STAGES if softirq["handler_hooked"] else UNHOOKED_STAGES
    assert softirq["stage_names"] == list(expected)
    assert softirq["handler_note"], "the softirq handler's hook (or its absence) is explained"
    for r in (kthread, softirq):
        assert not r["server_in_user_space"]


def test_the_hooks_the_loader_chose_are_named(guest_results: list[dict[str, Any]]) -> None:
    for impl, r in _by_impl(guest_results).items():
        hooks = r["hooks"]
        assert set(hooks) == {"enqueue", "handler", "kernel_recv"}, impl
        assert hooks["enqueue"] != "none", f"{impl}: socket enqueues not traced: {r['notes']}"
        if hooks["enqueue"] != "tp_btf/sk_data_ready":
            assert "sk_data_ready" in r["notes"], impl  # said why the tracepoint was not used
        missing = {s["name"]: s["missing"] for s in r["stages"]}
        assert missing["stack to client socket"] < len(r["requests"]), impl
    kthread = _by_impl(guest_results)["kmod-kthread"]
    if kthread["hooks"]["kernel_recv"] != "none":
        missing = {s["name"]: s["missing"] for s in kthread["stages"]}
        assert missing["kernel receive"] < len(kthread["requests"])
