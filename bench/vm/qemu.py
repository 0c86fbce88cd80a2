"""Starts QEMU guests, watches their serial console, and kills them on every way out.

The watchdog bounds a guest's whole life (boot and command) by one wall-clock timeout.  A
guest whose console stays silent is killed early only when the caller asks for it (a
silence bound), because a benchmark phase may legitimately print nothing for minutes.

Every QEMU process is recorded in the ledger (kind ``qemu``) before it starts, so
a run killed outright leaves a record that ``bench.system.ledger.sweep`` hands to the cleaner
in bench/vm/cleanup.py.  QEMU also gets PR_SET_PDEATHSIG where the kernel honours it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import IO, Protocol

from bench.errors import HellobenchError
from bench.system import ledger
from bench.system.processes import ProcessIdentity, stop_child
from bench.vm.init_script import MARKER
from bench.vm.initramfs import build_initramfs
from bench.vm.kernel import GuestKernel, boot_image, find_guest_kernel

QEMU_NAMES = ("qemu-system-x86_64",)
ACCELS = ("kvm", "tcg")
KVM_PROBE_TIMEOUT_S = 25.0
KILL_GRACE_S = 3.0
WATCH_TICK_S = 0.5
LEDGER_KIND = "qemu"
CLEANER = "bench.vm.cleanup:kill_guest"
NAME_PREFIX = "hellobench-"

_PR_SET_PDEATHSIG = 1
try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:
    _LIBC = None


class ConsoleSink(Protocol):
    """Where the guest's console lines go as they come (a terminal, a progress relay)."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


class QemuError(HellobenchError):
    """QEMU is missing or cannot be started; the message says what to install."""


def qemu_binary() -> str:
    for name in (os.environ.get("HELLOBENCH_QEMU"), *QEMU_NAMES):
        if name and (path := shutil.which(name)):
            return path
    raise QemuError("qemu-system-x86_64 not found (install it: apt-get install qemu-system-x86)")


def _cpu_virt_flag() -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = line.split(":", 1)[1].split()
            for flag in ("vmx", "svm"):
                if flag in flags:
                    return flag
            return None
    return None


@cache
def detect_accel() -> tuple[str, str]:
    """(accel, why): ``kvm`` only when the CPU offers vmx/svm, /dev/kvm opens, and a test
    boot under KVM reaches the guest's init within a timeout; ``tcg`` otherwise.

    $HELLOBENCH_ACCEL=kvm|tcg forces the choice.  Probed once per process.
    """
    forced = os.environ.get("HELLOBENCH_ACCEL")
    if forced:
        if forced not in ACCELS:
            raise QemuError(f"HELLOBENCH_ACCEL={forced}: expected one of {', '.join(ACCELS)}")
        return forced, "forced by HELLOBENCH_ACCEL"
    flag = _cpu_virt_flag()
    if flag is None:
        return "tcg", "CPU offers no vmx/svm flag (no hardware virtualisation): emulated TCG"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg", f"CPU has {flag} but /dev/kvm is missing or not accessible: TCG"
    ok, detail = _kvm_test_boot()
    if ok:
        return "kvm", f"CPU has {flag}, /dev/kvm works, and a test boot {detail}"
    return "tcg", f"CPU has {flag} and /dev/kvm exists, but a KVM test boot {detail}: TCG"


def _kvm_test_boot() -> tuple[bool, str]:
    return probe_boot("kvm", KVM_PROBE_TIMEOUT_S)


