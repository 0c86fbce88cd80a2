"""Topologies: lo as it is, and the veth pair between two namespaces of the suite's own."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest

from bench.impl.api import Peer
from bench.system import ledger
from bench.system.netns import entered
from bench.topology import LOOPBACK, TOPOLOGIES, TopologyError, open_topology

BENCHMARK_NET = ipaddress.ip_network("198.18.0.0/15")
IP_MTU_DISCOVER = 10
IP_PMTUDISC_DO = 2

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)")


def test_known_topologies() -> None:
    assert TOPOLOGIES == ("lo", "veth")


def test_lo_is_the_loopback() -> None:
    with open_topology("lo") as topo:
        assert topo is LOOPBACK
        assert topo.server_netns is None and topo.client_netns is None
        assert topo.server_interface == "lo"


def test_unknown_topology_is_refused() -> None:
    with pytest.raises(TopologyError, match="unknown topology"), open_topology("wifi"):
        pass


@pytest.mark.skipif(os.geteuid() == 0, reason="runs only without root")
def test_veth_without_root_says_why() -> None:
    with pytest.raises(TopologyError, match="root"), open_topology("veth"):
        pass


def _mine(kind: str) -> set[str]:
    return {r.ident for r in ledger.records() if r.kind == kind and r.owner_pid == os.getpid()}


@needs_root
def test_veth_pair_between_two_namespaces() -> None:
    with open_topology("veth") as topo:
        assert topo.name == "veth"
        assert topo.server_netns and topo.client_netns
        assert topo.client_addr and topo.client_interface
        names = {topo.server_netns, topo.client_netns}
        assert all(name.startswith(f"hb-{os.getpid()}-") for name in names)
        assert all(Path("/run/netns", name).exists() for name in names)
        assert names <= _mine("netns")
        assert ipaddress.ip_address(topo.server_addr) in BENCHMARK_NET
        assert ipaddress.ip_address(topo.client_addr) in BENCHMARK_NET
        assert topo.max_size == 1472
        peer = Peer(topo.client_netns, str(topo.client_interface))
        assert topo.peer == peer
        assert topo.server_config(3000).peer == peer  # what an impl is handed
        assert (topo.server_config(3000).netns, LOOPBACK.peer) == (topo.server_netns, None)
        with entered(topo.server_netns):
            server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with entered(topo.client_netns):
            client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with server, client:
            server.settimeout(3.0)
            client.settimeout(3.0)
            server.bind((topo.server_addr, 0))
            client.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
            client.sendto(b"H" * topo.max_size, server.getsockname())
            data, source = server.recvfrom(4096)
            assert len(data) == topo.max_size
            assert source[0] == topo.client_addr
            server.sendto(b"back", source)
            assert client.recvfrom(64)[0] == b"back"
            with pytest.raises(OSError):  # one byte more does not fit the 1500-byte MTU
                client.sendto(b"H" * (topo.max_size + 1), server.getsockname())
    assert not any(Path("/run/netns", name).exists() for name in names)
    assert not names & _mine("netns")


@needs_root
def test_veth_torn_down_when_the_body_fails() -> None:
    names: set[str] = set()
    with pytest.raises(RuntimeError, match="boom"), open_topology("veth") as topo:
        names = {str(topo.server_netns), str(topo.client_netns)}
        raise RuntimeError("boom")
    assert names
    assert not any(Path("/run/netns", name).exists() for name in names)
    assert not names & _mine("netns")


@needs_root
def test_entered_returns_to_the_original_namespace() -> None:
    before = os.readlink("/proc/thread-self/ns/net")
    with open_topology("veth") as topo:
        with entered(topo.client_netns):
            assert os.readlink("/proc/thread-self/ns/net") != before
        assert os.readlink("/proc/thread-self/ns/net") == before
