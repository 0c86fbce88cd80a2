"""The server host's side: ``python -m bench agent`` answers the driver's requests (one
JSON line each way) until its stdin closes, then stops what it started.

It keeps its own ledger (``AGENT_LEDGER``, apart from a driver's on the same filesystem),
records itself there so that ``bench agent --cleanup`` tells a live agent (spared, with
what it owns) from a dead one's leftovers (removed), and stops its server on EOF, SIGTERM
and SIGHUP alike (the command turns signals into
KeyboardInterrupt, and ``serve`` stops the server on every way out)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict
from typing import IO, Any

from bench import __version__
from bench.errors import HellobenchError
from bench.host.capabilities import capabilities
from bench.host.description import collect_environment
from bench.impl.api import Impl, RunningServer, ServerConfig
from bench.impl.registry import Entry, discover
from bench.metrics.probe import PhaseProbe
from bench.remote import protocol
from bench.remote.nic import collect_nic, driver_name, interface_of
from bench.remote.protocol import (
    Describe,
    Health,
    Prepare,
    ProbeStart,
    ProbeStop,
    ProtocolError,
    Request,
    Start,
    Stop,
)
from bench.system import ledger
from bench.system.cpus import cpu_problem
from bench.system.processes import ProcessIdentity

AGENT_LEDGER = "/run/hellobench/agent"
AGENT_KIND = "agent"
AGENT_CLEANER = "bench.system.owned:stop_recorded"
AGENT_SELF = "the server host's agent"  # who a CPU error says may not run there
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
# Generic XDP where the link is a veth whose peer is on the other host: a native XDP_TX
# into a veth waits for the peer's NAPI, which only a program on the peer schedules.
GENERIC_XDP_LINKS = ("veth",)


def use_agent_ledger() -> None:
    """Point this process's ledger at the agent's own (unless already given)."""
    os.environ["HELLOBENCH_LEDGER"] = os.environ.get("HELLOBENCH_AGENT_LEDGER", AGENT_LEDGER)
    path = os.environ.get("PATH", "")
    missing = [d for d in SBIN if d not in path.split(os.pathsep)]
    os.environ["PATH"] = os.pathsep.join([*filter(None, path.split(os.pathsep)), *missing])


def reached_address() -> str | None:
    """The address the driver reached this host at (sshd's SSH_CONNECTION)."""
    parts = os.environ.get("SSH_CONNECTION", "").split()
    return parts[2] if len(parts) == 4 else None


def impl_availability(entries: dict[str, Entry]) -> dict[str, str | None]:
    """Each impl's reason for not running here (None when it can)."""
    host = capabilities()
    found: dict[str, str | None] = {}
    for name, entry in entries.items():
        reason = entry.unavailable
        if entry.manifest.requires.loadable_modules and not host.loadable_modules:
            reason = f"kernel modules cannot load on the server host: {host.modules_reason}"
        found[name] = reason
    return found


def _metrics_json(probe: PhaseProbe) -> dict[str, Any]:
    body = asdict(probe.stop())
    body["cpu_ns_by_cpu"] = {str(k): v for k, v in body["cpu_ns_by_cpu"].items()}
    body["notes"] = list(body["notes"])
    return body


class Agent:
    """The state behind the requests: the registry, one running server, one probe."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self.interface = interface_of(address) if address else None
        self.entries = discover()
        self.server: RunningServer | None = None
        self.probe: PhaseProbe | None = None

    def handle(self, line: str) -> str:
        """The response line to one request line (errors as error lines)."""
        try:
            return self._dispatch(protocol.decode_request(line))
        except (
            HellobenchError,
            OSError,
            ValueError,
            TypeError,
            KeyError,
            RuntimeError,
            subprocess.SubprocessError,  # a child that failed before its exec (its pinning)
        ) as exc:
            return protocol.error(" ".join(str(exc).split()) or type(exc).__name__)

    def _dispatch(self, request: Request) -> str:
        if isinstance(request, Describe):
            return self._describe()
        if isinstance(request, Prepare):
            self._impl(request.impl).prepare()
            return protocol.ok()
        if isinstance(request, Start):
            return self._start(request)
        if isinstance(request, ProbeStart):
            return self._probe_start()
        if isinstance(request, ProbeStop):
            if self.probe is None:
                raise ProtocolError("probe_stop: no probe started")
            probe, self.probe = self.probe, None
            return protocol.ok(metrics=_metrics_json(probe))
        if isinstance(request, Health):
            if self.server is None:
                return protocol.ok(health="no server running", counters={})
            return protocol.ok(health=self.server.health(), counters=self.server.counters())
        if isinstance(request, Stop):
            self.stop()
            return protocol.ok()
        raise ProtocolError(f"unhandled op {request.op}")

    def _where(self) -> tuple[str, str]:
        if self.address is None or self.interface is None:
            raise ProtocolError(
                f"cannot tell which interface carries the driver's traffic "
                f"(address {self.address or 'unknown: no SSH_CONNECTION'})"
            )
        return self.address, self.interface

    def _describe(self) -> str:
        environment = collect_environment("server-host", "native", {})
        nic: dict[str, Any] | str = "not available: no interface holds the reached address"
        if self.interface is not None:
            nic = collect_nic(self.interface)
        environment["nic"] = nic
        host = capabilities()
        return protocol.ok(
            version=__version__,
            protocol=protocol.PROTOCOL_VERSION,
            address=self.address,
            interface=self.interface,
            environment=environment,
            impls=impl_availability(self.entries),
            loadable_modules=host.loadable_modules,
            modules_reason=host.modules_reason,
        )

    def _entry(self, name: str) -> Entry:
        entry = self.entries.get(name)
        if entry is None:
            raise ProtocolError(f"unknown impl {name!r}")
        reason = impl_availability(self.entries)[name]
        if reason is not None or entry.impl is None:
            raise HellobenchError(f"{name} cannot run on the server host: {reason}")
        return entry

    def _impl(self, name: str) -> Impl:
        impl = self._entry(name).impl
        assert impl is not None  # _entry checked it
        return impl

    def _start(self, request: Start) -> str:
        problem = None if request.cpu is None else cpu_problem("cpu", request.cpu, AGENT_SELF)
        if problem is not None:
            raise ProtocolError(f"start: {problem}")
        if self.server is not None:
            raise ProtocolError("start: a server is already running (stop it first)")
        address, interface = self._where()
        entry = self._entry(request.impl)
        options = dict(request.options)
        if "xdp_mode" in entry.manifest.options and driver_name(interface) in GENERIC_XDP_LINKS:
            options.setdefault("xdp_mode", "skb")
        config = ServerConfig(
            addr=address,
            port=request.port,
            cpu=request.cpu,
            interface=interface,
            options=options,
        )
        assert entry.impl is not None
        entry.impl.prepare()
        self.server = entry.impl.start(config)
        acc = self.server.accounting()
        return protocol.ok(
            pids=list(acc.pids),
            kernel_tids=list(acc.kernel_tids),
            bpf_prog_ids=list(acc.bpf_prog_ids),
            note=acc.note,
            interface=interface,
            address=address,
        )

    def _probe_start(self) -> str:
        if self.server is None:
            raise ProtocolError("probe_start: no server running")
        if self.probe is not None:
            self.probe.close()
        probe = PhaseProbe(self.server.accounting(), None)
        probe.start()
        self.probe = probe
        return protocol.ok()

    def stop(self) -> None:
        if self.probe is not None:
            self.probe.close()
            self.probe = None
        if self.server is not None:
            server, self.server = self.server, None
            server.stop()


@contextlib.contextmanager
def recorded_agent() -> Iterator[str]:
    """This agent in its ledger while it runs (so a cleanup can stop a stale one)."""
    pid = os.getpid()
    identity = ProcessIdentity.of(pid)
    ident = f"agent-{pid}"
    started = identity.started if identity else None
    ledger.record(AGENT_KIND, ident, AGENT_CLEANER, pid=pid, started=started)
    try:
        yield ident
    finally:
        ledger.release(AGENT_KIND, ident)


def serve(infile: IO[bytes], outfile: IO[bytes], address: str | None) -> None:
    """Answer requests from ``infile`` until EOF; stop the server on every way out."""
    for line in ledger.sweep():  # what dead agents left
        print(f"agent cleanup: {line}", file=sys.stderr)
    with recorded_agent():
        agent = Agent(address)
        try:
            for raw in protocol.read_lines(infile):
                if raw is None:
                    reply = protocol.error(protocol.TOO_LONG)
                elif raw.strip():
                    reply = agent.handle(raw.decode(errors="replace").strip())
                else:
                    continue
                outfile.write(reply.encode() + b"\n")
                outfile.flush()
        finally:
            agent.stop()


def cleanup() -> list[str]:
    """Remove what dead agents left, as the local cleanup does.  A live agent (its recorded
    pid still running with its recorded start time) serves another driver's run: it and
    what it owns are spared, and one line says so."""
    records = ledger.records()
    live = [rec for rec in records if rec.kind == AGENT_KIND and rec.owner_alive()]
    owners = {rec.owner for rec in live}
    owned = sum(1 for rec in records if rec.kind != AGENT_KIND and rec.owner in owners)
    lines = ledger.sweep(include_live=False)
    if live:
        names = ", ".join(f"{rec.ident} (pid {rec.owner_pid})" for rec in live)
        agents, own = ("agent", "it owns") if len(live) == 1 else ("agents", "they own")
        lines.append(
            f"spared live {agents} {names} and the {owned} object(s) {own}: a run is using "
            "them, and they go when it ends"
        )
    return lines
