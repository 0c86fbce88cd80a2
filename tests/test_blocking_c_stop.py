"""blocking-c stops on SIGTERM even when the signal lands between the loop's stop check and
``recvfrom()`` — the one moment a flag-only handler loses it.

The moment is made deterministic with ptrace: the server is traced from its exec, runs
until the ``sendto`` of a reply returns, and is then single-stepped until it stands on the
``syscall`` instruction of the next ``recvfrom`` (past the check).  SIGTERM is delivered
there; the handler runs, then ``recvfrom`` is entered.  A server that only sets a flag
blocks for good; a correct one returns and exits 0.
"""

from __future__ import annotations

import ctypes
import os
import platform
import signal
import socket
import subprocess
from collections.abc import Iterator

import pytest

from bench import PROJECT_ROOT
from bench.native.build import build_server
from bench.system.ports import free_udp_port

pytestmark = pytest.mark.skipif(
    platform.machine() != "x86_64", reason="the register layout read here is x86-64's"
)

PTRACE_TRACEME, PTRACE_PEEKTEXT, PTRACE_CONT = 0, 1, 7
PTRACE_SINGLESTEP, PTRACE_GETREGS, PTRACE_DETACH = 9, 12, 17
PTRACE_SYSCALL, PTRACE_SETOPTIONS = 24, 0x4200
PTRACE_O_TRACESYSGOOD, PTRACE_O_EXITKILL = 0x1, 0x100000
NR_SENDTO, NR_RECVFROM = 44, 45
SYSCALL_INSN = b"\x0f\x05"
MAX_STEPS = 100_000  # single steps from sendto's return to the next syscall instruction
MAX_STOPS = 1_000  # syscall stops before the first reply is sent
EXIT_WAIT_S = 10.0  # a liveness bound, not a timing check: a lost stop blocks for ever

_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.restype = ctypes.c_long
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]


class Regs(ctypes.Structure):
    """struct user_regs_struct (x86-64), in the kernel's order."""

    _fields_ = [
        (name, ctypes.c_ulonglong)
        for name in [
            "r15",
            "r14",
            "r13",
            "r12",
            "rbp",
            "rbx",
            "r11",
            "r10",
            "r9",
            "r8",
            "rax",
            "rcx",
            "rdx",
            "rsi",
            "rdi",
            "orig_rax",
            "rip",
            "cs",
            "eflags",
            "rsp",
            "ss",
            "fs_base",
            "gs_base",
            "ds",
            "es",
            "fs",
            "gs",
        ]
    ]


def _ptrace(request: int, pid: int, addr: int = 0, data: int = 0) -> int:
    ctypes.set_errno(0)
    result = int(_libc.ptrace(request, pid, ctypes.c_void_p(addr), ctypes.c_void_p(data)))
    err = ctypes.get_errno()
    if result == -1 and err:
        raise OSError(err, f"ptrace({request}): {os.strerror(err)}")
    return result


def _traceme() -> None:
    _ptrace(PTRACE_TRACEME, 0)


def _stopped(pid: int) -> int:
    """Wait for the tracee's next stop; its stop signal (with the 0x80 syscall-stop bit)."""
    _, status = os.waitpid(pid, 0)
    if not os.WIFSTOPPED(status):
        raise AssertionError(f"server ended while traced (status {status:#x})")
    return os.WSTOPSIG(status)


def _regs(pid: int) -> Regs:
    regs = Regs()
    _ptrace(PTRACE_GETREGS, pid, 0, ctypes.addressof(regs))
    return regs


def _on_syscall_instruction(pid: int, regs: Regs) -> bool:
    word = _ptrace(PTRACE_PEEKTEXT, pid, regs.rip) & 0xFFFF
    return word.to_bytes(2, "little") == SYSCALL_INSN


@pytest.fixture
def server_binary() -> str:
    return str(build_server("hello-blocking-c", PROJECT_ROOT / "impls/blocking-c"))


@pytest.fixture
def client() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(5.0)
    yield sock
    sock.close()


def _run_to_first_reply(pid: int, client: socket.socket, port: int) -> None:
    """Trace syscalls until the server's first sendto has returned (it is then stopped)."""
    entering = True
    sent_request = False
    for _ in range(MAX_STOPS):
        _ptrace(PTRACE_SYSCALL, pid)
        assert _stopped(pid) == signal.SIGTRAP | 0x80, "expected a syscall stop"
        nr = _regs(pid).orig_rax
        if entering and nr == NR_RECVFROM and not sent_request:
            client.sendto(b"HELLO stop-race", ("127.0.0.1", port))
            sent_request = True
        if not entering and nr == NR_SENDTO:
            return
        entering = not entering
    raise AssertionError("the server never replied while traced")


def _step_onto_next_recvfrom(pid: int) -> None:
    for _ in range(MAX_STEPS):
        _ptrace(PTRACE_SINGLESTEP, pid)
        assert _stopped(pid) == signal.SIGTRAP
        regs = _regs(pid)
        if regs.rax == NR_RECVFROM and _on_syscall_instruction(pid, regs):
            return
    raise AssertionError(f"no recvfrom syscall instruction within {MAX_STEPS} steps")


def test_sigterm_between_the_stop_check_and_recvfrom_is_not_lost(
    server_binary: str, client: socket.socket
) -> None:
    port = free_udp_port()
    proc = subprocess.Popen(
        [server_binary, "--addr", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        preexec_fn=_traceme,
    )
    try:
        assert _stopped(proc.pid) == signal.SIGTRAP  # stopped at its exec
        _ptrace(PTRACE_SETOPTIONS, proc.pid, 0, PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL)
        _run_to_first_reply(proc.pid, client, port)
        assert client.recv(64).startswith(b"GOT IT")
        _step_onto_next_recvfrom(proc.pid)  # past the loop's stop check
        os.kill(proc.pid, signal.SIGTERM)
        _ptrace(PTRACE_CONT, proc.pid)
        assert _stopped(proc.pid) == signal.SIGTERM  # signal-delivery stop
        _ptrace(PTRACE_DETACH, proc.pid, 0, signal.SIGTERM)  # deliver it: the handler runs
        try:
            status = proc.wait(timeout=EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            pytest.fail("SIGTERM was handled just before recvfrom and the server blocked in it")
        assert status == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
