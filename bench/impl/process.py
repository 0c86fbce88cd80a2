"""A user-space server run as its own process: pinned, optionally inside a netns, recorded in
the ledger, ready when it prints ``READY``, stopped with SIGTERM then SIGKILL.  Lines it prints
before ``READY`` are kept in ``startup_lines`` (an impl may say there how it set itself up)."""

from __future__ import annotations

import os
import select
import subprocess
import time
from collections.abc import Sequence

from bench import PROJECT_ROOT
from bench.impl.api import Accounting, ImplError, RunningServer, ServerConfig
from bench.system.netns import exec_prefix
from bench.system.owned import OwnedProcess

READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 3.0


def python_env() -> dict[str, str]:
    """Environment for a Python server script: the suite's package importable."""
    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": f"{PROJECT_ROOT}{os.pathsep}{path}" if path else str(PROJECT_ROOT)}


class ServerProcess(RunningServer):
    """Starts ``argv`` and waits for its ``READY`` line."""

    def __init__(
        self, argv: Sequence[str], config: ServerConfig, env: dict[str, str] | None = None
    ):
        self._config = config
        cpu = config.cpu

        def pin() -> None:
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})

        self._owned = OwnedProcess(
            [*exec_prefix(config.netns), *argv],
            name="server",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=pin,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        self._proc = self._owned.proc
        self._stopped = False
        self.startup_lines: tuple[str, ...] = ()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self._owned.note(ready=True)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _wait_ready(self) -> None:
        assert self._proc.stdout is not None
        # Raw reads, not readline(): a buffered reader may hold READY behind the line it
        # returned, where select() no longer sees it.
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + READY_TIMEOUT_S
        pending = b""
        line = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    if line.strip() == b"READY":
                        return
                    self.startup_lines += (line.decode(errors="replace").strip(),)
            if self._proc.poll() is not None:
                break
        line = pending or line
        err = self._stderr_tail()
        raise ImplError(f"server did not become ready: {line.decode(errors='replace')} {err}")

    def _stderr_tail(self) -> str:
        if self._proc.poll() is None or self._proc.stderr is None:
            return ""
        data: bytes = self._proc.stderr.read()
        return data.decode(errors="replace")[-500:].strip()

    def accounting(self) -> Accounting:
        return Accounting(pids=(self._proc.pid,))

    def health(self) -> str | None:
        code = self._proc.poll()
        if code is None:
            return None
        return f"server process exited with status {code}: {self._stderr_tail()}"

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._owned.stop(STOP_TIMEOUT_S)
        for stream in (self._proc.stdout, self._proc.stderr):
            if stream is not None:
                stream.close()
