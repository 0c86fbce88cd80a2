"""Shared fixtures: the impl registry, free ports, a UDP client."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from bench.impl.registry import Entry, discover


@pytest.fixture(scope="session")
def registry() -> dict[str, Entry]:
    return discover()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def udp_client() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2.0)
    try:
        yield sock
    finally:
        sock.close()


def unrunnable_reason(entry: Entry) -> str | None:
    """Why an impl cannot be tested here (unavailable, or it needs root), or None."""
    if not entry.available:
        return entry.unavailable
    if entry.manifest.requires.root and os.geteuid() != 0:
        return "needs root"
    return None


def requires_root() -> pytest.MarkDecorator:
    return pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
