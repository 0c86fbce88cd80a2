"""Measuring with the server on another host: one agent connection for the whole run,
the driver and the client's probes here, the server and its probes there.

The environment record is this host's, with the server host's under ``server_host``
(kernel, CPU, the interface's driver, offloads and queues) and ``topology`` two-hosts;
every row's topology is two-hosts."""

from __future__ import annotations

from typing import Any

from bench import __version__
from bench.impl.registry import Entry, discover
from bench.remote.protocol import Describe
from bench.remote.server import RemoteImpl
from bench.remote.ssh import AgentConnection, RemoteError, ServerHost
from bench.runner.config import RunConfig
from bench.runner.design import design_impls
from bench.runner.lifecycle import select
from bench.runner.measure import Runner
from bench.runner.progress import Progress
from bench.runner.recording import Recording
from bench.system import ledger
from bench.topology import TWO_HOSTS, two_hosts

DESCRIBE_TIMEOUT_S = 60.0


def modules_reason(host: ServerHost, hello: dict[str, Any]) -> str | None:
    if hello.get("loadable_modules"):
        return None
    return f"kernel modules cannot load on {host.host}: {hello.get('modules_reason')}"


def remote_entries(
    cfg: RunConfig, host: ServerHost, agent: AgentConnection, hello: dict[str, Any]
) -> list[Entry]:
    """The selected impls as the server host runs them, each with its reason there."""
    reasons: dict[str, Any] = dict(hello.get("impls") or {})
    entries: list[Entry] = []
    for entry in select(design_impls(cfg), discover()):
        reason = reasons.get(entry.name, f"not registered on {host.host}")
        if entry.manifest.requires.loadable_modules:
            reason = modules_reason(host, hello) or reason
        elif reason is not None:
            reason = f"on {host.host}: {reason}"
        impl = RemoteImpl(entry.manifest, agent, reason)
        entries.append(Entry(entry.manifest, impl, reason))
    return entries


def describe_server_host(host: ServerHost, agent: AgentConnection) -> dict[str, Any]:
    """The agent's description, checked: the same suite version, an address and a link."""
    hello = agent.call(Describe(), timeout_s=DESCRIBE_TIMEOUT_S)
    if hello.get("version") != __version__:
        raise RemoteError(
            f"{host.target} runs hellobench {hello.get('version')}, this host {__version__}"
        )
    if not hello.get("address") or not hello.get("interface"):
        raise RemoteError(
            f"{host.target}: the agent cannot tell the interface that carries our traffic "
            f"(address {hello.get('address')})"
        )
    return hello


def measure_two_hosts(cfg: RunConfig, recording: Recording, progress: Progress) -> None:
    """Measure every selected impl with its server on ``cfg.server_host``."""
    host = cfg.server_host
    assert host is not None
    for line in ledger.sweep():
        progress(f"cleanup: {line}")
    progress(f"[{cfg.env_name}] server host {host.target}: connecting")
    with AgentConnection(host) as agent:
        hello = describe_server_host(host, agent)
        address, interface = str(hello["address"]), str(hello["interface"])
        progress(f"[{cfg.env_name}] server host {host.target}: {address} on {interface}")
        runner = Runner(cfg, recording, progress)
        runner.describe()
        environment = recording.run.environments[runner.env]
        environment["topology"] = TWO_HOSTS
        environment["server_host"] = {
            **dict(hello["environment"]),
            "target": host.target,
            "address": address,
            "interface": interface,
        }
        recording.save()
        impls = runner.usable(remote_entries(cfg, host, agent, hello))
        runner.measure(impls, [two_hosts(address, interface)])
