"""Run time and run count of loaded BPF programs (``run_time_ns``, ``run_cnt``).

The kernel counts them only while kernel.bpf_stats_enabled=1 (bench/metrics/bpf.py holds
that switch).  Program info is read with BPF_OBJ_GET_INFO_BY_FD through ctypes; where that
fails, ``bpftool prog show id N --json`` is asked instead.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import shutil
import struct
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

from bench.bpf import BpfError

_BPF_NR = {"x86_64": 321, "amd64": 321, "aarch64": 280, "arm64": 280, "i686": 357}
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
_ATTR_SIZE = 144  # sizeof(union bpf_attr) in 6.x uapi headers; the tail stays zero
_INFO_SIZE = 232  # sizeof(struct bpf_prog_info) in 6.x uapi headers
_INFO_ID = 4
_INFO_RUN_TIME_NS = 192
_INFO_RUN_CNT = 200


@dataclass(frozen=True)
class ProgStats:
    run_time_ns: int
    run_cnt: int


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    nr = _BPF_NR.get(platform.machine().lower())
    if nr is None:
        raise BpfError(f"bpf(2): unknown syscall number on {platform.machine()}")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    rc = int(libc.syscall(ctypes.c_long(nr), ctypes.c_long(cmd), attr, ctypes.c_uint(len(attr))))
    if rc < 0:
        err = ctypes.get_errno()
        raise BpfError(f"bpf(cmd {cmd}): {os.strerror(err)}", err)
    return rc


BPF_ENABLE_STATS = 32
BPF_STATS_RUN_TIME = 0


def enable_run_time_stats() -> int:
    """A descriptor that keeps BPF run-time statistics on while it is open (BPF_ENABLE_STATS,
    Linux 5.8): the kernel turns them off when the last such descriptor closes, even when
    its holder is killed.  BpfError when the kernel refuses."""
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("=I", attr, 0, BPF_STATS_RUN_TIME)
    return _bpf(BPF_ENABLE_STATS, attr)


def prog_fd(prog_id: int) -> int:
    """A new fd for the loaded program ``prog_id`` (close it)."""
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("=I", attr, 0, prog_id)
    return _bpf(BPF_PROG_GET_FD_BY_ID, attr)


def prog_info(fd: int) -> bytes:
    """The raw struct bpf_prog_info of the program behind ``fd``."""
    info = ctypes.create_string_buffer(_INFO_SIZE)
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("=IIQ", attr, 0, fd, _INFO_SIZE, ctypes.addressof(info))
    _bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
    return info.raw


def prog_id_of_fd(fd: int) -> int:
    return int(struct.unpack_from("=I", prog_info(fd), _INFO_ID)[0])


def _stats_syscall(prog_id: int) -> ProgStats:
    fd = prog_fd(prog_id)
    try:
        raw = prog_info(fd)
    finally:
        os.close(fd)
    run_time_ns, run_cnt = struct.unpack_from("=QQ", raw, _INFO_RUN_TIME_NS)
    return ProgStats(int(run_time_ns), int(run_cnt))


def _stats_bpftool(prog_id: int) -> ProgStats:
    tool = shutil.which("bpftool")
    if tool is None:
        raise BpfError("bpftool not installed")
    proc = subprocess.run(
        [tool, "prog", "show", "id", str(prog_id), "--json"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    if proc.returncode != 0:
        raise BpfError(f"bpftool prog show id {prog_id}: {proc.stderr.strip()}")
    data = json.loads(proc.stdout)
    # bpftool omits the fields while they are zero.
    return ProgStats(int(data.get("run_time_ns", 0)), int(data.get("run_cnt", 0)))


def prog_stats(prog_id: int) -> ProgStats:
    """Cumulative run time and run count of one loaded program."""
    try:
        return _stats_syscall(prog_id)
    except BpfError as e:
        if e.errno == errno.ENOENT:  # no such program: bpftool would not find it either
            raise
        return _stats_bpftool(prog_id)


def total_stats(prog_ids: Iterable[int]) -> ProgStats:
    """Run time and count summed over programs."""
    run_time_ns = run_cnt = 0
    for prog_id in prog_ids:
        stats = prog_stats(prog_id)
        run_time_ns += stats.run_time_ns
        run_cnt += stats.run_cnt
    return ProgStats(run_time_ns, run_cnt)
