"""What a fuzz exchange must leave true, and the verdict: no hostile datagram answered, no
valid one missed, the server alive and answering, its BPF program still attached, the
kernel log clean.  ``FuzzResult`` is one impl's record of all of it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.fuzz.exchange import Tally
from bench.fuzz.spoofed import SpoofedTally
from bench.impl.api import Accounting
from bench.system.netns import exec_prefix


def socket_drops(pids: Iterable[int], port: int) -> int | None:
    """Datagrams the kernel dropped at the server's socket(s) on ``port`` (the ``drops``
    column of /proc/PID/net/udp, seen from the server's namespace), None without a pid."""
    total: int | None = None
    for pid in pids:
        for name in ("udp", "udp6"):
            try:
                lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                if len(fields) > 12 and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    total = (total or 0) + int(fields[-1])
        if total is not None:
            return total
    return total


def _run_quiet(argv: list[str]) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None


def bpf_attachment(accounting: Accounting, interface: str, netns: str | None) -> tuple[bool, str]:
    """Whether the server's BPF programs are still loaded and one of them still attached
    to ``interface`` (``bpftool prog show id N``, ``bpftool net show dev IF``)."""
    ids = accounting.bpf_prog_ids
    gone = []
    for prog_id in ids:
        proc = _run_quiet(["bpftool", "prog", "show", "id", str(prog_id)])
        if proc is None:
            return False, "bpftool not runnable"
        if proc.returncode != 0:
            gone.append(prog_id)
    if gone:
        return False, f"program(s) {gone} no longer loaded"
    proc = _run_quiet([*exec_prefix(netns), "bpftool", "-j", "net", "show", "dev", interface])
    if proc is None or proc.returncode != 0:
        return False, f"bpftool net show dev {interface} failed"
    try:
        listing = json.loads(proc.stdout or "[]")
    except ValueError:
        return False, "bpftool net show: unreadable output"
    attached: set[int] = set()
    for group in listing if isinstance(listing, list) else [listing]:
        for hooks in group.values():
            for hook in hooks if isinstance(hooks, list) else []:
                if isinstance(hook, dict) and "id" in hook:
                    attached.add(int(hook["id"]))
                for prog in hook.get("programs", []) if isinstance(hook, dict) else []:
                    if "id" in prog:
                        attached.add(int(prog["id"]))
    if attached.intersection(ids):
        return True, f"program(s) {list(ids)} loaded, attached to {interface}"
    links = _linked(ids)
    if links:
        # a tcx link is not listed by ``net show`` in older bpftool, nor its interface
        return True, f"program(s) {list(ids)} loaded, held by bpf_link(s) {links}"
    return False, f"none of {list(ids)} attached to {interface}"


def _linked(ids: Iterable[int]) -> list[int]:
    """The ids of the bpf_links that hold one of the programs ``ids`` (``bpftool link``)."""
    proc = _run_quiet(["bpftool", "-j", "link", "show"])
    if proc is None or proc.returncode != 0:
        return []
    try:
        listing = json.loads(proc.stdout or "[]")
    except ValueError:
        return []
    if not isinstance(listing, list):
        return []
    wanted = set(ids)
    return [
        int(link["id"])
        for link in listing
        if isinstance(link, dict) and link.get("prog_id") in wanted and "id" in link
    ]


