"""The machine conditions a phase is measured under — the levels of the run factors whose
hook is a condition (bench/factors.py) — set just before the phase and undone just after:
the idle policy (``idle``) and receive steering (``rx_cpu``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext

from bench.system.pm_qos import cpu_latency_held
from bench.system.rps import steered
from bench.topology import Topology

# level, topology, server CPU -> the condition held for the phase
Hook = Callable[[str, Topology, int | None], AbstractContextManager[object]]


def _idle(level: str, topo: Topology, server_cpu: int | None) -> AbstractContextManager[object]:
    """poll: PM QoS CPU latency held at 0 (shallowest idle state only)."""
    return cpu_latency_held(0) if level == "poll" else nullcontext()


def _rx_cpu(level: str, topo: Topology, server_cpu: int | None) -> AbstractContextManager[object]:
    """server: the server end's receive queues steered to the server CPU; client: RPS off.
    Another host's queues are that host's to steer."""
    if not topo.server_here:
        return nullcontext()
    target = server_cpu if level == "server" else None
    return steered(topo.server_netns, topo.server_interface, target)


# One hook per condition factor, in the order they are set (undone in reverse).
HOOKS: Mapping[str, Hook] = {"idle": _idle, "rx_cpu": _rx_cpu}


@contextmanager
def phase_conditions(
    topo: Topology, settings: Mapping[str, str], server_cpu: int | None
) -> Iterator[None]:
    """For the body: every condition factor at its level in ``settings``.  Raises a
    HellobenchError naming what could not be set."""
    with ExitStack() as stack:
        for name, hook in HOOKS.items():
            stack.enter_context(hook(settings[name], topo, server_cpu))
        yield
