"""One impl's anatomy pass, on a server the caller started: the driver's pingpong run
untraced (the probe-free round trip of the same configuration, right before), then the
same run traced, 1 in ``every`` requests sampled, with BPF run-time statistics on; the
sampled requests' stages, their summaries and the tail anatomy.

The server's model follows from what it accounts to itself (server.accounting()): user-space
processes; kernel threads (tracked like processes, their receives traced when the datagram is
read out of the socket; a thread whose manifest says it never sleeps is the polling model,
traced without fentry); an XDP program (its entry and exit); none of these, a kernel module
answering in softirq: its UDP encap_rcv handler, found by name among the module's own
symbols (/proc/kallsyms), traced on entry by fentry where the module has BTF, else by
kprobe, else not traced (the unhooked stages, and handler_note says why)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.anatomy.events import windows
from bench.anatomy.stages import (
    KTHREAD,
    KTHREAD_POLL,
    SOFTIRQ,
    USER,
    XDP,
    RequestAnatomy,
    anatomy,
    stage_names,
)
from bench.anatomy.summary import (
    Distribution,
    StageSummary,
    TailAnatomy,
    stage_summaries,
    tail_anatomy,
)
from bench.anatomy.tracer import TraceOutput, Tracer
from bench.bpf import BpfError
from bench.bpf.progstats import ProgStats, prog_stats
from bench.driver.client import DriverConfig, client_limits, run_driver
from bench.impl.api import Accounting, RunningServer
from bench.impl.registry import manifests
from bench.kmod.server import ModuleServer
from bench.metrics.bpf import bpf_stats_enabled

KALLSYMS = Path("/proc/kallsyms")
HANDLER_SUFFIX = "encap_rcv"  # a UDP encapsulation socket's receive hook
MIN_TRACED_S = 0.5
MAX_TRACED_S = 20.0
TRACING_SLOWDOWN = 2.0  # a generous guess of how much slower traced requests are


@dataclass(frozen=True)
class ProgramCost:
    """One anatomy program's run time in the traced pass (BPF statistics)."""

    name: str
    prog_id: int
    run_time_ns: int
    run_cnt: int

    @property
    def ns_per_run(self) -> float:
        return self.run_time_ns / self.run_cnt if self.run_cnt else float("nan")


@dataclass(frozen=True)
class AnatomyResult:
    impl: str
    settings: Mapping[str, str]  # rx_cpu, idle
    every: int
    server_in_user_space: bool
    handler_hooked: bool
    handler_note: str
    untraced_ns: Mapping[str, float | None]  # the driver's latency, untraced run
    traced_driver_ns: Mapping[str, float | None]  # the driver's latency, traced run
    traced_rtt: Distribution  # client send entry -> client receive exit, sampled requests
    stage_names: tuple[str, ...]
    requests: tuple[RequestAnatomy, ...]
    stages: tuple[StageSummary, ...]
    tail: TailAnatomy
    programs: tuple[ProgramCost, ...]
    loader: Mapping[str, int]
    incomplete: int
    traced_requests: int  # requests the driver sent in the traced run
    model: str = ""  # the server model of the stages (bench.anatomy.stages.MODELS)
    hooks: Mapping[str, str] = field(default_factory=dict)  # the loader's choices
    notes: str = ""  # hooks the kernel did not offer, and what was used instead

    def overhead_ns(self) -> float | None:
        """Traced minus untraced p50 round trip as the driver measured both."""
        traced, untraced = self.traced_driver_ns.get("p50"), self.untraced_ns.get("p50")
        if traced is None or untraced is None:
            return None
        return traced - untraced

    def to_json(self) -> dict[str, Any]:
        return {
            "impl": self.impl,
            "settings": dict(self.settings),
            "every": self.every,
            "server_in_user_space": self.server_in_user_space,
            "handler_hooked": self.handler_hooked,
            "handler_note": self.handler_note,
            "untraced_ns": dict(self.untraced_ns),
            "traced_driver_ns": dict(self.traced_driver_ns),
            "traced_rtt_ns": dataclasses.asdict(self.traced_rtt),
            "stage_names": list(self.stage_names),
            "stages": [
                {"name": s.name, "missing": s.missing, **dataclasses.asdict(s.ns)}
                for s in self.stages
            ],
            "tail": dataclasses.asdict(self.tail),
            "programs": [
                {**dataclasses.asdict(p), "ns_per_run": _finite(p.ns_per_run)}
                for p in self.programs
            ],
            "loader": dict(self.loader),
            "incomplete": self.incomplete,
            "traced_requests": self.traced_requests,
            "model": self.model,
            "hooks": dict(self.hooks),
            "notes": self.notes,
            "requests": [dataclasses.asdict(r) for r in self.requests],
        }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def traced_duration(sampled: int, every: int, untraced_p50_ns: float | None) -> float:
    """Seconds of traced pingpong that should yield ``sampled`` sampled requests."""
    rtt = untraced_p50_ns or 100_000.0
    wanted = sampled * every * rtt * TRACING_SLOWDOWN / 1e9 + 0.2
    return min(max(wanted, MIN_TRACED_S), MAX_TRACED_S, client_limits().max_duration_s)


def _stats(prog_ids: Mapping[str, int]) -> dict[str, ProgStats]:
    found: dict[str, ProgStats] = {}
    for name, prog_id in prog_ids.items():
        try:
            found[name] = prog_stats(prog_id)
        except BpfError:
            continue
    return found


