"""Builds server.c (non-blocking socket, epoll loop) with the system compiler (cached) and
runs it."""

from __future__ import annotations

from bench.impl.api import Impl, ImplError, RunningServer, ServerConfig
from bench.impl.manifest import Manifest
from bench.impl.memfd_counters import CountedServerProcess, counter_names
from bench.native.build import BuildError, build_server


class EpollC(Impl):
    def prepare(self) -> None:
        try:
            self._binary = build_server("hello-epoll-c", self.manifest.folder)
        except BuildError as exc:
            raise ImplError(str(exc)) from exc

    def start(self, config: ServerConfig) -> RunningServer:
        self.prepare()
        argv = [str(self._binary), "--addr", config.addr, "--port", str(config.port)]
        return CountedServerProcess(argv, config, counter_names(self._binary))


def create(manifest: Manifest) -> Impl:
    return EpollC(manifest)
