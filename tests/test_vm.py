"""The vm environment (bench/vm) and the kernel log scanner (bench/kernel_log.py).

Tests marked ``vm`` boot real QEMU guests with the installed stock kernel (each boot takes
about 6-15 s under TCG); they are skipped, with the reason, where QEMU, a guest kernel,
static busybox or root is missing.  The rest run anywhere.
"""

from __future__ import annotations

import gzip
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.host.kernel_log import KernelLogWatch, read_kernel_log, scan_kernel_log
from bench.results.run import Run
from bench.runner.progress import ConsoleRelay, Step
from bench.system import ledger
from bench.system.ledger import Record
from bench.system.processes import ProcessIdentity
from bench.vm import qemu
from bench.vm.bench_run import find_results, guest_bench_argv, run_bench_in_vm
from bench.vm.cleanup import kill_guest
from bench.vm.guest import GuestOutcome, run_in_guest
from bench.vm.initramfs import InitramfsError, cpio_newc, find_busybox, module_files
from bench.vm.kernel import (
    GuestKernelError,
    boot_image,
    find_guest_kernel,
    guest_kernels,
    has_pvh_entry,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BOOT_TIMEOUT_S = 120.0
HANG_TIMEOUT_S = 20.0
KILL_SLACK_S = qemu.KILL_GRACE_S + 10.0


def _vm_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "sharing the host root with a guest over 9p needs root"
    try:
        qemu.qemu_binary()
        find_guest_kernel()
        find_busybox()
    except (qemu.QemuError, GuestKernelError, InitramfsError) as exc:
        return str(exc)
    return None


_SKIP = _vm_skip_reason()
vm_ready = pytest.mark.skipif(_SKIP is not None, reason=f"no guest: {_SKIP}")


def _qemu_pids() -> set[int]:
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().startswith("qemu-system"):
                    found.add(int(entry.name))
            except OSError:
                pass
    return found


def _qemu_ledger_records() -> list[Record]:
    """This process's qemu records (other runs may boot guests at the same time)."""
    return [
        rec
        for rec in ledger.records()
        if rec.kind == qemu.LEDGER_KIND and rec.owner_pid == os.getpid()
    ]


def _in_guest(
    argv: list[str],
    workdir: Path,
    *,
    timeout_s: float = BOOT_TIMEOUT_S,
    fault: str | None = None,
    silence_s: float | None = None,
    cwd: Path = PROJECT_ROOT,
) -> GuestOutcome:
    outcome = run_in_guest(
        argv,
        workdir=workdir,
        timeout_s=timeout_s,
        cwd=cwd,
        env={"PYTHONPATH": str(PROJECT_ROOT)},
        fault=fault,
        silence_s=silence_s,
    )
    assert outcome.qemu_pid is not None
    assert outcome.qemu_pid not in _qemu_pids(), "QEMU outlived run_in_guest"
    return outcome


# --- kernel log --------------------------------------------------------------------------

SYNTHETIC_BAD = """\
[    1.000000] virtio_net virtio0 eth0: renamed
[    2.000000] ------------[ cut here ]------------
[    2.000001] WARNING: CPU: 1 PID: 42 at net/core/dev.c:123 dev_xmit+0x1/0x2
[    2.000002] Modules linked in: hellokt(OE) veth
[    2.000003] CPU: 1 PID: 42 Comm: hellokt Tainted: G           OE      6.1.0-56-amd64 #1
[    2.000004] RIP: 0010:dev_xmit+0x1/0x2
[    2.000005] Call Trace:
[    2.000006]  <TASK>
[    3.000000] BUG: kernel NULL pointer dereference, address: 0000000000000008
[    3.000001] #PF: supervisor read access in kernel mode
[    3.000002] Oops: 0000 [#1] PREEMPT SMP NOPTI
[    4.000000] general protection fault, probably for non-canonical address 0xdead: 0000
[    5.000000] kernel BUG at lib/list_debug.c:59!
[    6.000000] hello: all fine
"""

SRSO_ADVICE = (
    "[    0.252336] Speculative Return Stack Overflow: WARNING: See "
    "https://kernel.org/doc/html/latest/admin-guide/hw-vuln/srso.html for mitigation options."
)
SYNTHETIC_CLEAN = f"""\
[    0.000000] Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org)
{SRSO_ADVICE}
[    1.000000] 9pnet: Installing 9P2000 support
[    2.000000] hellokt: listening on 127.0.0.1:3000
[    3.000000] debug: BUGS_FIXED=3 warnings=0
"""


def test_scan_kernel_log_finds_each_kind_of_report() -> None:
    problems = scan_kernel_log(SYNTHETIC_BAD)
    heads = [p.splitlines()[0] for p in problems]
    assert any("WARNING: CPU: 1 PID: 42" in h for h in heads)
    assert any("BUG: kernel NULL pointer dereference" in h for h in heads)
    assert any("Oops: 0000" in h for h in heads)
    assert any("general protection fault" in h for h in heads)
    assert any("kernel BUG at lib/list_debug.c:59!" in h for h in heads)
    warning = next(p for p in problems if "WARNING: CPU" in p)
    assert "Modules linked in" in warning  # context follows the line
    assert not any("Call Trace" in h for h in heads)  # folded into the WARNING it belongs to
    assert not any("all fine" in h for h in heads)
    assert len(problems) == 5


def test_scan_kernel_log_reports_a_lone_call_trace() -> None:
    text = "[ 1.0] something odd\n[ 1.1] Call Trace:\n[ 1.2]  <TASK>\n"
    assert [p.splitlines()[0] for p in scan_kernel_log(text)] == ["[ 1.1] Call Trace:"]


def test_scan_kernel_log_is_quiet_on_a_clean_log() -> None:
    assert scan_kernel_log(SYNTHETIC_CLEAN) == []
    assert scan_kernel_log("") == []


def test_kernel_log_watch_reports_nothing_new_right_after_mark() -> None:
    watch = KernelLogWatch()
    watch.mark()
    if not watch.available:
        pytest.skip("the kernel log is not readable here")
    assert read_kernel_log() is not None
    assert isinstance(watch.new_problems(), list)


# --- guest kernel, initramfs, accel, cleaner -----------------------------------------------


def _fake_kernel(boot: Path, mods: Path, release: str) -> None:
    (boot / f"vmlinuz-{release}").write_bytes(b"kernel")
    (mods / release).mkdir(parents=True)
    (mods / release / "modules.dep").write_text("")


def test_guest_kernels_prefer_newest_stock_kernel(tmp_path: Path) -> None:
    boot, mods = tmp_path / "boot", tmp_path / "modules"
    boot.mkdir()
    mods.mkdir()
    for release in ("6.1.0-9-amd64", "6.1.0-56-amd64", "6.12.1-custom", "6.1.0-56-cloud-amd64"):
        _fake_kernel(boot, mods, release)
    (boot / "vmlinuz-6.9.0-1-amd64").write_bytes(b"no modules for this one")
    releases = [k.release for k in guest_kernels(boot, mods)]
    assert releases == ["6.1.0-56-amd64", "6.1.0-9-amd64", "6.1.0-56-cloud-amd64", "6.12.1-custom"]


def test_no_guest_kernel_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from bench.vm import kernel

    monkeypatch.setattr(kernel, "BOOT_DIR", tmp_path)
    monkeypatch.delenv("HELLOBENCH_GUEST_KERNEL", raising=False)
    with pytest.raises(GuestKernelError, match="linux-image-amd64"):
        find_guest_kernel()


def test_cpio_newc_is_read_by_cpio(tmp_path: Path) -> None:
    if not shutil.which("cpio"):
        pytest.skip("cpio not installed")
    from bench.vm.initramfs import _Entry

    archive = cpio_newc([_Entry("bin", 0o040755), _Entry("bin/hello", 0o100755, b"hi\n")])
    listing = subprocess.run(
        ["cpio", "-t"], input=archive, capture_output=True, check=True
    ).stdout.decode()
    assert listing.split() == ["bin", "bin/hello"]


@vm_ready
def test_initramfs_holds_init_busybox_and_ordered_modules() -> None:
    from bench.vm.initramfs import build_initramfs

    kernel = find_guest_kernel()
    names = [p.name.split(".ko")[0] for p in module_files(kernel, ("virtio_pci", "9p"))]
    assert names.index("virtio_ring") < names.index("virtio") < names.index("virtio_pci")
    assert names.index("9pnet") < names.index("9p")
    path = build_initramfs(kernel)
    assert build_initramfs(kernel) == path  # cached by content
    listing = subprocess.run(
        ["cpio", "-t"], input=gzip.decompress(path.read_bytes()), capture_output=True, check=True
    ).stdout.decode()
    assert {"init", "bin/busybox", "dev/console", "lib/modules/9p.ko"} <= set(listing.split())


@vm_ready
def test_boot_image_is_the_vmlinuz_or_a_pvh_bootable_vmlinux() -> None:
    kernel = find_guest_kernel()
    image = boot_image(kernel)
    assert boot_image(kernel) == image  # extracted once, then cached
    if image != kernel.vmlinuz:
        assert has_pvh_entry(image.read_bytes())
    assert not has_pvh_entry(b"\x7fELF not really")


def test_detect_accel_is_honest(monkeypatch: pytest.MonkeyPatch) -> None:
    qemu.detect_accel.cache_clear()
    monkeypatch.setenv("HELLOBENCH_ACCEL", "tcg")
    assert qemu.detect_accel() == ("tcg", "forced by HELLOBENCH_ACCEL")
    qemu.detect_accel.cache_clear()
    monkeypatch.delenv("HELLOBENCH_ACCEL")
    accel, why = qemu.detect_accel()
    assert accel in ("kvm", "tcg") and why
    if qemu._cpu_virt_flag() is None:
        assert accel == "tcg" and "vmx/svm" in why


def test_ledger_cleaner_kills_a_recorded_guest_process() -> None:
    proc = subprocess.Popen(["sleep", "60"])
    try:
        identity = ProcessIdentity.of(proc.pid)
        assert identity is not None
        details = {"pid": proc.pid, "started": identity.started}
        rec = Record(qemu.LEDGER_KIND, "t", None, qemu.CLEANER, details, Path("x"))
        kill_guest(rec)
        assert proc.wait(timeout=5) != 0
        kill_guest(rec)  # already gone: no error
    finally:
        proc.kill()
        proc.wait()


def test_guest_bench_command_and_results_lookup(tmp_path: Path) -> None:
    argv = guest_bench_argv(["--impl", "blocking-c"], tmp_path, "tcg")
    assert argv[:4] == [sys.executable, "-m", "bench", "run"]
    assert argv[4:] == [
        "--impl", "blocking-c", "--out", str(tmp_path), "--env-name", "vm", "--accel", "tcg",
    ]  # fmt: skip
    assert find_results(tmp_path) is None
    (tmp_path / "guest").mkdir()
    (tmp_path / "guest" / "results.json").write_text("{}")  # the control folder does not count
    assert find_results(tmp_path) is None
    (tmp_path / "run-1").mkdir()
    (tmp_path / "run-1" / "results.json").write_text("{}")
    assert find_results(tmp_path) == tmp_path / "run-1" / "results.json"


# --- real guests ---------------------------------------------------------------------------


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    before = {rec.ident for rec in _qemu_ledger_records()}
    yield tmp_path / "share"
    leftover = [rec for rec in _qemu_ledger_records() if rec.ident not in before]
    assert leftover == [], "a guest run left its ledger record behind"


@pytest.mark.vm
@pytest.mark.slow
@vm_ready
def test_probe_boot_reaches_the_marker_or_says_it_did_not() -> None:
    ok, detail = qemu.probe_boot("tcg", BOOT_TIMEOUT_S)
    assert ok, detail
    assert "reached the guest" in detail
    ok, detail = qemu.probe_boot("tcg", 0.5)
    assert not ok and "did not reach the guest within 0.5 s" in detail
    assert _qemu_ledger_records() == []


@pytest.mark.vm
@pytest.mark.slow
@vm_ready
def test_guest_runs_python_under_the_guest_kernel(workdir: Path) -> None:
    code = "import bench, platform; print('release=' + platform.release())"
    outcome = _in_guest([sys.executable, "-c", code], workdir)
    assert outcome.failed_reason is None, outcome.console_log.read_text()[-3000:]
    assert outcome.exit_code == 0 and not outcome.timed_out
    assert outcome.kernel == find_guest_kernel().release
    console = outcome.console_log.read_text()
    assert f"release={outcome.kernel}" in console
    assert f"release={os.uname().release}" not in console or os.uname().release == outcome.kernel
    assert outcome.boot_s > 0 and outcome.run_s > 0
    assert outcome.accel in ("kvm", "tcg") and outcome.accel_reason
    assert outcome.kernel_log_problems == []
    saved = json.loads((workdir / "guest" / "outcome.json").read_text())
    assert saved["exit_code"] == 0 and saved["kernel"] == outcome.kernel


WATCH_CODE = """
from bench.host.kernel_log import KernelLogWatch
watch = KernelLogWatch()
watch.mark()
with open("/dev/kmsg", "w") as kmsg:
    kmsg.write("<4>WARNING: CPU: 0 PID: 1 at hellobench/test.c:2 watched+0x0/0x0\\n")
found = watch.new_problems()
print("watch:", len(found), "watched+0x0" in found[0])
"""


@pytest.mark.vm
@pytest.mark.slow
@vm_ready
def test_guest_writes_to_the_share_and_its_dmesg_comes_back(workdir: Path) -> None:
    target = workdir / "from-guest.txt"
    host_file = workdir.parent / "host-only.txt"  # outside the share, under the host's /tmp
    host_file.write_text("seen-from-guest\n")
    script = (
        f"echo written-in-guest > {target}\n"
        f"cat {host_file}\n"
        "ip link add hbv0 type veth peer name hbv1 && echo veth-ok\n"
        "ip link add hbd0 type dummy && grep -q '^dummy ' /proc/modules && echo autoload-ok\n"
        "echo 'hellobench-test: marker line' > /dev/kmsg\n"
        "echo '<4>WARNING: CPU: 0 PID: 1 at hellobench/test.c:1 synthetic+0x0/0x0' > /dev/kmsg\n"
        "touch /usr/hellobench-overlay-probe\n"
        f"{sys.executable} -c {shlex.quote(WATCH_CODE)}\n"
        "exit 3\n"
    )
    outcome = _in_guest(["/bin/sh", "-c", script], workdir)
    assert target.read_text() == "written-in-guest\n"
    assert outcome.exit_code == 3
    assert outcome.failed_reason == "command exited with status 3"
    assert "hellobench-test: marker line" in outcome.dmesg
    assert "Linux version" in outcome.dmesg  # the whole log, from boot
    assert any("synthetic+0x0" in p for p in outcome.kernel_log_problems)
    console = outcome.console_log.read_text()
    assert "watch: 1 True" in console
    assert "seen-from-guest" in console
    if shutil.which("ip"):
        assert "veth-ok" in console  # veth topologies work in the guest
        assert "autoload-ok" in console  # the kernel's module auto-loading reaches /lib/modules
    assert not Path("/usr/hellobench-overlay-probe").exists()  # the host root stays untouched


@pytest.mark.vm
@pytest.mark.slow
@vm_ready
def test_watchdog_kills_a_hung_guest(workdir: Path) -> None:
    started = time.monotonic()
    outcome = _in_guest(["true"], workdir, timeout_s=HANG_TIMEOUT_S, fault="hang")
    took = time.monotonic() - started
    assert outcome.timed_out
    assert outcome.exit_code is None
    assert outcome.failed_reason is not None and "watchdog" in outcome.failed_reason
    assert "before the command started" in outcome.failed_reason
    assert took < HANG_TIMEOUT_S + KILL_SLACK_S
    assert outcome.qemu_pid not in _qemu_pids()
    assert ProcessIdentity.of(outcome.qemu_pid or 0) is None
    assert "fault injected: hang" in outcome.console_log.read_text()


INTERRUPTED_RUN = """
import signal, sys
from pathlib import Path
from bench.vm.guest import run_in_guest
signal.signal(signal.SIGINT, signal.default_int_handler)
try:
    run_in_guest(["sleep", "100"], workdir=Path(sys.argv[1]), timeout_s=200)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


@pytest.mark.vm
@pytest.mark.slow
@vm_ready
def test_an_interrupted_run_leaves_no_guest(workdir: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_RUN, str(workdir)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        console = workdir / "guest" / "console.log"
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while time.monotonic() < deadline:
            if console.exists() and "HELLOBENCH-GUEST: ready" in console.read_text():
                break
            time.sleep(0.2)
        records = [
            rec
            for rec in ledger.records()
            if rec.kind == qemu.LEDGER_KIND and rec.owner_pid == child.pid
        ]
        assert len(records) == 1 and records[0].details.get("pid")
        qemu_pid = int(records[0].details["pid"])
        assert qemu_pid in _qemu_pids()
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=30)
    finally:
        child.kill()
        child.wait()
    assert "interrupted" in out
    assert qemu_pid not in _qemu_pids()
    assert not records[0].path.exists()


@pytest.mark.vm
@pytest.mark.slow
@vm_ready
def test_watchdog_kills_a_command_that_runs_too_long(workdir: Path) -> None:
    started = time.monotonic()
    outcome = _in_guest(["sleep", "600"], workdir, timeout_s=30)
    assert time.monotonic() - started < 30 + KILL_SLACK_S
    assert outcome.timed_out and outcome.exit_code is None
    assert outcome.failed_reason == "watchdog: guest killed after 30 s, while running the command"


@pytest.mark.vm
@pytest.mark.slow
@vm_ready
def test_silence_watchdog_kills_a_quiet_guest_early(workdir: Path) -> None:
    started = time.monotonic()
    outcome = _in_guest(["true"], workdir, timeout_s=BOOT_TIMEOUT_S, fault="hang", silence_s=5)
    assert outcome.timed_out and outcome.exit_code is None
    assert outcome.failed_reason is not None and "5 s of console silence" in outcome.failed_reason
    assert time.monotonic() - started < BOOT_TIMEOUT_S


@pytest.mark.vm
@pytest.mark.slow
@vm_ready
def test_without_overlay_the_root_is_read_only_and_tmp_writable(workdir: Path) -> None:
    script = (
        "touch /tmp/scratch && echo tmp-writable\n"
        "touch /usr/hellobench-ro-probe 2>/dev/null || echo root-read-only\n"
        f"echo shared > {workdir / 'ro.txt'}\n"
    )
    # Without the overlay the guest's /tmp is its own tmpfs: a project checked out under
    # /tmp is not there, so the command runs from /.
    outcome = _in_guest(["/bin/sh", "-c", script], workdir, fault="no-overlay", cwd=Path("/"))
    assert outcome.ok, outcome.failed_reason
    console = outcome.console_log.read_text()
    assert "ready root=readonly" in console
    assert "tmp-writable" in console and "root-read-only" in console
    assert (workdir / "ro.txt").read_text() == "shared\n"


@pytest.mark.vm
@pytest.mark.slow
@vm_ready
def test_bench_run_in_a_guest_writes_its_results(tmp_path: Path) -> None:
    """blocking-c and an XDP reflector in the guest: the stock kernel's (older) verifier
    must accept the eBPF programs the host's accepts."""
    args = ["--impl", "blocking-c", "--impl", "ebpf-xdp", "--mode", "pingpong", "--quick"]
    args += ["--no-calibrate", "--trials", "1", "--duration", "0.2", "--warmup", "0.05"]
    args += ["--progress-lines"]
    steps: list[Step] = []

    class Seen:
        def __call__(self, text: str) -> None:
            del text

        def step(self, step: Step) -> None:
            steps.append(step)

    vm = run_bench_in_vm(args, tmp_path, timeout_s=300, stream=ConsoleRelay(Seen()))
    console = vm.outcome.console_log.read_text()
    assert vm.error is None, f"{vm.error}\n{console[-3000:]}"
    assert vm.results_path is not None and vm.results_path.is_relative_to(tmp_path / "vm")
    assert '"vm"' in vm.results_path.read_text()  # the guest's environment is named vm
    rows = Run.load(vm.results_path).rows
    assert {(r.impl, r.status) for r in rows} == {("blocking-c", "ok"), ("ebpf-xdp", "ok")}, [
        r.error for r in rows if not r.ok
    ]
    # the guest's progress reached the host as it ran: boot, each phase, the end
    phases = [s for s in steps if s.stage == "phase"]
    assert {s.impl for s in phases} == {"blocking-c", "ebpf-xdp"} and {s.env for s in steps} == {
        "vm"
    }
    assert [s.done for s in phases] == [0, 1] and {s.total for s in phases} == {2}
    stages = [s.stage for s in steps]
    assert stages[0] == "guest" and "ready" in steps[0].text  # the guest's own markers
    assert [s for s in stages if s != "guest"][-1] == "finish"


@pytest.mark.vm
@pytest.mark.slow
@vm_ready
def test_a_crashed_guest_is_reported(workdir: Path) -> None:
    outcome = _in_guest(["true"], workdir, fault="panic")
    assert not outcome.timed_out and outcome.exit_code is None
    assert outcome.failed_reason is not None and "panicked" in outcome.failed_reason
    assert any("Kernel panic" in p for p in outcome.kernel_log_problems)


@pytest.mark.vm
@pytest.mark.slow
@vm_ready
def test_a_run_with_env_vm_hands_the_guest_its_configuration(tmp_path: Path) -> None:
    """``bench run --env vm`` writes its RunConfig for the guest (runner/in_guest.py): the
    guest measures the levels given here, and the host's results carry its rows."""
    from tests.bench_runs import bench_run

    run = bench_run(
        tmp_path,
        ["--env", "vm", "--impl", "blocking-c", "--mode", "pingpong", "--trials", "1",
         "--duration", "0.2", "--warmup", "0.05", "--no-calibrate", "--client-wait", "spin"],
    )  # fmt: skip
    (written,) = (tmp_path / "out").glob("*/vm/config.json")
    guest = json.loads(written.read_text())
    assert guest["env"] == "host" and guest["levels"]["client_wait"] == ["spin"]
    rows = [r for r in run.rows if r.env == "vm"]
    assert rows and all(r.ok and r.client_wait == "spin" for r in rows), [r.error for r in rows]
