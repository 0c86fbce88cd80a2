"""Cleaners for the kinds of objects bench/bpf and bench/topology record in the ownership
ledger: XDP attachments, tc filters, network namespaces and BPF pins.  Each removes only
what its record names (and only objects carrying the suite's tags), and tolerates absence."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bench import ownership
from bench.bpf.control import detach_tc, detach_xdp
from bench.ownership import Record

NETNS_PREFIX = "hb-"
PIN_ROOT = Path("/sys/fs/bpf")
PIN_PREFIX = "hellobench-"


def _netns(rec: Record) -> str | None:
    netns = rec.details.get("netns")
    return str(netns) if netns else None


def _prog_id(rec: Record) -> int | None:
    value = rec.details.get("prog_id")
    return int(value) if value else None


def clean_xdp(rec: Record) -> None:
    detach_xdp(str(rec.details["ifname"]), str(rec.details["mode"]), _netns(rec), _prog_id(rec))


def clean_tc(rec: Record) -> None:
    created = rec.details.get("created_qdisc")
    detach_tc(
        str(rec.details["ifname"]),
        _netns(rec),
        int(rec.details["handle"]),
        int(rec.details["priority"]),
        _prog_id(rec),
        bool(created) if created is not None else None,
    )


def remove_netns(name: str) -> None:
    """Delete the named namespace if it exists and is one of the suite's (``hb-``)."""
    if not name.startswith(NETNS_PREFIX):
        raise ValueError(f"refusing to delete netns {name!r}: not one of the suite's")
    if not Path("/run/netns", name).exists():
        return
    proc = subprocess.run(["ip", "netns", "del", name], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0 and Path("/run/netns", name).exists():
        raise RuntimeError(f"ip netns del {name}: {proc.stderr.strip()}")


def clean_netns(rec: Record) -> None:
    remove_netns(rec.ident)


def clean_pin(rec: Record) -> None:
    path = Path(str(rec.details.get("path", "")))
    if not path.is_relative_to(PIN_ROOT) or not path.relative_to(PIN_ROOT).parts:
        raise ValueError(f"refusing to unpin {path}: not under {PIN_ROOT}")
    if not path.relative_to(PIN_ROOT).parts[0].startswith(PIN_PREFIX):
        raise ValueError(f"refusing to unpin {path}: not one of the suite's ({PIN_PREFIX}*)")
    if path.is_dir():
        for child in sorted(path.rglob("*"), reverse=True):
            child.rmdir() if child.is_dir() else child.unlink(missing_ok=True)
        path.rmdir()
    else:
        path.unlink(missing_ok=True)


ownership.register_cleaner("xdp", clean_xdp)
ownership.register_cleaner("tc", clean_tc)
ownership.register_cleaner("netns", clean_netns)
ownership.register_cleaner("bpf-pin", clean_pin)
