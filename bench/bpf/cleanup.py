"""Ledger cleaners for what bench/bpf records: the hb-bpfctl processes that hold XDP and tc
attachments, and the netlink attachments that can outlive them.

Each cleaner first stops the record's holder if it still runs (found by pid and start
time, else by the token in its environment; never a process that merely reuses the pid).
For a bpf_link (XDP, tcx) that is all: the kernel detached the program when the holder's
last file descriptor went.  A netlink filter (the tc fallback on kernels without tcx) is
then removed, as is whatever a record of an older version of the suite names (it attached
everything through netlink and had no holder).  Each removes only what its record names
(and only objects carrying the suite's tags), and tolerates absence."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.bpf import BpfError
from bench.bpf.control import detach_tc, detach_xdp
from bench.system.ledger import Record
from bench.system.owned import OWNER_ENV
from bench.system.processes import ProcessIdentity, carrying, stop_identified


def _netns(rec: Record) -> str | None:
    netns = rec.details.get("netns")
    return str(netns) if netns else None


def _prog_id(rec: Record) -> int | None:
    value = rec.details.get("prog_id")
    return int(value) if value else None


def _holders(holder: Mapping[str, Any]) -> list[ProcessIdentity]:
    pid, started, token = holder.get("pid"), holder.get("started"), holder.get("token")
    if isinstance(pid, int) and isinstance(started, int | float):
        return [ProcessIdentity(pid, float(started))]
    if isinstance(token, str) and token:
        return carrying(OWNER_ENV, token)
    return []


def stop_holder(rec: Record) -> None:
    """Stop the process the record names as holding its attachment, if it still runs."""
    holder = rec.details.get("holder")
    if not isinstance(holder, Mapping):
        return  # a record of an older version: no holder
    for identity in _holders(holder):
        stop_identified(identity)
        if identity.alive():
            raise BpfError(f"the holder of {rec.kind} {rec.ident} (pid {identity.pid}) survived")


def clean_xdp(rec: Record) -> None:
    stop_holder(rec)
    if rec.details.get("attach") == "link":
        return  # detached by the kernel with its holder
    detach_xdp(str(rec.details["ifname"]), str(rec.details["mode"]), _netns(rec), _prog_id(rec))


def clean_tc(rec: Record) -> None:
    stop_holder(rec)
    if rec.details.get("attach") == "tcx":
        return  # detached by the kernel with its holder
    # netlink, an older record, or a holder that died before it said which
    created = rec.details.get("created_qdisc")
    detach_tc(
        str(rec.details["ifname"]),
        _netns(rec),
        int(rec.details["handle"]),
        int(rec.details["priority"]),
        _prog_id(rec),
        bool(created) if created is not None else None,
    )