@dataclass
class FuzzResult:
    impl: str
    topology: str
    status: str  # "pass", "fail" or "skipped"
    reason: str | None = None
    seed: int = 0
    malformed_sent: int = 0
    valid_sent: int = 0
    sync_sent: int = 0
    bytes_sent: int = 0
    malformed_by_category: dict[str, int] = field(default_factory=dict)
    malformed_replied: int = 0
    malformed_replied_by_category: dict[str, int] = field(default_factory=dict)
    unexpected_examples: list[str] = field(default_factory=list)
    valid_answered: int = 0
    valid_missing: int = 0
    retries: int = 0
    duplicates: int = 0
    send_errors: dict[str, int] = field(default_factory=dict)
    server_socket_drops: int | None = None
    alive: bool | None = None
    final_hello: bool | None = None
    counters: dict[str, int] | None = None
    bpf_attached: bool | None = None
    bpf_detail: str | None = None
    # the spoofed-sources phase (bench/fuzz/spoofed.py), per category; None: not run
    spoofed_sent: dict[str, int] | None = None
    spoofed_answered: dict[str, int] | None = None
    spoofed_unicast: dict[str, int] = field(default_factory=dict)
    spoofed_control_sent: int = 0
    spoofed_control_answered: int = 0
    spoofed_unconfirmed: list[str] = field(default_factory=list)
    spoofed_unattributed: int = 0
    spoofed_notes: list[str] = field(default_factory=list)
    kernel_log_readable: bool | None = None
    kernel_log_problems: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    failures: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def apply_tally(result: FuzzResult, tally: Tally) -> None:
    result.malformed_sent = tally.malformed_sent
    result.valid_sent = tally.valid_sent
    result.sync_sent = tally.sync_sent
    result.bytes_sent = tally.bytes_sent
    result.malformed_by_category = dict(sorted(tally.by_category.items()))
    result.malformed_replied = tally.malformed_replied
    result.malformed_replied_by_category = dict(sorted(tally.replied_by_category.items()))
    result.unexpected_examples = list(tally.unexpected_examples)
    result.valid_answered = tally.valid_answered
    result.valid_missing = tally.valid_missing
    result.retries = tally.retries
    result.duplicates = tally.duplicates
    result.send_errors = dict(tally.send_errors)
    result.elapsed_s = tally.elapsed_s


def apply_spoofed(result: FuzzResult, tally: SpoofedTally) -> None:
    result.spoofed_sent = dict(tally.sent)
    result.spoofed_answered = dict(tally.answered)
    result.spoofed_unicast = dict(tally.unicast)
    result.spoofed_control_sent = tally.control_sent
    result.spoofed_control_answered = tally.control_answered
    result.spoofed_unconfirmed = list(tally.unconfirmed)
    result.spoofed_unattributed = tally.unattributed
    result.spoofed_notes.extend(tally.notes)


def spoofed_answered(result: FuzzResult) -> int:
    return sum((result.spoofed_answered or {}).values())


def judge(result: FuzzResult, tally: Tally) -> None:
    """Fill ``result.failures`` and ``result.status`` from what was observed."""
    failures = result.failures
    if tally.stopped:
        failures.append(f"stopped early: {tally.stopped}")
    if tally.malformed_replied:
        cats = ", ".join(f"{k} {v}" for k, v in sorted(tally.replied_by_category.items()))
        failures.append(f"{tally.malformed_replied} malformed datagram(s) answered ({cats})")
    if tally.valid_missing:
        failures.append(f"{tally.valid_missing} of {tally.valid_total} valid request(s) unanswered")
    if tally.duplicates > tally.retries:
        failures.append(f"{tally.duplicates} duplicate replies for {tally.retries} retries")
    if spoofed_answered(result):
        answered = result.spoofed_answered or {}
        cats = ", ".join(f"{k} {v}" for k, v in sorted(answered.items()) if v)
        failures.append(
            f"{spoofed_answered(result)} request(s) from hostile sources answered ({cats})"
        )
    if result.spoofed_unconfirmed:
        cats = ", ".join(result.spoofed_unconfirmed)
        failures.append(f"spoofed sources: no reply to the control datagram after {cats}")
    if result.spoofed_unattributed:
        failures.append(
            f"spoofed sources: {result.spoofed_unattributed} reply(ies) to nothing sent"
        )
    if result.alive is False:
        failures.append("server not alive afterwards")
    if result.final_hello is False:
        failures.append("no reply to the final HELLO")
    if result.bpf_attached is False:
        failures.append(f"BPF program: {result.bpf_detail}")
    if result.kernel_log_problems:
        failures.append(f"kernel log: {len(result.kernel_log_problems)} new problem report(s)")
    result.status = "fail" if failures else "pass"
