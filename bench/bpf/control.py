"""Attaches hellobench's BPF programs to interfaces (XDP, tc clsact ingress), detaches them,
and reads their counters.  Every attachment is written to the ledger before it is
made and released after it is gone; detaching touches only the program the suite attached.

All work goes through hb-bpfctl (bench/bpf/bpfctl.c, libbpf), which enters the network
namespace itself when asked, so that nothing here changes the namespace of this process.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import struct
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bench.bpf import BpfError
from bench.bpf.build import bpfctl
from bench.native.build import BuildError
from bench.system import ledger
from bench.system.netns import exists as netns_exists

PROG_PREFIX = "hb_"  # every BPF program of the suite is named hb_*
TC_PRIORITY = 0x4842  # "HB": the tc filter priority of every filter of the suite
# struct hb_counters (bench/bpf/hb_reflect.h), in order.  "passed" counts everything handed
# to the stack; the declined_* counters are the datagrams for the port among them that were
# not answered because a socket bound there would not be given them (or not answer them).
COUNTER_NAMES = (
    "answered",
    "passed",
    "rejected",
    "declined_ip_options",
    "declined_ip_csum",
    "declined_dst",
    "declined_src",
    "declined_not_host",
)
TOOL_TIMEOUT_S = 10.0
XdpMode = Literal["skb", "drv"]
XDP_CLEANER = "bench.bpf.cleanup:clean_xdp"
TC_CLEANER = "bench.bpf.cleanup:clean_tc"

_tc_seq = itertools.count()


def run_tool(args: Sequence[str], netns: str | None = None) -> dict[str, Any]:
    """Run one hb-bpfctl command and return its JSON answer."""
    try:
        tool = bpfctl()
    except BuildError as exc:
        raise BpfError(str(exc)) from exc
    argv = [str(tool), *args, *(["--netns", netns] if netns else [])]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise BpfError(f"{' '.join(argv)} timed out") from exc
    if proc.returncode != 0:
        raise BpfError(proc.stderr.strip()[-1500:] or f"{argv[1]} failed")
    answer = json.loads(proc.stdout)
    if not isinstance(answer, dict):
        raise BpfError(f"unexpected answer from {argv[1]}: {proc.stdout!r}")
    return answer


def addr_value(addr: str) -> int:
    """An IPv4 address as the integer whose in-memory bytes are the address (0: any)."""
    if addr in ("", "0.0.0.0"):
        return 0
    value: int = struct.unpack("=I", socket.inet_aton(addr))[0]
    return value


def rodata_args(values: Mapping[str, int]) -> list[str]:
    return [arg for name, value in values.items() for arg in ("--set", f"{name}={value}")]


def read_counters(map_id: int) -> dict[str, int]:
    """The per-CPU counters of a reflector, summed over CPUs."""
    values = run_tool(["counters", "--map-id", str(map_id)])["values"]
    return {name: int(v) for name, v in zip(COUNTER_NAMES, values, strict=False)}


def _ns_label(netns: str | None) -> str:
    return netns or "host"


@dataclass
class XdpAttachment:
    """An XDP program of the suite on one interface."""

    ifname: str
    mode: XdpMode
    netns: str | None
    prog_id: int
    map_id: int
    ident: str
    detached: bool = False

    @classmethod
    def attach(
        cls,
        obj: Path,
        prog: str,
        ifname: str,
        mode: XdpMode,
        rodata: Mapping[str, int],
        netns: str | None = None,
    ) -> XdpAttachment:
        ident = f"{os.getpid()}-{_ns_label(netns)}-{ifname}"
        details = {"ifname": ifname, "mode": mode, "netns": netns, "prefix": PROG_PREFIX}
        ledger.record("xdp", ident, XDP_CLEANER, prog_id=None, **details)
        args = ["attach-xdp", "--obj", str(obj), "--prog", prog, "--ifname", ifname]
        try:
            answer = run_tool([*args, "--mode", mode, *rodata_args(rodata)], netns)
        except BpfError:
            ledger.release("xdp", ident)  # the loader attaches all or nothing
            raise
        ledger.record("xdp", ident, XDP_CLEANER, prog_id=answer["prog_id"], **details)
        return cls(ifname, mode, netns, int(answer["prog_id"]), int(answer["map_id"]), ident)

    def attached_id(self) -> int:
        args = ["query-xdp", "--ifname", self.ifname, "--mode", self.mode]
        return int(run_tool(args, self.netns)["attached_id"])

    def detach(self) -> None:
        if self.detached:
            return
        detach_xdp(self.ifname, self.mode, self.netns, self.prog_id)
        self.detached = True
        ledger.release("xdp", self.ident)


def detach_xdp(ifname: str, mode: str, netns: str | None, prog_id: int | None) -> bool:
    """Remove the suite's XDP program (by id, else by name prefix); False when none was there."""
    if netns and not netns_exists(netns):
        return False  # the namespace and its interfaces are gone
    which = ["--prog-id", str(prog_id)] if prog_id else ["--prefix", PROG_PREFIX]
    args = ["detach-xdp", "--ifname", ifname, "--mode", mode, *which]
    try:
        return bool(run_tool(args, netns)["detached"])
    except BpfError as exc:
        if "no interface" in str(exc):
            return False
        raise


