"""Runs server.py on the event loop the manifest variant names."""

from __future__ import annotations

import sys

from bench.impl.api import Impl, RunningServer, ServerConfig
from bench.impl.manifest import Manifest
from bench.impl.process import ServerProcess, python_env


class AsyncioPy(Impl):
    def start(self, config: ServerConfig) -> RunningServer:
        argv = [
            sys.executable,
            str(self.manifest.folder / "server.py"),
            "--addr",
            config.addr,
            "--port",
            str(config.port),
            "--loop",
            self.manifest.options.get("loop", "asyncio"),
        ]
        return ServerProcess(argv, config, env=python_env())


def create(manifest: Manifest) -> Impl:
    return AsyncioPy(manifest)
