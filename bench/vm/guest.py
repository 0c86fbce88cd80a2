"""Runs one command in a disposable QEMU guest and reports what happened.

The guest boots the stock kernel found by bench/vm/kernel.py with the initramfs of
bench/vm/initramfs.py, sees the host's root read-only (writes land in a tmpfs overlay and
vanish), and sees ``workdir`` writable at the same path as on the host.  The command runs
chrooted in that root, so the same Python, project and caches are there.  In ``workdir``:

- ``guest/job.sh``      the command, written by the host;
- ``guest/console.log`` everything the guest printed on its serial console;
- ``guest/status``      the command's exit status, written by the guest;
- ``guest/dmesg.txt``   the guest's kernel log after the command, written by the guest;
- ``guest/outcome.json`` the GuestOutcome (without the dmesg), written by the host.

Times: ``boot_s`` runs from starting QEMU to the init's ``ready`` line (all of it when
that line never came); ``run_s`` from there to the ``exit=`` line (or to the guest's end).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from bench.host.kernel_log import scan_kernel_log
from bench.native.build import cache_dir
from bench.system.files import write_atomic
from bench.vm.initramfs import build_initramfs
from bench.vm.kernel import boot_image, find_guest_kernel
from bench.vm.qemu import (
    ACCELS,
    ConsoleSink,
    GuestSpec,
    QemuRun,
    Share,
    detect_accel,
    run_qemu,
)

FAULTS = ("hang", "panic", "no-overlay")
GUEST_DIR = "guest"
_KERNEL_LINE = re.compile(r"^\[\s*\d+\.\d+\]")
_PANIC = re.compile(r"Kernel panic - not syncing.*")


@dataclass(frozen=True)
class GuestOutcome:
    """How a guest run ended.  ``failed_reason`` is None exactly when the command ran to
    completion with status 0; ``exit_code`` is None when it never reported one."""

    exit_code: int | None
    timed_out: bool
    accel: str
    kernel: str
    boot_s: float
    run_s: float
    console_log: Path
    dmesg: str
    kernel_log_problems: list[str]
    failed_reason: str | None
    qemu_pid: int | None = None
    accel_reason: str = ""

    @property
    def ok(self) -> bool:
        return self.failed_reason is None


def _job_script(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    lines = [
        "#!/bin/sh",
        "# The command of one hellobench guest run (written by bench/vm/guest.py).",
        f"cd {shlex.quote(str(cwd))} || {{ printf 'guest: cannot enter %s\\n' "
        f"{shlex.quote(str(cwd))} >&2; exit 125; }}",
    ]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
    lines.append("exec " + " ".join(shlex.quote(arg) for arg in argv))
    return "\n".join(lines) + "\n"


def guest_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment the command starts with in the guest (plus ``extra``)."""
    path = os.environ.get("PATH", "/usr/bin:/bin")
    for sbin in ("/usr/local/sbin", "/usr/sbin", "/sbin"):
        if sbin not in path.split(":"):
            path += ":" + sbin
    env = {
        "PATH": path,
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "COLUMNS": "160",
        "HELLOBENCH_CACHE": str(cache_dir()),
        "HELLOBENCH_GUEST": "1",
    }
    env.update(extra or {})
    bad = [name for name in env if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)]
    if bad:
        raise ValueError(f"invalid environment variable name(s): {', '.join(bad)}")
    return env


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _console_kernel_lines(console_log: Path) -> str:
    try:
        text = console_log.read_text(errors="replace")
    except OSError:
        return ""
    return "".join(line + "\n" for line in text.splitlines() if _KERNEL_LINE.match(line))


def _failure(
    run: QemuRun,
    exit_code: int | None,
    timeout_s: float,
    silence_s: float | None,
    console_text: str,
) -> str | None:
    ready = "ready" in run.markers
    if run.timed_out:
        if "exit" in run.markers:
            phase = f"while powering off after the command ended (status {exit_code})"
        elif "start" in run.markers:
            phase = "while running the command"
        elif ready:
            phase = "after boot, before the command started"
        else:
            phase = "while booting"
        if run.stall_line:
            return f"watchdog: guest kernel stalled {phase} ({run.stall_line}); guest killed"
        if run.silent:
            return f"watchdog: guest killed after {silence_s:g} s of console silence, {phase}"
        return f"watchdog: guest killed after {timeout_s:g} s, {phase}"
    panic = _PANIC.search(console_text)
    if panic:
        return f"guest kernel panicked: {panic.group(0).strip()}"
    init_failures = [m for m in run.marker_lines if m.startswith("failed:")]
    if init_failures:
        return "guest init " + init_failures[0]
    if run.returncode not in (0, None):
        tail = "; ".join(line for line in run.console_tail[-5:] if line.strip())
        return f"QEMU exited with status {run.returncode}: {tail}"
    if not ready:
        return "guest ended before its init was ready (see the console log)"
    if exit_code is None:
        return "guest ended without reporting the command's exit status"
    if exit_code != 0:
        return f"command exited with status {exit_code}"
    return None


