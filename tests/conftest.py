"""Shared fixtures: the impl registry, free ports, a UDP client."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from bench.impl.registry import Entry, discover
from bench.system.ports import free_udp_port

__all__ = ["free_udp_port", "requires_root", "unrunnable_reason"]


@pytest.fixture(scope="session")
def registry() -> dict[str, Entry]:
    return discover()


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
