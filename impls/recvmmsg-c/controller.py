"""Builds server.c (batched recvmmsg/sendmmsg) with the system compiler (cached) and runs it.

Server option ``batch`` (manifest default, ``--server-option`` or ``--server-levels``):
datagrams taken per recvmmsg() call, 1..1024.
"""

from __future__ import annotations

from collections.abc import Mapping

from bench.impl.api import Impl, ImplError, RunningServer, ServerConfig
from bench.impl.manifest import Manifest
from bench.impl.memfd_counters import CountedServerProcess, counter_names
from bench.native.build import BuildError, build_server

MAX_BATCH = 1024  # the kernel's UIO_MAXIOV: recvmmsg takes no more at once


def batch_size(options: Mapping[str, str], default: Mapping[str, str]) -> int:
    """The ``batch`` option (the run's, else the manifest's), checked to be 1..1024."""
    raw = options.get("batch", default.get("batch", "32"))
    try:
        batch = int(raw)
    except ValueError:
        batch = 0
    if not 1 <= batch <= MAX_BATCH:
        raise ImplError(f"recvmmsg-c option batch={raw!r}: must be an integer 1..{MAX_BATCH}")
    return batch


class RecvmmsgC(Impl):
    def prepare(self) -> None:
        try:
            self._binary = build_server("hello-recvmmsg-c", self.manifest.folder)
        except BuildError as exc:
            raise ImplError(str(exc)) from exc

    def start(self, config: ServerConfig) -> RunningServer:
        batch = batch_size(config.options, self.manifest.options)
        self.prepare()
        argv = [str(self._binary), "--addr", config.addr, "--port", str(config.port)]
        argv += ["--batch", str(batch)]
        return CountedServerProcess(argv, config, counter_names(self._binary))


def create(manifest: Manifest) -> Impl:
    return RecvmmsgC(manifest)