@dataclass
class TcAttachment:
    """A tc direct-action filter of the suite on an interface's clsact ingress."""

    ifname: str
    netns: str | None
    handle: int
    priority: int
    prog_id: int
    map_id: int
    created_qdisc: bool
    ident: str
    detached: bool = False

    @classmethod
    def attach(
        cls, obj: Path, prog: str, ifname: str, rodata: Mapping[str, int], netns: str | None = None
    ) -> TcAttachment:
        handle = 1 + ((os.getpid() & 0xFFFF) << 8) + (next(_tc_seq) & 0xFF)
        ident = f"{os.getpid()}-{_ns_label(netns)}-{ifname}-{handle:x}"
        details: dict[str, Any] = {
            "ifname": ifname,
            "netns": netns,
            "handle": handle,
            "priority": TC_PRIORITY,
            "prefix": PROG_PREFIX,
        }
        ledger.record("tc", ident, TC_CLEANER, prog_id=None, created_qdisc=None, **details)
        args = ["attach-tc", "--obj", str(obj), "--prog", prog, "--ifname", ifname]
        args += ["--handle", str(handle), "--priority", str(TC_PRIORITY), *rodata_args(rodata)]
        try:
            answer = run_tool(args, netns)
        except BpfError:
            ledger.release("tc", ident)
            raise
        created = bool(answer["created_qdisc"])
        ledger.record(
            "tc", ident, TC_CLEANER, prog_id=answer["prog_id"], created_qdisc=created, **details
        )
        return cls(
            ifname,
            netns,
            handle,
            TC_PRIORITY,
            int(answer["prog_id"]),
            int(answer["map_id"]),
            created,
            ident,
        )

    def attached_id(self) -> int:
        args = ["query-tc", "--ifname", self.ifname]
        args += ["--handle", str(self.handle), "--priority", str(self.priority)]
        return int(run_tool(args, self.netns)["attached_id"])

    def detach(self) -> None:
        if self.detached:
            return
        detach_tc(
            self.ifname, self.netns, self.handle, self.priority, self.prog_id, self.created_qdisc
        )
        self.detached = True
        ledger.release("tc", self.ident)


def detach_tc(
    ifname: str,
    netns: str | None,
    handle: int,
    priority: int,
    prog_id: int | None,
    created_qdisc: bool | None,
) -> bool:
    """Remove the suite's filter, and the clsact qdisc when the suite created it and it is empty."""
    if netns and not netns_exists(netns):
        return False
    which = ["--prog-id", str(prog_id)] if prog_id else ["--prefix", PROG_PREFIX]
    args = ["detach-tc", "--ifname", ifname, "--handle", str(handle), "--priority", str(priority)]
    try:
        detached = bool(run_tool([*args, *which], netns)["detached"])
    except BpfError as exc:
        if "no interface" in str(exc):
            return False
        raise
    if created_qdisc:
        remove_clsact_if_empty(ifname, netns)
    return detached


def _tc(args: Sequence[str], netns: str | None) -> subprocess.CompletedProcess[str]:
    argv = ["tc", *(["-n", netns] if netns else []), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)


def remove_clsact_if_empty(ifname: str, netns: str | None) -> bool:
    """Delete the clsact qdisc of ``ifname`` if no filter is left on it (ours or anyone's)."""
    for direction in ("ingress", "egress"):
        proc = _tc(["-j", "filter", "show", "dev", ifname, direction], netns)
        if proc.returncode != 0:
            return False  # no clsact (or no interface): nothing to remove
        if json.loads(proc.stdout or "[]"):
            return False
    return _tc(["qdisc", "del", "dev", ifname, "clsact"], netns).returncode == 0
