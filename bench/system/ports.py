"""A free UDP port: one nothing on this host's loopback is bound to right now."""

from __future__ import annotations

import socket


def free_udp_port(addr: str = "127.0.0.1") -> int:
    """A UDP port free on the loopback of ``addr``'s family (IPv6 when it has a colon)."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
