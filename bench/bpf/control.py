"""Attaches hellobench's BPF programs to interfaces (XDP, tc ingress), detaches them, and
reads their counters.  All work goes through hb-bpfctl (bench/bpf/bpfctl.c, libbpf), which
enters the network namespace itself when asked, so that nothing here changes the namespace
of this process.

An attachment is held by an hb-bpfctl process (a :class:`Holder`) that stays in the
foreground until it is stopped, the way a server process runs:

- XDP through a bpf_link, and tc through a tcx bpf_link where the kernel has tcx (6.6 or
  later): the link's one file descriptor is the holder's, so when the holder dies, however
  it dies, the kernel detaches the program.  Nothing outlives the holder;
- tc on older kernels (or with ``tc_attach = "netlink"``) through netlink, as a filter on
  the clsact ingress: the holder removes it when stopped, but a killed holder leaves it.

Each holder has a ledger record, written before it starts and released once it is gone.
Its cleaner stops the holder (found by pid and start time, else by the token in its
environment); only for a netlink filter (and for records of older versions of the suite,
which attached everything through netlink) does it then remove the filter, touching only
the program the suite attached.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import select
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bench.bpf import BpfError
from bench.bpf.build import bpfctl
from bench.native.build import BuildError
from bench.system import ledger
from bench.system.netns import exists as netns_exists
from bench.system.owned import OWNER_ENV
from bench.system.processes import ProcessIdentity, stop_child

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
    "declined_udp_csum",
)
TOOL_TIMEOUT_S = 10.0
HOLDER_GRACE_S = 3.0
XdpMode = Literal["skb", "drv"]
TcAttach = Literal["auto", "tcx", "netlink"]
TC_ATTACH = ("auto", "tcx", "netlink")
XDP_CLEANER = "bench.bpf.cleanup:clean_xdp"
TC_CLEANER = "bench.bpf.cleanup:clean_tc"

_tc_seq = itertools.count()


def _argv(args: Sequence[str], netns: str | None) -> list[str]:
    try:
        tool = bpfctl()
    except BuildError as exc:
        raise BpfError(str(exc)) from exc
    return [str(tool), *args, *(["--netns", netns] if netns else [])]


def run_tool(args: Sequence[str], netns: str | None = None) -> dict[str, Any]:
    """Run one hb-bpfctl command and return its JSON answer."""
    argv = _argv(args, netns)
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


class Holder:
    """An hb-bpfctl attach command holding its attachment until :meth:`stop` (SIGTERM).

    It runs in a session of its own, like a server process (a Ctrl-C at the terminal is for
    the run, which stops it in order), and carries ``token`` in its environment so that the
    ledger's cleaner finds it even when the run died before recording its pid.  Its one line
    of JSON says what it attached; it writes nothing more."""

    def __init__(self, args: Sequence[str], netns: str | None, token: str) -> None:
        argv = _argv(args, netns)
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env={**os.environ, OWNER_ENV: token},
        )
        self.command = str(args[0])
        self.token = token
        self.identity = ProcessIdentity.of(self.proc.pid)
        self.answer: dict[str, Any] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def details(self) -> dict[str, Any]:
        """What the ledger record keeps of the holder."""
        started = self.identity.started if self.identity else None
        return {"token": self.token, "pid": self.pid, "started": started}

    def read_answer(self, timeout_s: float = TOOL_TIMEOUT_S) -> dict[str, Any]:
        """The holder's answer, once it has attached; BpfError when it failed or said
        nothing in ``timeout_s``."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        pending = b""
        while b"\n" not in pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BpfError(f"{self.command} did not answer in {timeout_s:.0f} s")
            ready, _, _ = select.select([fd], [], [], min(left, 0.1))
            chunk = os.read(fd, 4096) if ready else b""
            pending += chunk
            if ready and not chunk:
                self.proc.wait()
                raise BpfError(self.stderr_tail() or f"{self.command} failed")
        try:
            answer = json.loads(pending.split(b"\n", 1)[0])
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise BpfError(f"unexpected answer from {self.command}: {pending!r}")
        self.answer = answer
        return answer

    def stderr_tail(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        data: bytes = self.proc.stderr.read()
        return data.decode(errors="replace").strip()[-1500:]

    def problem(self) -> str | None:
        """None while the holder runs, else how it ended."""
        code = self.proc.poll()
        if code is None:
            return None
        why = self.stderr_tail()
        return f"the process holding the program (pid {self.pid}) exited with status {code}" + (
            f": {why}" if why else ""
        )

    def stop(self) -> int | None:
        """SIGTERM (the holder removes its attachment and exits), then SIGKILL after a
        grace period; reaps it.  Its exit status: 0 when it removed the attachment itself,
        -SIGTERM when the signal came before it attached anything, None when it could not
        be reaped."""
        code = stop_child(self.proc, HOLDER_GRACE_S)
        if code is not None:
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()
        return code


def _holder_record(token: str) -> dict[str, Any]:
    return {"token": token, "pid": None, "started": None}


def _start_holder(
    kind: str, ident: str, cleaner: str, args: Sequence[str], details: Mapping[str, Any]
) -> tuple[Holder, dict[str, Any]]:
    """Record, then start, a holder; returns it with its answer.  The record is released
    when the holder failed before attaching, or was stopped having removed what it
    attached; otherwise it stays for the sweep."""
    token = secrets.token_hex(8)
    ledger.record(kind, ident, cleaner, holder=_holder_record(token), **details)
    try:
        holder = Holder(args, details.get("netns"), token)
    except BaseException:
        ledger.release(kind, ident)
        raise
    ledger.record(kind, ident, cleaner, holder=holder.details(), **details)
    try:
        return holder, holder.read_answer()
    except BaseException:
        code = holder.stop()
        # 1 without an answer: refused before anything was attached (it attaches all or
        # nothing); 0: removed it at SIGTERM; -SIGTERM: ended before it could attach
        if code in (0, -signal.SIGTERM) or (code == 1 and holder.answer is None):
            ledger.release(kind, ident)
        raise


@dataclass
class XdpAttachment:
    """An XDP program of the suite on one interface, attached through a bpf_link that its
    holder process alone keeps: it goes when the holder goes."""

    ifname: str
    mode: XdpMode
    netns: str | None
    prog_id: int
    map_id: int
    ident: str
    holder: Holder
    link_id: int = 0
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
        args = ["attach-xdp", "--obj", str(obj), "--prog", prog, "--ifname", ifname]
        args += ["--mode", mode, *rodata_args(rodata)]
        holder, answer = _start_holder(
            "xdp", ident, XDP_CLEANER, args, {"prog_id": None, "attach": "link", **details}
        )
        ledger.record(
            "xdp",
            ident,
            XDP_CLEANER,
            prog_id=answer["prog_id"],
            attach="link",
            holder=holder.details(),
            **details,
        )
        return cls(
            ifname,
            mode,
            netns,
            int(answer["prog_id"]),
            int(answer["map_id"]),
            ident,
            holder,
            int(answer.get("link_id", 0)),
        )

    def attached_id(self) -> int:
        args = ["query-xdp", "--ifname", self.ifname, "--mode", self.mode]
        return int(run_tool(args, self.netns)["attached_id"])

    def problem(self) -> str | None:
        """None while the program is attached, else what happened to it."""
        return _problem(self.holder, self.prog_id, self.ifname, self.attached_id)

    def detach(self) -> None:
        if self.detached:
            return
        code = self.holder.stop()
        if code is None:
            raise BpfError(f"the process holding program {self.prog_id} could not be stopped")
        # the holder is gone, and with it the link and the attachment
        self.detached = True
        ledger.release("xdp", self.ident)


def _problem(holder: Holder, prog_id: int, ifname: str, attached: Any) -> str | None:
    ended = holder.problem()
    if ended:
        return ended
    try:
        found = int(attached())
    except BpfError as exc:
        return f"cannot query the attachment: {exc}"
    if found != prog_id:
        return f"program {prog_id} no longer attached to {ifname} (found {found or 'none'})"
    return None


def detach_xdp(ifname: str, mode: str, netns: str | None, prog_id: int | None) -> bool:
    """Remove the suite's XDP program attached through netlink (by id, else by name prefix);
    False when none was there.  What older versions of the suite left: the suite attaches
    XDP through bpf_links now."""
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
    """A tc program of the suite on an interface's ingress: a tcx link its holder process
    alone keeps (``attach == "tcx"``), or a direct-action filter on the clsact ingress made
    through netlink (``"netlink"``), which its holder removes when stopped."""

    ifname: str
    netns: str | None
    handle: int
    priority: int
    prog_id: int
    map_id: int
    created_qdisc: bool
    ident: str
    holder: Holder
    via: str  # "tcx" or "netlink"
    link_id: int = 0  # the tcx link (0: netlink)
    detached: bool = False

    @classmethod
    def attach(
        cls,
        obj: Path,
        prog: str,
        ifname: str,
        rodata: Mapping[str, int],
        netns: str | None = None,
        how: TcAttach = "auto",
    ) -> TcAttachment:
        """Attach through tcx where the kernel has it (``how="auto"``), else through netlink."""
        if how not in TC_ATTACH:
            raise BpfError(f"tc attach must be one of {', '.join(TC_ATTACH)}, not {how!r}")
        handle = 1 + ((os.getpid() & 0xFFFF) << 8) + (next(_tc_seq) & 0xFF)
        ident = f"{os.getpid()}-{_ns_label(netns)}-{ifname}-{handle:x}"
        details: dict[str, Any] = {
            "ifname": ifname,
            "netns": netns,
            "handle": handle,
            "priority": TC_PRIORITY,
            "prefix": PROG_PREFIX,
        }
        args = ["attach-tc", "--obj", str(obj), "--prog", prog, "--ifname", ifname]
        args += ["--handle", str(handle), "--priority", str(TC_PRIORITY), "--attach", how]
        args += rodata_args(rodata)
        # which way it attaches is known from its answer: until then the record says netlink
        holder, answer = _start_holder(
            "tc", ident, TC_CLEANER, args, {"prog_id": None, "created_qdisc": None, **details}
        )
        attach = str(answer.get("attach", "netlink"))
        created = bool(answer["created_qdisc"])
        ledger.record(
            "tc",
            ident,
            TC_CLEANER,
            prog_id=answer["prog_id"],
            created_qdisc=created,
            attach=attach,
            holder=holder.details(),
            **details,
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
            holder,
            attach,
            int(answer.get("link_id", 0)),
        )

    def attached_id(self) -> int:
        if self.via == "tcx":
            ids = [
                int(i)
                for i in run_tool(["query-tcx", "--ifname", self.ifname], self.netns)[
                    "attached_ids"
                ]
            ]
            return self.prog_id if self.prog_id in ids else (ids[0] if ids else 0)
        args = ["query-tc", "--ifname", self.ifname]
        args += ["--handle", str(self.handle), "--priority", str(self.priority)]
        return int(run_tool(args, self.netns)["attached_id"])

    def problem(self) -> str | None:
        """None while the program is attached, else what happened to it."""
        return _problem(self.holder, self.prog_id, self.ifname, self.attached_id)

    def detach(self) -> None:
        if self.detached:
            return
        code = self.holder.stop()
        if self.via != "tcx":
            # the holder removed its filter unless it was killed; the qdisc is ours to remove
            detach_tc(
                self.ifname,
                self.netns,
                self.handle,
                self.priority,
                self.prog_id,
                self.created_qdisc,
            )
        if code is None:
            raise BpfError(f"the process holding program {self.prog_id} could not be stopped")
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
