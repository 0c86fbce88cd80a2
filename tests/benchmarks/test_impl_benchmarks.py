"""The CI benchmark layer: one round = one short pingpong or flood phase against each
available impl, timed by pytest-benchmark (pedantic mode), with the measured rates and
costs in ``extra_info`` so that ``--benchmark-json`` keeps them beside the timing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from bench.driver.client import DriverConfig, DriverResult, run_driver
from bench.impl.api import RunningServer, ServerConfig
from bench.impl.registry import discover
from bench.metrics.probe import PhaseMetrics, PhaseProbe
from bench.runner.phase import per_request
from tests.conftest import free_udp_port

ENTRIES = discover()
PHASE_S = 0.3


@pytest.fixture(scope="module", params=sorted(ENTRIES))
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, RunningServer, int]]:
    entry = ENTRIES[request.param]
    if entry.impl is None or not entry.available:
        pytest.skip(f"{entry.name}: {entry.unavailable}")
    if entry.manifest.requires.root and os.geteuid() != 0:
        pytest.skip(f"{entry.name}: needs root")
    entry.impl.prepare()
    port = free_udp_port()
    running = entry.impl.start(ServerConfig(port=port, cpu=1 if os.cpu_count() != 1 else None))
    try:
        yield entry.name, running, port
    finally:
        running.stop()


def _one_phase(running: RunningServer, config: DriverConfig) -> tuple[DriverResult, PhaseMetrics]:
    box: dict[str, Any] = {}

    def start(client_pid: int) -> None:
        box["probe"] = PhaseProbe(running.accounting(), client_pid)
        box["probe"].start()

    def end() -> None:
        box["metrics"] = box["probe"].stop()

    result = run_driver(config, on_measure_start=start, on_measure_end=end)
    return result, box["metrics"]


@pytest.mark.parametrize("mode", ["pingpong", "flood"])
def test_phase(benchmark: Any, server: tuple[str, RunningServer, int], mode: str) -> None:
    name, running, port = server
    config = DriverConfig(
        mode=mode,  # type: ignore[arg-type]
        addr="127.0.0.1",
        port=port,
        duration_s=PHASE_S,
        warmup_s=0.05,
        cpu=0,
        sample_cap=0,
    )
    result, metrics = benchmark.pedantic(
        _one_phase, args=(running, config), rounds=3, iterations=1, warmup_rounds=0
    )
    assert result.replies > 0, f"{name} answered nothing"
    assert result.corrupt == 0
    cost = per_request(metrics, result.replies)
    benchmark.extra_info.update(
        {
            "impl": name,
            "mode": mode,
            "replies_per_s": result.throughput_rps,
            "p50_ns": result.latency_ns["p50"],
            "p99_ns": result.latency_ns["p99"],
            "loss": result.lost / result.requests if result.requests else None,
            "system_ctx_switches_per_request": cost.system_ctx_switches,
            "server_syscalls_per_request": cost.server_syscalls,
            "cpu_ns_per_request": cost.cpu_ns.total,
        }
    )
