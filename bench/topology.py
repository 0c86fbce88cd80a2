"""Where client and server sit: ``lo`` (both on this host's loopback) or ``veth`` (a server
namespace and a client namespace joined by a veth pair, addressed from 198.18.0.0/15)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bench.protocol import DEFAULT_ADDR, MAX_REQUEST

TOPOLOGIES = ("lo", "veth")


class TopologyError(RuntimeError):
    """A topology could not be set up here; the message says why."""


@dataclass(frozen=True)
class Topology:
    name: str
    server_addr: str
    server_netns: str | None
    client_netns: str | None
    server_interface: str  # where eBPF programs attach (inside server_netns)
    max_size: int = MAX_REQUEST


LOOPBACK = Topology(
    name="lo", server_addr=DEFAULT_ADDR, server_netns=None, client_netns=None, server_interface="lo"
)


@contextmanager
def open_topology(name: str) -> Iterator[Topology]:
    """Set the topology up, yield it, and always tear it down."""
    if name == "lo":
        yield LOOPBACK
        return
    raise TopologyError(f"unknown topology {name!r} (known: {', '.join(TOPOLOGIES)})")
