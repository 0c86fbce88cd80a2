"""Builds afxdp_hello.bpf.c and server.c (cached) and runs the server, which loads the XDP
program itself, attaches it through a bpf_link it alone holds and binds an AF_XDP socket:
when the process dies the kernel detaches the program and frees the socket, so nothing
outside the process is left behind by a SIGKILL.

On lo the one thing outside the process is two sysctls of lo.  A reply transmitted from an
AF_XDP socket re-enters the stack on lo as a received packet with no route attached (a
local socket's datagram keeps its output route across lo), so the input route is looked
up, and 127.0.0.0/8 arriving that way is dropped: as a martian (drop reason IP_LOCALNET)
unless ``net.ipv4.conf.lo.route_localnet`` is 1, as a local source (IP_LOCAL_SOURCE)
unless ``accept_local`` is 1.  Both are held at 1 while a server runs on lo, recorded in
the ledger first (``bench cleanup`` restores them after a killed run) and restored at
stop.  With the ``lo_sysctls`` option set to ``refuse`` the impl does not run on lo and
says why instead."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench.bpf import BpfError
from bench.bpf.build import LOADER_LIBS, build_bpf_object, clang, loader_unavailable_reason
from bench.bpf.control import read_counters
from bench.host.capabilities import HostCapabilities
from bench.impl.api import Accounting, Impl, ImplError, RunningServer, ServerConfig
from bench.impl.manifest import Manifest
from bench.impl.process import ServerProcess
from bench.native.build import BuildError, build_server
from bench.system.sysctl import SysctlError, SysctlHold

IF_XDP_H = Path("/usr/include/linux/if_xdp.h")
LO_SYSCTLS = {"net.ipv4.conf.lo.route_localnet": "1", "net.ipv4.conf.lo.accept_local": "1"}
LO_REASON = (
    "on lo an AF_XDP socket binds (copy mode, generic XDP) but its replies are dropped: "
    "they re-enter lo without a route and 127.0.0.0/8 is martian to the input route "
    "(IP_LOCALNET, IP_LOCAL_SOURCE) unless net.ipv4.conf.lo.route_localnet and "
    "accept_local are 1 (option lo_sysctls = hold sets them while serving)"
)
NOTE = (
    "AF_XDP: no socket read or write per request; the syscalls left are poll() when "
    "the RX ring is empty, which transmits the queued replies before it sleeps, and a "
    "sendto() TX kick for more than 32 queued (wait=spin: a kick per batch, no poll); "
    "XDP redirect and the copy into the UMEM run in softirq"
)
OPTION_VALUES = {
    "xdp_mode": ("auto", "skb", "drv"),
    "bind": ("auto", "copy", "zerocopy"),
    "wait": ("poll", "spin"),
    "lo_sysctls": ("hold", "refuse"),
}


class AfxdpServer(RunningServer):
    """The server process, its program's ids, and the sysctls held for it."""

    def __init__(
        self, process: ServerProcess, info: dict[str, Any], hold: SysctlHold | None
    ) -> None:
        self.process = process
        self.info = info
        self._hold = hold
        self._last: dict[str, int] = {}

    @property
    def prog_id(self) -> int:
        return int(self.info["prog_id"])

    def accounting(self) -> Accounting:
        mode = f"{self.info['xdp_mode']} XDP, {self.info['bind']} AF_XDP"
        return Accounting(
            pids=(self.process.pid,), bpf_prog_ids=(self.prog_id,), note=f"{NOTE} ({mode})"
        )

    def counters(self) -> dict[str, int]:
        """The XDP program's counters (answered = redirected to the socket, rejected = for
        the port but not a request, passed to the stack); the last reading once stopped."""
        if self.process.health() is None:
            with contextlib.suppress(BpfError):
                self._last = read_counters(int(self.info["map_id"]))
        return dict(self._last)

    def health(self) -> str | None:
        return self.process.health()

    def stop(self) -> None:
        self.counters()
        try:
            self.process.stop()
        finally:
            if self._hold is not None:
                self._hold.release()
                self._hold = None


class AfxdpC(Impl):
    def unavailable_reason(self, host: HostCapabilities) -> str | None:
        reason = super().unavailable_reason(host)
        if reason:
            return reason
        if not IF_XDP_H.exists():
            return f"{IF_XDP_H} missing (apt-get install linux-libc-dev)"
        reason = loader_unavailable_reason()
        if reason:
            return reason
        if self._option("lo_sysctls") == "refuse":
            return f"lo: {LO_REASON}; runs on --topology veth"
        return None

    def _option(self, name: str, config: ServerConfig | None = None) -> str:
        value = str(
            (config.options if config else {}).get(name, self.manifest.options.get(name, ""))
        )
        allowed = OPTION_VALUES.get(name)
        if allowed and value not in allowed:
            raise ImplError(f"{name} must be {', '.join(allowed)}, not {value!r}")
        return value

    def prepare(self) -> None:
        folder = self.manifest.folder
        try:
            clang()
            self.obj = build_bpf_object(folder / "afxdp_hello.bpf.c")
            self.binary = build_server("hello-afxdp-c", folder, libs=LOADER_LIBS)
        except BuildError as exc:
            raise ImplError(str(exc)) from exc

    def start(self, config: ServerConfig) -> RunningServer:
        self.prepare()
        # every option checked (ImplError) before anything outside the process changes
        queue = self._option("queue", config)
        if not queue.isdigit():
            raise ImplError(f"queue must be a whole number, not {queue!r}")
        options = ["--xdp-mode", self._option("xdp_mode", config)]
        options += ["--bind", self._option("bind", config), "--wait", self._option("wait", config)]
        hold = self._hold_lo(config)
        tmp = Path(tempfile.mkdtemp(prefix="hb-afxdp-"))
        info_path = tmp / "info.json"
        argv = [str(self.binary), "--obj", str(self.obj), "--info", str(info_path)]
        argv += ["--addr", config.addr, "--port", str(config.port)]
        argv += ["--ifname", config.interface, "--queue", str(int(queue)), *options]
        try:
            process = ServerProcess(argv, config)
            info = json.loads(info_path.read_text())
        except BaseException:
            if hold is not None:
                hold.release()
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return AfxdpServer(process, info, hold)

    def _hold_lo(self, config: ServerConfig) -> SysctlHold | None:
        if config.interface != "lo":
            return None
        if self._option("lo_sysctls", config) == "refuse":
            raise ImplError(f"afxdp-c: {LO_REASON}")
        try:
            return SysctlHold(config.netns, LO_SYSCTLS)
        except SysctlError as exc:
            raise ImplError(f"afxdp-c on lo: {exc}") from exc


def create(manifest: Manifest) -> Impl:
    return AfxdpC(manifest)
