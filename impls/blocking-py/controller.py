"""Runs server.py with the interpreter that runs the suite."""

from __future__ import annotations

import sys

from bench.impl.api import Impl, RunningServer, ServerConfig
from bench.impl.manifest import Manifest
from bench.impl.process import ServerProcess, python_env


class BlockingPy(Impl):
    def start(self, config: ServerConfig) -> RunningServer:
        server = self.manifest.folder / "server.py"
        argv = [sys.executable, str(server), "--addr", config.addr, "--port", str(config.port)]
        return ServerProcess(argv, config, env=python_env())


def create(manifest: Manifest) -> Impl:
    return BlockingPy(manifest)
