"""The machine conditions a phase is measured under — its factor levels — set just before
the phase and undone just after: receive steering (``rx_cpu``) and the idle policy
(``idle``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from bench.system.pm_qos import cpu_latency_held
from bench.system.rps import steered
from bench.topology import Topology


@contextmanager
def phase_conditions(
    topo: Topology, rx_cpu: str, idle: str, server_cpu: int | None
) -> Iterator[None]:
    """For the body: the server end's receive queues steered to ``server_cpu`` when
    ``rx_cpu`` is "server" and RPS off otherwise; PM QoS CPU latency held at 0 when
    ``idle`` is "poll".  Raises a HellobenchError naming what could not be set."""
    with ExitStack() as stack:
        if idle == "poll":
            stack.enter_context(cpu_latency_held(0))
        target = server_cpu if rx_cpu == "server" else None
        if topo.server_here:  # another host's queues are that host's to steer
            stack.enter_context(steered(topo.server_netns, topo.server_interface, target))
        yield