def probe_boot(accel: str, timeout_s: float) -> tuple[bool, str]:
    """Boot a small guest under ``accel`` whose init only prints a marker line and powers
    off; (True, how long it took) when the marker came within ``timeout_s``."""
    try:
        kernel = find_guest_kernel()
        spec = GuestSpec(
            kernel=kernel,
            image=boot_image(kernel),
            initrd=build_initramfs(kernel),
            accel=accel,
            smp=1,
            memory_mb=512,
            cmdline="console=ttyS0 quiet panic=-1 hb.mode=probe",
            shares=(),
        )
        with tempfile.TemporaryDirectory(prefix="hellobench-probe-") as tmp:
            run = run_qemu(spec, console_log=Path(tmp) / "console.log", timeout_s=timeout_s)
    except (RuntimeError, OSError) as exc:
        return False, f"could not be run ({exc})"
    if "probe" in run.markers:
        return True, f"reached the guest in {run.markers['probe'] - run.started:.1f} s"
    if run.timed_out:
        return False, f"did not reach the guest within {timeout_s:g} s"
    tail = "; ".join(line for line in run.console_tail[-3:] if line.strip())
    return False, f"ended without reaching the guest (status {run.returncode}: {tail})"


def _common_args() -> list[str]:
    return [
        "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
        "-monitor", "none", "-nic", "none", "-no-reboot",
    ]  # fmt: skip


def _qemu_path(path: Path) -> str:
    """A path as a QEMU option value (commas doubled)."""
    return str(path).replace(",", ",,")


@dataclass(frozen=True)
class Share:
    """A host folder exported to the guest over 9p under ``tag``."""

    tag: str
    path: Path
    readonly: bool


@dataclass(frozen=True)
class GuestSpec:
    kernel: GuestKernel
    image: Path  # what -kernel loads: kernel.vmlinuz or its extracted vmlinux (see boot_image)
    initrd: Path
    accel: str
    smp: int
    memory_mb: int
    cmdline: str
    shares: Sequence[Share]


def qemu_command(spec: GuestSpec, name: str) -> list[str]:
    """The QEMU command line that boots ``spec``."""
    if spec.accel not in ACCELS:
        raise QemuError(f"unknown accel {spec.accel!r}: expected one of {', '.join(ACCELS)}")
    # Under TCG, "max" emulates what the host's Python wheels assume (numpy dies of SIGILL
    # on the default qemu64 model); thread=multi gives each vCPU its own host thread.
    accel = ["-accel", "kvm", "-cpu", "host"] if spec.accel == "kvm" else [
        "-accel", "tcg,thread=multi", "-cpu", "max",
    ]  # fmt: skip
    cmd = [
        qemu_binary(), "-name", f"guest={name}", *accel,
        "-m", str(spec.memory_mb), "-smp", str(spec.smp), *_common_args(),
        "-kernel", str(spec.image), "-initrd", str(spec.initrd),
        "-append", spec.cmdline,
    ]  # fmt: skip
    for share in spec.shares:
        opts = f"local,path={_qemu_path(share.path)},mount_tag={share.tag}"
        opts += ",security_model=none,multidevs=remap"
        if share.readonly:
            opts += ",readonly=on"
        cmd += ["-virtfs", opts]
    return cmd


@dataclass
class QemuRun:
    """What the host saw of one guest's life."""

    pid: int | None
    returncode: int | None
    timed_out: bool
    started: float
    ended: float
    last_output: float = 0.0  # monotonic time of the last console line
    silent: bool = False  # killed because the console was silent for too long
    markers: dict[str, float] = field(default_factory=dict)  # first word -> monotonic time
    marker_lines: list[str] = field(default_factory=list)
    console_tail: list[str] = field(default_factory=list)
    stall_line: str = ""  # the guest kernel's first lockup or stall report
    stall_seen: float = 0.0  # monotonic time it was seen


