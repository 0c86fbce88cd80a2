"""Builds server.c against liburing (cached) and runs it; see server.c for the server.

The manifest option ``sqpoll = "1"`` (the iouring-sqpoll-c variant) sets the ring up with
IORING_SETUP_SQPOLL.  Server options (``--server-levels`` or the run's server options):
``sq_cpu`` pins the SQ thread (default: the server CPU), ``sq_idle_ms`` is its idle time
before it sleeps (default 1000), ``recv = "recvmsg"`` forces the plain recvmsg fallback.

The server says on a line before READY which receive method the kernel took; that line
goes into the accounting note.  The SQ thread (iou-sqp-PID) is a thread of the server
process, so the per-process probes, which count every thread in /proc/PID/task, count it.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from functools import cache
from pathlib import Path

from bench.host.capabilities import HostCapabilities
from bench.impl.api import Accounting, Impl, ImplError, RunningServer, ServerConfig
from bench.impl.manifest import Manifest
from bench.impl.process import ServerProcess
from bench.native.build import BuildError, build_server

IO_URING_DISABLED = Path("/proc/sys/kernel/io_uring_disabled")
PROBE_TIMEOUT_S = 10.0
SQ_THREAD_PREFIX = "iou-sqp-"
RECV_METHODS = ("auto", "recvmsg")


def disabled_reason(path: Path | None = None) -> str | None:
    """Why the kernel refuses io_uring to this process, or None (also when it cannot tell)."""
    path = path or IO_URING_DISABLED
    try:
        value = path.read_text().strip()
    except OSError:
        return None
    if value == "2":
        return f"io_uring disabled by the kernel ({path.name}=2)"
    if value == "1" and os.geteuid() != 0:
        return f"io_uring limited to kernel.io_uring_group ({path.name}=1), not root"
    return None


@cache
def _probe(binary: Path, sqpoll: bool) -> str | None:
    argv = [str(binary), "--probe", *(["--sqpoll"] if sqpoll else [])]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"io_uring probe failed: {exc}"
    if proc.returncode != 0:
        return f"io_uring not usable here: {proc.stderr.strip() or f'status {proc.returncode}'}"
    return None


def sq_threads(pid: int) -> list[int]:
    """Thread ids of the process's io_uring SQ threads (comm ``iou-sqp-PID``)."""
    found = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for tid in tids:
        try:
            comm = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        except OSError:
            continue
        if comm.startswith(SQ_THREAD_PREFIX):
            found.append(int(tid))
    return sorted(found)


class IouringServer(ServerProcess):
    """The server process, with its startup line and SQ thread in the accounting note."""

    def __init__(self, argv: list[str], config: ServerConfig, sqpoll: bool) -> None:
        super().__init__(argv, config)
        self._sqpoll = sqpoll

    @property
    def setup_line(self) -> str:
        return next((line for line in self.startup_lines if line.startswith("recv=")), "")

    def accounting(self) -> Accounting:
        parts = [f"io_uring {self.setup_line or 'setup line missing'}"]
        if self._sqpoll:
            tids = sq_threads(self.pid)
            if tids:
                parts.append(
                    f"SQ thread {SQ_THREAD_PREFIX}{self.pid} (tid {', '.join(map(str, tids))})"
                    " is a thread of the server process: its CPU and switches are the server's"
                )
            else:
                parts.append(f"SQ thread {SQ_THREAD_PREFIX}{self.pid} not found")
        return replace(super().accounting(), note="; ".join(parts))


class IouringC(Impl):
    @property
    def sqpoll(self) -> bool:
        return self.manifest.options.get("sqpoll", "0") == "1"

    def _build(self) -> Path:
        return build_server("hello-iouring-c", self.manifest.folder, libs=["-luring"])

    def unavailable_reason(self, host: HostCapabilities) -> str | None:
        reason = super().unavailable_reason(host) or disabled_reason()
        if reason:
            return reason
        try:
            binary = self._build()
        except BuildError as exc:
            last = str(exc).strip().splitlines()[-1:] or [""]
            return f"cannot build against liburing (apt-get install liburing-dev): {last[0]}"
        return _probe(binary, self.sqpoll)

    def prepare(self) -> None:
        reason = disabled_reason()
        if reason:
            raise ImplError(reason)
        try:
            self._binary = self._build()
        except BuildError as exc:
            raise ImplError(str(exc)) from exc

    def _option(self, config: ServerConfig, key: str) -> str | None:
        return config.options.get(key, self.manifest.options.get(key))

    def start(self, config: ServerConfig) -> RunningServer:
        self.prepare()
        argv = [str(self._binary), "--addr", config.addr, "--port", str(config.port)]
        recv = self._option(config, "recv") or "auto"
        if recv not in RECV_METHODS:
            raise ImplError(f"{self.name}: option recv={recv!r} not in {RECV_METHODS}")
        if recv == "recvmsg":
            argv.append("--force-recvmsg")
        if self.sqpoll:
            argv.append("--sqpoll")
            sq_cpu = self._option(config, "sq_cpu")
            if sq_cpu is None and config.cpu is not None:
                sq_cpu = str(config.cpu)
            if sq_cpu is not None:
                argv += ["--sq-cpu", sq_cpu]
            idle = self._option(config, "sq_idle_ms")
            if idle is not None:
                argv += ["--sq-idle-ms", idle]
        return IouringServer(argv, config, self.sqpoll)


def create(manifest: Manifest) -> Impl:
    return IouringC(manifest)
