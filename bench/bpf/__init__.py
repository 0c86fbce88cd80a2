"""eBPF support for the eBPF impls: compiling BPF objects (``build``), attaching and
detaching them on XDP and tc clsact ingress through the hb-bpfctl loader (``control``),
the running reflector (``reflector``), program run-time statistics (``progstats``), and
the ledger cleaners for what an interrupted run left attached (``cleanup``).

Everything the suite creates is tagged: BPF programs are named ``hb_*``, tc filters use
priority 0x4842 with a recorded handle, namespaces are named ``hb-*``.  Every attachment
is in the ledger before it is made.
"""

from __future__ import annotations

from bench.errors import HellobenchError


class BpfError(HellobenchError):
    """Loading, attaching, detaching or reading a BPF program failed; ``errno`` is the
    kernel's error number where one was returned (0 otherwise)."""

    def __init__(self, message: str, errno: int = 0) -> None:
        super().__init__(message)
        self.errno = errno