def _set_pdeathsig() -> None:
    """In the child: die with the parent, so a killed runner cannot leave a guest behind."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _record_start(token: str, proc: subprocess.Popen[bytes]) -> None:
    identity = ProcessIdentity.of(proc.pid)
    ledger.record(
        LEDGER_KIND,
        token,
        CLEANER,
        pid=proc.pid,
        started=identity.started if identity else None,
        name=NAME_PREFIX + token,
    )


# A guest kernel that reports a lockup or an RCU stall is not measuring anything any more:
# it is killed once the report is STALL_GRACE_S old, not when the whole run's bound passes.
_STALL = re.compile(
    r"soft lockup - CPU#|hard LOCKUP|rcu_\w+ self-detected stall|rcu: INFO: .*stall"
)
STALL_GRACE_S = 30.0


def run_qemu(
    spec: GuestSpec,
    *,
    console_log: Path,
    timeout_s: float,
    silence_s: float | None = None,
    stream: ConsoleSink | None = None,
    on_start: Callable[[int], None] | None = None,
) -> QemuRun:
    """Boot ``spec`` and wait until QEMU exits, or kill it once ``timeout_s`` has passed
    (or, when ``silence_s`` is given, once the console has been silent that long).

    The serial console goes to ``console_log`` (and ``stream`` when given).  QEMU is killed
    on every way out of this function, KeyboardInterrupt included.
    """
    token = uuid.uuid4().hex[:12]
    name = NAME_PREFIX + token
    cmd = qemu_command(spec, name)
    run = QemuRun(pid=None, returncode=None, timed_out=False, started=time.monotonic(), ended=0.0)
    proc: subprocess.Popen[bytes] | None = None
    try:
        ledger.record(LEDGER_KIND, token, CLEANER, pid=None, started=None, name=name)
        with console_log.open("wb") as log:
            log.write(("# " + " ".join(cmd) + "\n").encode())
            log.flush()
            reader: threading.Thread | None = None
            try:
                run.started = run.last_output = time.monotonic()
                proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_set_pdeathsig,
                )
                run.pid = proc.pid
                _record_start(token, proc)
                if on_start is not None:
                    on_start(proc.pid)
                assert proc.stdout is not None
                reader = threading.Thread(
                    target=_read_console, args=(proc.stdout, log, stream, run), daemon=True
                )
                reader.start()
                run.returncode = _watch(proc, run, timeout_s, silence_s)
                run.ended = time.monotonic()
            finally:
                if proc is not None:
                    stop_child(
                        proc, KILL_GRACE_S
                    )  # before the log closes: the reader drains the pipe
                if reader is not None:
                    reader.join(timeout=5.0)
    finally:
        if proc is not None:
            stop_child(proc, KILL_GRACE_S)
            if proc.stdout is not None:
                proc.stdout.close()
        if run.ended == 0.0:
            run.ended = time.monotonic()
        ledger.release(LEDGER_KIND, token)
    return run


def _watch(
    proc: subprocess.Popen[bytes], run: QemuRun, timeout_s: float, silence_s: float | None
) -> int | None:
    """Wait for QEMU to exit; kill it when a watchdog bound passes.  Returns its status."""
    deadline = run.started + max(0.0, timeout_s)
    while True:
        now = time.monotonic()
        if now >= deadline:
            run.timed_out = True
            break
        if silence_s is not None and now - run.last_output >= silence_s:
            run.timed_out = True
            run.silent = True
            break
        if run.stall_line and now - run.stall_seen >= STALL_GRACE_S:
            run.timed_out = True
            break
        try:
            return proc.wait(timeout=min(deadline - now, WATCH_TICK_S))
        except subprocess.TimeoutExpired:
            continue
    stop_child(proc, KILL_GRACE_S)
    return proc.returncode


def _read_console(
    pipe: IO[bytes], log: IO[bytes], stream: ConsoleSink | None, run: QemuRun
) -> None:
    """Copy the console to the log line by line, timestamping the guest init's marker lines."""
    tail: list[str] = []
    for raw in iter(pipe.readline, b""):
        now = time.monotonic()
        run.last_output = now
        with contextlib.suppress(ValueError, OSError):  # the log closed on an abrupt exit
            log.write(raw)
            log.flush()
        line = raw.decode(errors="replace").rstrip("\r\n")
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.write(line + "\n")
                stream.flush()
        if line.startswith(MARKER):
            body = line[len(MARKER) :]
            run.marker_lines.append(body)
            word = body.split(" ", 1)[0].split("=", 1)[0].rstrip(":")
            run.markers.setdefault(word, now)
        if not run.stall_line and _STALL.search(line):
            run.stall_line, run.stall_seen = line.strip(), now
        tail.append(line)
        if len(tail) > 400:
            del tail[:200]
    run.console_tail = tail[-200:]
