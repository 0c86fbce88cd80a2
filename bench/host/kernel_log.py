"""Reads the kernel log and picks out the lines that mean the kernel is unwell.

``scan_kernel_log`` finds BUG/WARNING/Oops/GPF/panic reports (with a few lines of context)
in any dmesg-style text; ``KernelLogWatch`` lets the runner check, after each impl, only
what the kernel logged since a mark.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess

# A report starts at one of these lines.  WARNING: counts only at the start of a message
# (as WARN() and lockdep print it): "Subsystem: WARNING: ..." lines are advice, not faults.
_PRIMARY = re.compile(
    r"\bBUG:|(?:^|\]\s?)\s*WARNING:|^\s*<\d>WARNING:|\bOops\b"
    r"|general protection fault|kernel BUG at"
    r"|Kernel panic - not syncing|\bUBSAN:|\bKASAN:|\bKFENCE:"
    r"|INFO: task \S+ blocked for more than|rcu: INFO: \S+ (self-)?detected stall"
)
# A stack dump; reported on its own only when no report started shortly before it.
_TRACE = re.compile(r"Call Trace")
# Lines that match the patterns above but report no fault.
_BENIGN = re.compile(r"Unprivileged eBPF is enabled|hw-vuln")
CONTEXT_LINES = 4
TRACE_WINDOW = 60


def scan_kernel_log(text: str) -> list[str]:
    """The problem reports in ``text``: each is the line that starts one plus the next few
    lines of context (stopping at the next report), joined by newlines."""
    lines = text.splitlines()
    problems: list[str] = []
    last_primary = -(10**9)
    i = 0
    while i < len(lines):
        line = lines[i]
        primary = bool(_PRIMARY.search(line)) and not _BENIGN.search(line)
        trace = not primary and bool(_TRACE.search(line)) and i - last_primary > TRACE_WINDOW
        if not (primary or trace):
            i += 1
            continue
        if primary:
            last_primary = i
        block = [line.rstrip()]
        j = i + 1
        while j < len(lines) and j <= i + CONTEXT_LINES and not _PRIMARY.search(lines[j]):
            block.append(lines[j].rstrip())
            j += 1
        problems.append("\n".join(block))
        i = j
    return problems


def _kmsg_records() -> list[tuple[int, str]] | None:
    """(sequence number, line) of every record in /dev/kmsg, or None when it is not readable."""
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    records: list[tuple[int, str]] = []
    try:
        while True:
            try:
                chunk = os.read(fd, 16384)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # records overwritten while reading: go on
                    continue
                if not records:
                    return None
                break
            if not chunk:
                break
            head, _, body = chunk.decode(errors="replace").partition(";")
            fields = head.split(",")
            try:
                seq, usec = int(fields[1]), int(fields[2])
            except (IndexError, ValueError):
                continue
            message = body.split("\n", 1)[0]
            records.append((seq, f"[{usec / 1e6:12.6f}] {message}"))
    finally:
        os.close(fd)
    return records


def _dmesg_text() -> str | None:
    if not shutil.which("dmesg"):
        return None
    try:
        proc = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def read_kernel_log() -> str | None:
    """The kernel log (from /dev/kmsg, else ``dmesg``), or None when it cannot be read."""
    records = _kmsg_records()
    if records is not None:
        return "".join(line + "\n" for _, line in records)
    return _dmesg_text()


class KernelLogWatch:
    """Remembers where the kernel log ended at ``mark()``; ``new_problems()`` scans only what
    was logged after it.  Where the log cannot be read, ``available`` is False and nothing
    is ever reported."""

    def __init__(self) -> None:
        self._seq: int | None = None
        self._last_line: str | None = None
        self._line_count = 0
        self.available = True

    def mark(self) -> None:
        records = _kmsg_records()
        if records is not None:
            self._seq = records[-1][0] if records else -1
            self.available = True
            return
        self._seq = None
        text = _dmesg_text()
        if text is None:
            self.available = False
            return
        lines = text.splitlines()
        self._last_line = lines[-1] if lines else None
        self._line_count = len(lines)
        self.available = True

    def new_text(self) -> str:
        """What the kernel logged since the last ``mark()`` (everything if never marked)."""
        if self._seq is not None:
            records = _kmsg_records()
            if records is not None:
                return "".join(line + "\n" for seq, line in records if seq > self._seq)
        text = _dmesg_text()
        if text is None:
            return ""
        lines = text.splitlines()
        start = 0
        if self._last_line is not None:
            start = len(lines)  # when the mark line rotated out, take everything
            for k in range(min(len(lines), self._line_count) - 1, -1, -1):
                if lines[k] == self._last_line:
                    start = k + 1
                    break
            else:
                start = 0
        return "".join(line + "\n" for line in lines[start:])

    def new_problems(self) -> list[str]:
        """Problem reports (see ``scan_kernel_log``) logged since the last ``mark()``."""
        return scan_kernel_log(self.new_text())


def marked_watch() -> KernelLogWatch | None:
    """A watch marked now, or None where the kernel log cannot be read."""
    watch = KernelLogWatch()
    try:
        watch.mark()
    except OSError:
        return None
    return watch
