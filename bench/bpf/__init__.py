"""eBPF support for the eBPF impls: compiling BPF objects, attaching and detaching them (XDP,
tc clsact ingress) through the hb-bpfctl loader, reading their counters, and cleaning up
after interrupted runs.

Everything the suite creates is tagged: BPF programs are named ``hb_*``, tc filters use
priority 0x4842 with a recorded handle, namespaces are named ``hb-*``, pins (none today)
would live under /sys/fs/bpf/hellobench-*.  Every attachment is in the ownership ledger.
"""

from __future__ import annotations

from bench.bpf.build import bpfctl, build_bpf_object
from bench.bpf.control import (
    PROG_PREFIX,
    TC_PRIORITY,
    BpfError,
    TcAttachment,
    XdpAttachment,
    addr_value,
    read_counters,
)
from bench.bpf.reflector import BpfReflector, ReflectorImpl

__all__ = [
    "PROG_PREFIX",
    "TC_PRIORITY",
    "BpfError",
    "BpfReflector",
    "ReflectorImpl",
    "TcAttachment",
    "XdpAttachment",
    "addr_value",
    "bpfctl",
    "build_bpf_object",
    "read_counters",
]
