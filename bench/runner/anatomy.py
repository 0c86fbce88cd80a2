"""The claim's anatomy pass: after the timed rounds of an environment, each impl of the
claim's ladder is traced once at every receive-CPU and idle level the claim measures
(bench/anatomy), in pingpong at the claim's size — never inside a timed phase.  Each pass
is recorded under results.json's ``anatomy`` (its per-request stages beside it, under
samples/anatomy/); a pass that fails is recorded with its error, and a machine that cannot
trace records why, once per environment (``anatomy_skipped``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from bench import factors
from bench.anatomy.build import unavailable_reason
from bench.anatomy.measure import AnatomyResult, anatomy_pass
from bench.anatomy.summary import share_on
from bench.driver.client import DriverConfig
from bench.errors import HellobenchError
from bench.impl.api import Impl, ServerConfig
from bench.native.build import BuildError
from bench.results.anatomy import AnatomyRecord, ProgramCost, Quantiles, StageRecord, finite
from bench.runner.conditions import phase_conditions
from bench.runner.lifecycle import running_server
from bench.system.files import write_atomic
from bench.topology import Topology

EVERY = 8  # 1 request in 8 traced: the tracing cost is reported beside the stages
ANATOMY_FOLDER = "anatomy"
POLLING_UNDER_TCG = (
    "not traced under TCG: a server that polls with syscalls fires the syscall hooks "
    "without pause, which has starved the emulated guest's RCU (soft lockups)"
)


def untraceable(impl: Impl, accel: str) -> str | None:
    """Why ``impl`` is not traced in an environment of ``accel``, or None."""
    path = impl.manifest.server_path
    polls_with_syscalls = path.get("transitions") is True and path.get("sleeps") is False
    if accel == "tcg" and polls_with_syscalls:
        return POLLING_UNDER_TCG
    return None


def record_of(
    result: AnatomyResult,
    *,
    env: str,
    topology: str,
    size: int,
    server_cpu: int | None,
    client_cpu: int | None,
) -> AnatomyRecord:
    """The results' record of one pass (stage summaries; per-request data kept apart)."""
    requests = result.requests

    def share(cpu: int | None) -> float | None:
        return None if cpu is None else finite(share_on(requests, "rx_cpu", cpu))

    return AnatomyRecord(
        env=env,
        topology=topology,
        impl=result.impl,
        levels=dict(result.settings),
        size=size,
        every=result.every,
        server_in_user_space=result.server_in_user_space,
        handler_hooked=result.handler_hooked,
        handler_note=result.handler_note,
        untraced=Quantiles.of(result.untraced_ns),
        traced_driver=Quantiles.of(result.traced_driver_ns),
        traced_rtt=Quantiles.of(asdict(result.traced_rtt)),
        stages=tuple(
            StageRecord(s.name, Quantiles.of(asdict(s.ns)), s.missing) for s in result.stages
        ),
        tail={k: finite(v) for k, v in result.tail.tail.items()},
        median={k: finite(v) for k, v in result.tail.median.items()},
        tail_count=result.tail.tail_count,
        median_count=result.tail.median_count,
        sampled=len(requests),
        incomplete=result.incomplete,
        traced_requests=result.traced_requests,
        rx_on_server_cpu=share(server_cpu),
        rx_on_client_cpu=share(client_cpu),
        programs=tuple(ProgramCost(p.name, p.run_cnt, p.run_time_ns) for p in result.programs),
        loader={k: int(v) for k, v in result.loader.items()},
        model=result.model,
        hooks={str(k): str(v) for k, v in result.hooks.items()},
        notes=result.notes,
    )


def requests_file(folder: Path, record: AnatomyRecord) -> Path:
    levels = "".join(f"-{k}={record.levels[k]}" for k in sorted(record.levels))
    return folder / f"{record.env}-{record.topology}-{record.impl}{levels}.json"


def trace_ladder(
    impls: Sequence[Impl],
    topo: Topology,
    settings_list: Sequence[Mapping[str, str]],
    *,
    env: str,
    driver: Callable[[Mapping[str, str]], DriverConfig],
    server: Callable[[], ServerConfig],
    server_cpu: int | None,
    sampled: int,
    samples_dir: Path,
    progress: Callable[[str], None],
    accel: str = "native",
) -> list[AnatomyRecord]:
    """One anatomy pass per impl and settings; errors are recorded, never raised."""
    records: list[AnatomyRecord] = []
    for impl in impls:
        for settings in settings_list:
            dcfg = driver(settings)
            skip = untraceable(impl, accel)
            if skip is not None:
                records.append(
                    AnatomyRecord(env, topo.name, impl.name, dict(settings), dcfg.size, error=skip)
                )
                continue
            label = factors.label(settings) or " (default levels)"
            progress(f"[{env}/{topo.name}] anatomy {impl.name}{label}")
            try:
                with (
                    running_server(impl, server()) as running,
                    phase_conditions(topo, settings, server_cpu),
                ):
                    result = anatomy_pass(
                        impl.name, running, dcfg, settings, every=EVERY, sampled=sampled
                    )
            except (HellobenchError, BuildError, OSError, ValueError) as exc:
                error = " ".join(str(exc).split())[:500] or type(exc).__name__
                records.append(
                    AnatomyRecord(env, topo.name, impl.name, dict(settings), dcfg.size, error=error)
                )
                progress(f"[{env}/{topo.name}] anatomy {impl.name}{label} failed: {error}")
                continue
            record = record_of(
                result, env=env, topology=topo.name, size=dcfg.size,
                server_cpu=server_cpu, client_cpu=dcfg.cpu,
            )  # fmt: skip
            records.append(record)
            folder = samples_dir / ANATOMY_FOLDER
            folder.mkdir(parents=True, exist_ok=True)
            rows = [asdict(r) for r in result.requests]
            write_atomic(
                requests_file(folder, record),
                json.dumps({"stage_names": list(result.stage_names), "requests": rows}) + "\n",
            )
    return records


def why_not_traced() -> str | None:
    """Why this machine cannot trace the anatomy, or None."""
    return unavailable_reason()
