"""The anatomy's events as hb-anatomyctl writes them (struct hb_anat_event of
hb_anatomy.h, little-endian, 56 bytes each), grouped into one window per sampled request."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

RECORD = struct.Struct("<QQQqIIIHHII")

# x86-64 syscall numbers (the BPF side's, see hb_anatomy.bpf.c)
SEND_SYSCALLS = frozenset({44, 46, 307})  # sendto, sendmsg, sendmmsg
RECV_SYSCALLS = frozenset({45, 47, 299})  # recvfrom, recvmsg, recvmmsg


class Kind(IntEnum):
    OPEN = 1
    SYSCALL = 2
    WAKING = 3
    WAKEUP = 4
    SWITCH_IN = 5
    XMIT = 6
    BACKLOG = 7
    RX = 8
    ENQUEUE = 9
    XDP_ENTER = 10
    XDP_EXIT = 11
    CLOSE = 12
    SEND_ENTER = 13
    KRECV = 14  # a traced kernel thread's receive has read the request
    HANDLER = 15  # a module's in-kernel handler entered with the datagram


class Role(IntEnum):
    DATAGRAM = 0
    CLIENT = 1
    SERVER = 2


class Dir(IntEnum):
    REQUEST = 1
    REPLY = 2


@dataclass(frozen=True)
class Event:
    """One record.  ``aux``: for OPEN, SYSCALL and CLOSE the syscall's entry time; ``nr``:
    the syscall number, or for datagram events the direction (:class:`Dir`)."""

    ts: int
    seq: int
    aux: int
    ret: int
    kind: int
    cpu: int
    tid: int
    role: int
    nr: int
    polls: int

    def pack(self) -> bytes:
        return RECORD.pack(
            self.ts, self.seq, self.aux, self.ret, self.kind, self.cpu, self.tid,
            self.role, self.nr, self.polls, 0,
        )  # fmt: skip


def parse(raw: bytes) -> list[Event]:
    """Every whole record of ``raw`` (a torn last record is dropped)."""
    usable = len(raw) - len(raw) % RECORD.size
    return [Event(*fields[:10]) for fields in RECORD.iter_unpack(raw[:usable])]


def read_events(path: Path) -> list[Event]:
    return parse(path.read_bytes())


@dataclass(frozen=True)
class Window:
    """One sampled request's events in time order, from the client's send syscall entry
    (``t0``) to the return of its receive that carried the reply (``end``)."""

    seq: int
    t0: int
    end: int
    close: Event
    events: tuple[Event, ...]

    def first(
        self,
        kind: Kind,
        *,
        role: Role | None = None,
        direction: Dir | None = None,
        after: int | None = None,
        before: int | None = None,
        syscalls: frozenset[int] | None = None,
    ) -> Event | None:
        """The earliest event of ``kind`` (and role, direction, syscall set) with
        ``after <= ts <= before``; a SYSCALL must have returned data (ret > 0)."""
        lo = self.t0 if after is None else after
        hi = self.end if before is None else before
        for e in self.events:
            if e.kind != kind or not lo <= e.ts <= hi:
                continue
            if role is not None and e.role != role:
                continue
            if direction is not None and e.nr != direction:
                continue
            if syscalls is not None and (e.nr not in syscalls or e.ret <= 0):
                continue
            return e
        return None


def windows(events: Iterable[Event]) -> tuple[list[Window], int]:
    """The complete windows (an OPEN and a CLOSE), by seq, and how many were incomplete."""
    by_seq: dict[int, list[Event]] = {}
    for e in events:
        by_seq.setdefault(e.seq, []).append(e)
    done: list[Window] = []
    incomplete = 0
    for seq, group in sorted(by_seq.items()):
        group.sort(key=lambda e: (e.ts, e.kind))
        opened = [e for e in group if e.kind == Kind.OPEN]
        closed = [e for e in group if e.kind == Kind.CLOSE]
        if len(opened) != 1 or len(closed) != 1 or closed[0].ts < opened[0].aux:
            incomplete += 1
            continue
        done.append(Window(seq, opened[0].aux, closed[0].ts, closed[0], tuple(group)))
    return done, incomplete