def run_in_guest(
    argv: list[str],
    *,
    workdir: Path,
    timeout_s: float,
    accel: str | None = None,
    smp: int = 2,
    memory_mb: int = 2048,
    env: dict[str, str] | None = None,
    fault: str | None = None,
    cwd: Path | None = None,
    kernel_release: str | None = None,
    stream: ConsoleSink | None = None,
    silence_s: float | None = None,
) -> GuestOutcome:
    """Boot a guest, run ``argv`` in it (cwd: ``cwd`` or the current folder), power it off.

    ``workdir`` is shared writable at the same path.  A watchdog kills the guest after
    ``timeout_s`` seconds in all (boot included).  ``accel`` None picks KVM when usable,
    else TCG (see ``detect_accel``).  ``fault`` (tests only): ``hang`` makes the guest's
    init stop before the command and never power off; ``panic`` crashes the guest kernel;
    ``no-overlay`` makes init take its fallback: the host root read-only, tmpfs on /tmp.
    ``stream`` receives the console as it comes; ``silence_s``, when given, also kills a
    guest whose console has printed nothing for that long.
    """
    if not argv:
        raise ValueError("argv is empty")
    if fault is not None and fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}: expected one of {', '.join(FAULTS)}")
    if accel is not None and accel not in ACCELS:
        raise ValueError(f"unknown accel {accel!r}: expected one of {', '.join(ACCELS)}")
    workdir = workdir.resolve()
    if "\n" in str(workdir):
        raise ValueError("workdir path must not contain a newline")
    chosen, why = (accel, "chosen by the caller") if accel else detect_accel()
    kernel = find_guest_kernel(kernel_release)
    initrd = build_initramfs(kernel)

    control = workdir / GUEST_DIR
    control.mkdir(parents=True, exist_ok=True)
    for stale in ("status", "dmesg.txt", "outcome.json"):
        (control / stale).unlink(missing_ok=True)
    (control / "mountpoint").write_text(str(workdir) + "\n")
    job = _job_script(argv, (cwd or Path.cwd()).resolve(), guest_environment(env))
    (control / "job.sh").write_text(job)
    console_log = control / "console.log"

    # loglevel=5: WARN() reports reach the console too (they matter most when a guest hangs).
    cmdline = "console=ttyS0 quiet loglevel=5 panic=-1 log_buf_len=4M hb.mode=run"
    if fault:
        cmdline += f" hb.fault={fault}"
    spec = GuestSpec(
        kernel=kernel,
        image=boot_image(kernel),
        initrd=initrd,
        accel=chosen,
        smp=smp,
        memory_mb=memory_mb,
        cmdline=cmdline,
        shares=(
            Share("hostroot", Path("/"), readonly=True),
            Share("results", workdir, readonly=False),
        ),
    )
    run = run_qemu(
        spec, console_log=console_log, timeout_s=timeout_s, silence_s=silence_s, stream=stream
    )

    exit_code = _read_int(control / "status")
    try:
        dmesg = (control / "dmesg.txt").read_text(errors="replace")
    except OSError:
        dmesg = ""
    console_kernel = _console_kernel_lines(console_log)
    ready_at = run.markers.get("ready")
    done_at = run.markers.get("exit", run.ended)
    outcome = GuestOutcome(
        exit_code=exit_code,
        timed_out=run.timed_out,
        accel=chosen,
        kernel=kernel.release,
        boot_s=(ready_at if ready_at is not None else run.ended) - run.started,
        run_s=max(0.0, done_at - ready_at) if ready_at is not None else 0.0,
        console_log=console_log,
        dmesg=dmesg,
        kernel_log_problems=scan_kernel_log(dmesg or console_kernel),
        failed_reason=_failure(run, exit_code, timeout_s, silence_s, console_kernel),
        qemu_pid=run.pid,
        accel_reason=why,
    )
    _save_outcome(outcome, control / "outcome.json")
    return outcome


def _save_outcome(outcome: GuestOutcome, path: Path) -> None:
    body = dataclasses.asdict(outcome)
    del body["dmesg"]  # in dmesg.txt beside it
    body["console_log"] = str(outcome.console_log)
    write_atomic(path, json.dumps(body, indent=1) + "\n")
