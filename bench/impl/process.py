"""A user-space server run as its own process: pinned, optionally inside a netns, recorded in
the ownership ledger, ready when it prints ``READY``, stopped with SIGTERM then SIGKILL."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Sequence

from bench import ownership
from bench.impl.api import Accounting, ImplError, RunningServer, ServerConfig

READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 3.0


def python_env() -> dict[str, str]:
    """Environment for a Python server script: the suite's package importable."""
    from bench import PROJECT_ROOT

    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": f"{PROJECT_ROOT}{os.pathsep}{path}" if path else str(PROJECT_ROOT)}


def netns_prefix(netns: str | None) -> list[str]:
    return ["ip", "netns", "exec", netns] if netns else []


class ServerProcess(RunningServer):
    """Starts ``argv`` and waits for its ``READY`` line."""

    def __init__(
        self, argv: Sequence[str], config: ServerConfig, env: dict[str, str] | None = None
    ):
        self._config = config
        full = [*netns_prefix(config.netns), *argv]
        cpu = config.cpu

        def pin() -> None:
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})

        self._proc = subprocess.Popen(
            full,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=pin,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        self._ident = f"{self._proc.pid}"
        ownership.record(
            "process",
            self._ident,
            pid=self._proc.pid,
            start=ownership.process_start_time(self._proc.pid),
            argv=list(full),
        )
        self._stopped = False
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _wait_ready(self) -> None:
        assert self._proc.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        line = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self._proc.stdout], [], [], 0.1)
            if ready:
                line = self._proc.stdout.readline()
                if line.strip() == b"READY":
                    return
                if not line:
                    break
            if self._proc.poll() is not None:
                break
        err = self._stderr_tail()
        raise ImplError(f"server did not become ready: {line.decode(errors='replace')} {err}")

    def _stderr_tail(self) -> str:
        if self._proc.poll() is None or self._proc.stderr is None:
            return ""
        return self._proc.stderr.read().decode(errors="replace")[-500:].strip()

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
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(STOP_TIMEOUT_S)
        for stream in (self._proc.stdout, self._proc.stderr):
            if stream is not None:
                stream.close()
        ownership.release("process", self._ident)
