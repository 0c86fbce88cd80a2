"""hb-anatomyctl as an owned child: it loads the anatomy's programs, attaches each through a
bpf_link only it holds (the kernel detaches them when it exits, however it exits; it also
asks for SIGTERM when its parent dies), and copies the ring buffer to a scratch file.  The
process is in the ledger, so ``python -m bench cleanup`` stops one an interrupted run left.
Every wait has a deadline; the loader itself stops after ``max_seconds``."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from bench.anatomy.build import build_loader, build_object
from bench.anatomy.events import Event, read_events
from bench.errors import HellobenchError
from bench.system.owned import SCRATCH_PREFIX, OwnedProcess

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
PROG_PREFIX = "hba_"  # every anatomy program's name starts with it


class TracerError(HellobenchError):
    """The anatomy's programs could not be loaded, attached or read."""


@dataclass(frozen=True)
class TraceOutput:
    events: list[Event]
    stats: Mapping[str, int]  # the loader's end line: events, windows, closed, ...
    prog_ids: Mapping[str, int]
    handler_hooked: bool
    handler_note: str = ""
    # the hooks the loader chose for this kernel: enqueue (tp_btf/sk_data_ready,
    # fentry/sock_def_readable, ...), handler (fentry, kprobe, none), kernel_recv
    hooks: Mapping[str, str] = field(default_factory=dict)
    notes: str = ""  # why preferred hooks were not used
    stderr: str = field(default="", repr=False)


class Tracer:
    """``with Tracer(port=..., every=...) as t: t.track(pid, "server"); ...; out = t.stop()``"""

    def __init__(
        self,
        *,
        port: int,
        every: int,
        max_events: int = 128,
        xdp_prog_id: int | None = None,
        handler: str | None = None,
        kernel_recv: bool = False,
        kprobes: bool = False,
        max_seconds: int = 300,
    ) -> None:
        """``handler``: a module function with encap_rcv's arguments to trace on entry;
        ``kernel_recv``: trace the receives of kernel threads tracked as the server;
        ``kprobes``: kprobes where fentry/fexit would be used (no BPF trampoline: on some
        kernels attaching one waits for a kernel thread that polls to sleep)."""
        self._argv_tail = [
            f"--port={port}",
            f"--every={every}",
            f"--max-events={max_events}",
            f"--max-seconds={max_seconds}",
        ]
        if xdp_prog_id is not None:
            self._argv_tail.append(f"--xdp-prog-id={xdp_prog_id}")
        if handler is not None:
            self._argv_tail.append(f"--handler={handler}")
        if kernel_recv:
            self._argv_tail.append("--kernel-recv")
        if kprobes:
            self._argv_tail.append("--kprobes")
        self._owned: OwnedProcess | None = None
        self._buf = b""
        self.ready: dict[str, Any] = {}

    def __enter__(self) -> Tracer:
        obj, loader = build_object(), build_loader()
        self._scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}anatomy-"))
        self._out = self._scratch / "events.bin"
        self._err: IO[bytes] = open(self._scratch / "stderr", "w+b")
        argv = [str(loader), f"--obj={obj}", f"--out={self._out}", *self._argv_tail]
        self._owned = OwnedProcess(
            argv,
            name="anatomy",
            scratch=self._scratch,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
        )
        try:
            self.ready = self._line(READY_TIMEOUT_S)
        except BaseException:
            self._close()
            raise
        if not self.ready.get("ready"):
            self._close()
            raise TracerError(f"hb-anatomyctl did not attach: {self._stderr()}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close()

    @property
    def prog_ids(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in dict(self.ready.get("progs") or {}).items()}

    @property
    def hooks(self) -> dict[str, str]:
        """The hooks the loader chose (see TraceOutput.hooks)."""
        handler = "fentry/fexit" if self.ready.get("xdp") else str(self.ready.get("handler"))
        recv = {"tp_btf": "tp_btf/consume_skb"}
        return {
            "enqueue": str(self.ready.get("enqueue") or "tp_btf/sk_data_ready"),
            "handler": handler if handler in ("fentry/fexit", "fentry", "kprobe") else "none",
            "kernel_recv": recv.get(str(self.ready.get("kernel_recv")), "none"),
        }

    def track(self, pid: int, role: str) -> None:
        """Trace process ``pid`` (all its threads) as the ``client`` or the ``server``."""
        if role not in ("client", "server"):
            raise ValueError(f"role must be client or server, not {role!r}")
        self._tell(f"role {pid} {role}")

    def stop(self) -> TraceOutput:
        """Detach, drain the ring buffer and read every event."""
        self._tell("stop")
        stats = self._line(STOP_TIMEOUT_S)
        self._close(keep_scratch=True)
        try:
            return TraceOutput(
                events=read_events(self._out),
                stats={k: int(v) for k, v in stats.items() if k != "done"},
                prog_ids=self.prog_ids,
                handler_hooked=bool(self.ready.get("xdp")) or self.hooks["handler"] != "none",
                handler_note=str(self.ready.get("xdp_note") or ""),
                hooks=self.hooks,
                notes=str(self.ready.get("notes") or ""),
                stderr=self._stderr(),
            )
        finally:
            self._close()

    def _tell(self, line: str) -> None:
        owned = self._owned
        if owned is None or owned.proc.stdin is None:
            raise TracerError("hb-anatomyctl is not running")
        try:
            owned.proc.stdin.write(f"{line}\n".encode())
            owned.proc.stdin.flush()
        except BrokenPipeError as exc:
            raise TracerError(f"hb-anatomyctl went away: {self._stderr()}") from exc

    def _line(self, within_s: float) -> dict[str, Any]:
        owned = self._owned
        assert owned is not None and owned.proc.stdout is not None
        fd = owned.proc.stdout.fileno()
        deadline = time.monotonic() + within_s
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TracerError(f"hb-anatomyctl said nothing within {within_s:.0f} s")
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise TracerError(f"hb-anatomyctl exited: {self._stderr()}")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        try:
            answer = json.loads(line)
        except ValueError as exc:
            raise TracerError(f"hb-anatomyctl: unreadable line {line[:200]!r}") from exc
        if not isinstance(answer, dict):
            raise TracerError(f"hb-anatomyctl: unexpected line {line[:200]!r}")
        return answer

    def _stderr(self) -> str:
        self._err.flush()
        self._err.seek(0)
        return " ".join(self._err.read()[-2000:].decode(errors="replace").split())

    def _close(self, keep_scratch: bool = False) -> None:
        owned, self._owned = self._owned, None
        if owned is None:
            if not keep_scratch and not self._err.closed:
                self._err.close()
                shutil.rmtree(self._scratch, ignore_errors=True)
            return
        if owned.proc.stdin is not None:
            with contextlib.suppress(OSError):
                owned.proc.stdin.close()
        owned.stop(grace_s=STOP_TIMEOUT_S)
        if owned.proc.stdout is not None:
            owned.proc.stdout.close()
        if not keep_scratch:
            self._close()
