"""Ledger cleaners for what bench/bpf records: XDP attachments and tc filters.
Each removes only what its record names (and only objects carrying the suite's tags), and
tolerates absence."""

from __future__ import annotations

from bench.bpf.control import detach_tc, detach_xdp
from bench.system.ledger import Record


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
