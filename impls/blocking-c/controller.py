"""Builds server.c with the shared server scaffold (cached) and runs it."""

from __future__ import annotations

from bench.impl.api import Impl, ImplError, RunningServer, ServerConfig
from bench.impl.manifest import Manifest
from bench.impl.process import ServerProcess
from bench.native.build import BuildError, build_server


class BlockingC(Impl):
    def prepare(self) -> None:
        try:
            self._binary = build_server("hello-blocking-c", self.manifest.folder)
        except BuildError as exc:
            raise ImplError(str(exc)) from exc

    def start(self, config: ServerConfig) -> RunningServer:
        self.prepare()
        argv = [str(self._binary), "--addr", config.addr, "--port", str(config.port)]
        if "delay_ns" in config.options:
            argv += ["--delay-ns", str(int(config.options["delay_ns"]))]
        if self.manifest.options.get("wait") == "spin":
            argv.append("--spin")
        if "extra_syscalls" in config.options:
            argv += ["--extra-syscalls", str(config.options["extra_syscalls"])]
        return ServerProcess(argv, config)


def create(manifest: Manifest) -> Impl:
    return BlockingC(manifest)
