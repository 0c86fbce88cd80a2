"""The server host and the one ssh connection to its agent.

The connection is an :class:`~bench.system.owned.OwnedProcess` (in this machine's ledger,
so a sweep stops it): ``ssh -T ... HOST 'cd DIR && exec PY -m bench agent'``.  Closing it
closes the agent's stdin, and the agent stops what it started."""

from __future__ import annotations

import contextlib
import os
import re
import select
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import IO, Any

from bench import PROJECT_ROOT
from bench.errors import UsageError
from bench.impl.api import ImplError
from bench.remote import protocol
from bench.remote.protocol import Request
from bench.system.owned import OwnedProcess

CALL_TIMEOUT_S = 30.0
MAX_RESPONSE = 1024 * 1024  # bytes of one response line (a describe is a few KiB)
CLOSE_TIMEOUT_S = 10.0
# ssh's own defaults for an unattended connection; options given by the user come first,
# and ssh takes the first value it sees of each.
SSH_DEFAULTS = (
    "BatchMode=yes",
    "ConnectTimeout=10",
    "ServerAliveInterval=5",
    "ServerAliveCountMax=3",
)
_TARGET = re.compile(r"^(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9._:-]+$")
_OPTION = re.compile(r"^[A-Za-z][A-Za-z0-9]*=\S.*$")


class RemoteError(ImplError):
    """The agent or the ssh connection to it failed; the message says how."""


def check_target(target: str) -> str:
    """``[USER@]HOST`` as given, or UsageError."""
    if not _TARGET.match(target) or target.startswith("-"):
        raise UsageError(f"server host {target!r}: expected [USER@]HOST")
    return target


def check_option(option: str) -> str:
    """An ``--ssh-option KEY=VALUE``, or UsageError."""
    if not _OPTION.match(option) or "\n" in option:
        raise UsageError(f"--ssh-option {option!r}: expected KEY=VALUE (passed as ssh -o)")
    return option


@dataclass(frozen=True)
class ServerHost:
    """Where the server side runs and how to reach it."""

    target: str  # [USER@]HOST
    ssh_options: tuple[str, ...] = ()
    python: str = field(default_factory=lambda: sys.executable)
    directory: str = str(PROJECT_ROOT)

    def __post_init__(self) -> None:
        check_target(self.target)
        for option in self.ssh_options:
            check_option(option)

    @property
    def host(self) -> str:
        return self.target.rpartition("@")[2]

    def argv(self, remote_command: str) -> list[str]:
        """ssh's argv running ``remote_command`` (a shell line) on the host."""
        options = [arg for opt in (*self.ssh_options, *SSH_DEFAULTS) for arg in ("-o", opt)]
        return ["ssh", "-T", *options, "--", self.target, remote_command]

    def agent_command(self, *args: str) -> str:
        """The shell line that runs the agent from the project folder there."""
        agent = shlex.join([self.python, "-m", "bench", "agent", *args])
        return f"cd {shlex.quote(self.directory)} && exec {agent}"

    def describe(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "ssh_options": list(self.ssh_options),
            "python": self.python,
            "directory": self.directory,
        }


def run_agent_once(
    host: ServerHost, *args: str, command: str | None = None, timeout_s: float = 120.0
) -> tuple[int, str, str]:
    """Run ``bench agent ARGS`` (or the shell line ``command``) there to completion:
    (status, stdout, stderr); status 255 when ssh itself failed."""
    try:
        proc = subprocess.run(
            host.argv(command or host.agent_command(*args)),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return 255, "", f"ssh {host.target}: no answer within {timeout_s:g} s"
    return proc.returncode, proc.stdout, proc.stderr


class AgentConnection:
    """One ssh connection to ``bench agent`` on ``host``: requests in, responses out."""

    def __init__(self, host: ServerHost) -> None:
        self.host = host
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115  (closed in close())
        self._owned = OwnedProcess(
            host.argv(host.agent_command()),
            name="ssh-agent",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,  # a Ctrl-C here reaches us, and we close the link
        )
        self._pending = b""
        self._closed = False

    @property
    def pid(self) -> int:
        return self._owned.pid

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace")
        return " ".join(text.strip().splitlines()[-3:])[-400:]

    def _lost(self, what: str) -> RemoteError:
        code = self._owned.poll()
        status = f" (ssh exited with status {code})" if code is not None else ""
        return RemoteError(f"{self.host.target}: {what}{status}: {self._stderr_tail()}".strip())

    def call(self, request: Request, timeout_s: float = CALL_TIMEOUT_S) -> dict[str, Any]:
        """Send ``request`` and return the ok response (RemoteError otherwise)."""
        if self._closed:
            raise RemoteError(f"{self.host.target}: the agent connection is closed")
        proc = self._owned.proc
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(protocol.encode_request(request).encode() + b"\n")
            proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise self._lost(f"the ssh connection closed ({exc})") from exc
        line = self._read_line(proc.stdout.fileno(), timeout_s, request.op)
        try:
            return protocol.decode_response(line)
        except protocol.ProtocolError as exc:
            raise RemoteError(f"{self.host.target}: {request.op}: {exc}") from exc

    def _read_line(self, fd: int, timeout_s: float, op: str) -> str:
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._pending:
            if len(self._pending) > MAX_RESPONSE:
                raise self._lost(f"{op}: the agent sent a line longer than {MAX_RESPONSE} bytes")
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._lost(f"{op}: no answer from the agent within {timeout_s:g} s")
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise self._lost(f"{op}: the ssh connection closed")
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return line.decode(errors="replace")

    def close(self) -> None:
        """Close the agent's stdin (it cleans up and exits), then reap ssh (bounded)."""
        if self._closed:
            return
        self._closed = True
        proc = self._owned.proc
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=CLOSE_TIMEOUT_S)
        self._owned.stop()
        if proc.stdout is not None:
            proc.stdout.close()
        self._stderr.close()

    def __enter__(self) -> AgentConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
