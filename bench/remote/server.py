"""An impl run by the agent on the server host, seen here as an ordinary Impl: the runner
starts, probes and stops it as any other; every call is one request to the agent."""

from __future__ import annotations

import contextlib
from typing import Any

from bench.host.capabilities import HostCapabilities
from bench.impl.api import Accounting, Impl, RunningServer, ServerConfig
from bench.impl.manifest import Manifest
from bench.metrics.probe import PhaseMetrics
from bench.remote.protocol import Health, Prepare, ProbeStart, ProbeStop, Start, Stop
from bench.remote.ssh import AgentConnection, RemoteError

PREPARE_TIMEOUT_S = 600.0
START_TIMEOUT_S = 60.0
PROBE_TIMEOUT_S = 30.0


def metrics_of(body: dict[str, Any]) -> PhaseMetrics:
    """The agent's PhaseMetrics, rebuilt from its JSON."""
    by_cpu = {int(k): dict(v) for k, v in dict(body.get("cpu_ns_by_cpu") or {}).items()}
    fields = dict(body)
    fields["cpu_ns_by_cpu"] = by_cpu
    fields["notes"] = tuple(str(n) for n in body.get("notes") or ())
    fields.pop("server_host_cpu_ns_by_cpu", None)
    return PhaseMetrics(**fields)


class RemoteImpl(Impl):
    """``manifest``'s impl on the server host; ``reason`` is why it cannot run there."""

    def __init__(self, manifest: Manifest, agent: AgentConnection, reason: str | None) -> None:
        super().__init__(manifest)
        self.agent = agent
        self.reason = reason

    def unavailable_reason(self, host: HostCapabilities) -> str | None:
        return self.reason

    def prepare(self) -> None:
        self.agent.call(Prepare(self.name), timeout_s=PREPARE_TIMEOUT_S)

    def start(self, config: ServerConfig) -> RunningServer:
        request = Start(self.name, config.port, config.cpu, dict(config.options))
        return RemoteServer(self.agent, self.agent.call(request, timeout_s=START_TIMEOUT_S))


class RemoteServer(RunningServer):
    """A server the agent started.  Nothing of it runs here, so the probes here account
    no server (``accounting``); the agent's probes count the server side
    (``probe_start``/``probe_stop``), and the rows describe the server as the agent
    does (``reported_accounting``)."""

    def __init__(self, agent: AgentConnection, started: dict[str, Any]) -> None:
        self.agent = agent
        self._pids = tuple(int(p) for p in started.get("pids") or ())
        self._kernel_tids = tuple(int(t) for t in started.get("kernel_tids") or ())
        self._bpf_ids = tuple(int(i) for i in started.get("bpf_prog_ids") or ())
        self._note = str(started.get("note") or "")
        self._counters: dict[str, int] = {}
        self._stopped = False

    def accounting(self) -> Accounting:
        return Accounting(note="the server runs on the server host: counted by its agent")

    def reported_accounting(self) -> Accounting:
        return Accounting(self._pids, self._kernel_tids, self._bpf_ids, self._note)

    def health(self) -> str | None:
        try:
            body = self.agent.call(Health())
        except RemoteError as exc:
            return str(exc)
        self._counters = {str(k): int(v) for k, v in dict(body.get("counters") or {}).items()}
        health = body.get("health")
        return None if health is None else str(health)

    def counters(self) -> dict[str, int]:
        self.health()
        return dict(self._counters)

    def probe_start(self) -> None:
        self.agent.call(ProbeStart(), timeout_s=PROBE_TIMEOUT_S)

    def probe_stop(self) -> PhaseMetrics:
        body = self.agent.call(ProbeStop(), timeout_s=PROBE_TIMEOUT_S)
        return metrics_of(dict(body["metrics"]))

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(RemoteError):  # a lost agent stops its server itself
            self.agent.call(Stop())