def module_handler(module: str, kallsyms: Path = KALLSYMS) -> str | None:
    """The UDP encap_rcv handler among ``module``'s own functions, or None (none, or
    several to choose from)."""
    try:
        lines = kallsyms.read_text().splitlines()
    except OSError:
        return None
    found = {
        fields[2]
        for fields in (line.split() for line in lines)
        if len(fields) == 4
        and fields[1] in ("t", "T")
        and fields[3] == f"[{module}]"
        and fields[2].endswith(HANDLER_SUFFIX)
    }
    return found.pop() if len(found) == 1 else None


def server_model(impl: str, server: RunningServer, accounting: Accounting) -> str:
    """How ``server`` serves (bench.anatomy.stages.MODELS), from what it accounts to itself."""
    if accounting.pids:
        return USER
    if accounting.kernel_tids:
        manifest = manifests().get(impl)
        sleeps = manifest.server_path.get("sleeps", True) if manifest else True
        return KTHREAD if sleeps else KTHREAD_POLL
    if accounting.bpf_prog_ids:
        return XDP
    return SOFTIRQ


def _softirq_handler(server: RunningServer) -> tuple[str | None, str]:
    """The handler function to trace, or None and why not."""
    if not isinstance(server, ModuleServer):
        return None, "the server is no kernel module: its handler is not known"
    handler = module_handler(server.name)
    if handler is None:
        return None, (
            f"no single *{HANDLER_SUFFIX} function among module {server.name}'s symbols: "
            "the handler runs inside the stack stages"
        )
    return handler, ""


def _handler_note(model: str, handler: str | None, why_not: str, output: TraceOutput) -> str:
    if model in (KTHREAD, KTHREAD_POLL):
        recv = output.hooks.get("kernel_recv", "none")
        if recv == "none":
            return f"kernel thread tracked; its receives not traced ({output.notes})"
        note = f"kernel thread tracked (wake-ups, switch-ins); receives by {recv}"
        if model == KTHREAD_POLL:
            note += (
                "; no fentry (attaching a BPF trampoline can wait for an RCU Tasks grace "
                "period, which a thread that never sleeps holds off): kprobes instead"
            )
        return note
    if model != SOFTIRQ:
        return output.handler_note
    if handler is None:
        return why_not
    hook = output.hooks.get("handler", "none")
    if hook == "none":
        return f"{handler} could not be traced ({output.notes}): inside the stack stages"
    if hook == "kprobe":
        return f"{handler} traced on entry by kprobe (the module has no BTF for fentry)"
    return f"{handler} traced on entry by fentry"


def anatomy_pass(
    impl: str,
    server: RunningServer,
    driver: DriverConfig,
    settings: Mapping[str, str],
    *,
    every: int,
    sampled: int,
) -> AnatomyResult:
    """``driver`` untraced, then traced long enough for about ``sampled`` samples."""
    if driver.mode != "pingpong" or driver.outstanding != 1:
        raise ValueError("the anatomy needs pingpong with one request in flight")
    accounting = server.accounting()
    in_user_space = bool(accounting.pids)
    model = server_model(impl, server, accounting)
    xdp_prog_id = accounting.bpf_prog_ids[0] if model == XDP else None
    handler, why_not = _softirq_handler(server) if model == SOFTIRQ else (None, "")
    kernel_recv = model in (KTHREAD, KTHREAD_POLL)
    untraced = run_driver(driver)
    traced_config = dataclasses.replace(
        driver, duration_s=traced_duration(sampled, every, untraced.latency_ns.get("p50"))
    )
    with Tracer(
        port=driver.port,
        every=every,
        xdp_prog_id=xdp_prog_id,
        handler=handler,
        kernel_recv=kernel_recv,
        kprobes=model == KTHREAD_POLL,
    ) as tracer:
        # a kernel thread is its own thread group: tracked by its tid like a process
        for pid in (*accounting.pids, *(accounting.kernel_tids if kernel_recv else ())):
            tracer.track(pid, "server")
        with bpf_stats_enabled():
            before = _stats(tracer.prog_ids)
            traced = run_driver(
                traced_config, on_measure_start=lambda pid: tracer.track(pid, "client")
            )
            after = _stats(tracer.prog_ids)
        output = tracer.stop()
    hooked = output.handler_hooked or kernel_recv
    names = stage_names(in_user_space, hooked, model)
    complete, incomplete = windows(output.events)
    requests = tuple(anatomy(w, in_user_space, hooked, model) for w in complete)
    programs = tuple(
        ProgramCost(
            name,
            output.prog_ids[name],
            after[name].run_time_ns - before[name].run_time_ns,
            after[name].run_cnt - before[name].run_cnt,
        )
        for name in output.prog_ids
        if name in before and name in after
    )
    return AnatomyResult(
        impl=impl,
        settings=dict(settings),
        every=every,
        server_in_user_space=in_user_space,
        handler_hooked=hooked,
        handler_note=_handler_note(model, handler, why_not, output),
        untraced_ns=dict(untraced.latency_ns),
        traced_driver_ns=dict(traced.latency_ns),
        traced_rtt=Distribution.of([r.rtt_ns for r in requests]),
        stage_names=names,
        requests=requests,
        stages=tuple(stage_summaries(requests, names)),
        tail=tail_anatomy(requests, names),
        programs=programs,
        loader=dict(output.stats),
        incomplete=incomplete,
        traced_requests=traced.requests,
        model=model,
        hooks=dict(output.hooks),
        notes=output.notes,
    )
