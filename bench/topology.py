"""Where client and server sit: ``lo`` (both on this host's loopback) or ``veth`` (a server
namespace and a client namespace joined by a veth pair, addressed from 198.18.0.0/15), or
``two-hosts`` (the server on another machine, set up by bench/remote, never opened here).

The veth topology is built with ``ip netns add`` and pyroute2 and always torn down:
namespaces are named ``hb-<pid>-<n>-srv`` / ``hb-<pid>-<n>-cli`` and recorded in the
ledger before they are created, so that ``bench.system.ledger.sweep()`` removes them
after a crash.  IPv6 is off in both namespaces so that only the measured traffic crosses.

A native XDP program on one veth end sends (XDP_TX) into the other end's NAPI ring.  GRO on
the peer gives it NAPI, and that is enough for XDP_REDIRECT, but the XDP_TX flush
(veth_xdp_flush) schedules the peer's NAPI only when the peer has an XDP program: with GRO
alone the replies sit in the ring until unrelated traffic arrives (seen on 6.18).  The
ebpf-xdp impl therefore attaches a pass-through program to the peer; ``Topology.peer``
(handed to the impl in its ServerConfig) says where the peer is.  Other impls see the pair
untouched (no GRO, no program).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

from bench.errors import HellobenchError
from bench.impl.api import Peer, ServerConfig
from bench.protocol import DEFAULT_ADDR, MAX_REQUEST
from bench.system import ledger
from bench.system.netns import SUITE_PREFIX, entered, remove

TOPOLOGIES = ("lo", "veth")
# The server on another host, reached through OpenSSH (bench/remote): not opened here.
TWO_HOSTS = "two-hosts"

NETNS_CLEANER = "bench.system.netns:remove_recorded"
VETH_SERVER_ADDR = "198.18.0.1"  # RFC 2544 benchmarking range
VETH_CLIENT_ADDR = "198.18.0.2"
VETH_PREFIXLEN = 30
VETH_SERVER_IF = "hb-srv"
VETH_CLIENT_IF = "hb-cli"
VETH_MTU = 1500  # max_size = 1500 - 20 (IPv4) - 8 (UDP) = MAX_REQUEST
LINK_UP_TIMEOUT_S = 5.0
COMMAND_TIMEOUT_S = 30.0
_sequence = count()


class TopologyError(HellobenchError):
    """A topology could not be set up here; the message says why."""


@dataclass(frozen=True)
class Topology:
    name: str
    server_addr: str
    server_netns: str | None
    client_netns: str | None
    server_interface: str  # where eBPF programs attach (inside server_netns)
    max_size: int = MAX_REQUEST
    client_addr: str | None = None
    client_interface: str | None = None  # the peer end, inside client_netns
    server_here: bool = True  # False: the server end is another host's, not ours to steer

    @property
    def peer(self) -> Peer | None:
        """The client's end of the server's link, when there is a link."""
        if self.client_interface is None:
            return None
        return Peer(self.client_netns, self.client_interface)

    def server_config(
        self, port: int, cpu: int | None = None, options: Mapping[str, str] | None = None
    ) -> ServerConfig:
        """Where a server sits in this topology: its address, namespace, interface, peer."""
        return ServerConfig(
            addr=self.server_addr,
            port=port,
            cpu=cpu,
            netns=self.server_netns,
            interface=self.server_interface,
            peer=self.peer,
            options=dict(options or {}),
        )


def two_hosts(server_addr: str, server_interface: str) -> Topology:
    """The server on another host at ``server_addr`` (its ``server_interface`` there), the
    client here in this namespace."""
    return Topology(
        name=TWO_HOSTS,
        server_addr=server_addr,
        server_netns=None,
        client_netns=None,
        server_interface=server_interface,
        server_here=False,
    )


LOOPBACK = Topology(
    name="lo", server_addr=DEFAULT_ADDR, server_netns=None, client_netns=None, server_interface="lo"
)


def _disable_ipv6(netns: str) -> None:
    with entered(netns):
        for name in ("all", "default"):
            path = Path(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6")
            with suppress(OSError):  # a kernel without IPv6
                path.write_text("1")


def _create_netns(name: str) -> None:
    ledger.record("netns", name, NETNS_CLEANER, prefix=SUITE_PREFIX)
    try:
        proc = subprocess.run(
            ["ip", "netns", "add", name], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
        )
        if proc.returncode != 0:
            raise TopologyError(f"cannot create netns {name}: {proc.stderr.strip()}")
    except BaseException:
        with suppress(Exception):
            remove(name)
        ledger.release("netns", name)
        raise


@contextmanager
def _iproute(netns: str) -> Iterator[Any]:
    """A pyroute2 IPRoute whose netlink socket lives in ``netns``.

    The socket is opened by this thread after entering the namespace, instead of through
    pyroute2's netns support, which forks a helper with a short reply timeout: a large,
    busy process (numpy, pandas and the metric probes loaded) missed it now and then.
    """
    from pyroute2 import IPRoute

    with entered(netns):
        ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


def _wait_up(netns: str, ifname: str) -> None:
    deadline = time.monotonic() + LINK_UP_TIMEOUT_S
    with _iproute(netns) as ipr:
        while time.monotonic() < deadline:
            links = ipr.get_links(ifname=ifname)
            if links and links[0].get("IFLA_OPERSTATE") == "UP":
                return
            time.sleep(0.02)
    raise TopologyError(f"{ifname} in {netns} did not come up within {LINK_UP_TIMEOUT_S} s")


def _one(found: list[int], what: str) -> int:
    if len(found) != 1:
        raise TopologyError(f"expected one {what}, found {len(found)}")
    return found[0]


def _configure_end(netns: str, ifname: str, addr: str) -> None:
    with _iproute(netns) as ipr:
        ipr.link("set", index=_one(ipr.link_lookup(ifname="lo"), "lo"), state="up")
        index = _one(ipr.link_lookup(ifname=ifname), ifname)
        ipr.link("set", index=index, mtu=VETH_MTU)
        ipr.addr("add", index=index, address=addr, prefixlen=VETH_PREFIXLEN)
        ipr.link("set", index=index, state="up")


def _build_veth(server_ns: str, client_ns: str) -> None:
    for ns in (server_ns, client_ns):
        _disable_ipv6(ns)
    client_fd = os.open(f"/run/netns/{client_ns}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with _iproute(server_ns) as ipr:
            ipr.link(
                "add",
                ifname=VETH_SERVER_IF,
                kind="veth",
                peer={"ifname": VETH_CLIENT_IF, "net_ns_fd": client_fd},
            )
    finally:
        os.close(client_fd)
    _configure_end(server_ns, VETH_SERVER_IF, VETH_SERVER_ADDR)
    _configure_end(client_ns, VETH_CLIENT_IF, VETH_CLIENT_ADDR)
    _wait_up(server_ns, VETH_SERVER_IF)
    _wait_up(client_ns, VETH_CLIENT_IF)


@contextmanager
def veth_topology() -> Iterator[Topology]:
    """Two fresh namespaces joined by a veth pair; removed on the way out, whatever happens."""
    if os.geteuid() != 0:
        raise TopologyError("the veth topology needs root (network namespaces)")
    base = f"{SUITE_PREFIX}{os.getpid()}-{next(_sequence)}"
    server_ns, client_ns = f"{base}-srv", f"{base}-cli"
    created: list[str] = []
    try:
        for name in (server_ns, client_ns):
            _create_netns(name)
            created.append(name)
        try:
            _build_veth(server_ns, client_ns)
        except TopologyError:
            raise
        except Exception as exc:
            raise TopologyError(f"cannot build the veth pair: {exc}") from exc
        yield Topology(
            name="veth",
            server_addr=VETH_SERVER_ADDR,
            server_netns=server_ns,
            client_netns=client_ns,
            server_interface=VETH_SERVER_IF,
            max_size=VETH_MTU - 28,
            client_addr=VETH_CLIENT_ADDR,
            client_interface=VETH_CLIENT_IF,
        )
    finally:
        for name in reversed(created):
            remove(name)  # the veth pair goes with its namespaces
            ledger.release("netns", name)


@contextmanager
def open_topology(name: str) -> Iterator[Topology]:
    """Set the topology up, yield it, and always tear it down."""
    if name == "lo":
        yield LOOPBACK
        return
    if name == "veth":
        with veth_topology() as topology:
            yield topology
        return
    raise TopologyError(f"unknown topology {name!r} (known: {', '.join(TOPOLOGIES)})")
