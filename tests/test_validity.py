"""The validity gates reach the rows, the run's summary and the report: every ok phase of a
real run carries the gates that apply to its mode, and the tally counts them."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench.analysis.validity import mark, tally
from bench.driver.client import DriverResult
from bench.driver.histogram import empty
from bench.results.rows import GateCheck, PhaseRow
from bench.results.run import Run
from bench.runner.validity import phase_gates
from tests.bench_runs import bench_run


def _row(trial: int, *gates: GateCheck, status: str = "ok") -> PhaseRow:
    return PhaseRow(env="host", impl="x", kind="userspace", mode="pingpong", size=64,
                    topology="lo", trial=trial, status=status, gates=gates)  # type: ignore[arg-type]  # fmt: skip


def _gate(name: str, passed: bool) -> GateCheck:
    return GateCheck(name, 1.0, 0.5, passed, f"{name} measured")


def test_the_tally_counts_checked_phases_and_each_gate_s_failures() -> None:
    rows = [
        _row(0, _gate("warmup", True), _gate("independence", False)),
        _row(1, _gate("warmup", True), _gate("independence", True)),
        _row(2),  # not checked
        _row(3, _gate("warmup", False), status="failed"),  # failed phases are not counted
    ]
    (host,) = tally(rows)
    assert (host.phases, host.checked, host.clean) == (3, 2, 1)
    assert dict(host.per_gate) == {"warmup": (2, 0), "independence": (2, 1)}
    assert [(t, g.name) for _, t, g in host.failures] == [(0, "independence")]
    assert (
        host.line()
        == "host: validity gates: 1 of 2 checked phases pass all; failed: independence 1/2"
    )
    (unchecked,) = tally([_row(0), replace(_row(1), env="host")])
    assert "none of 2 ok phases was checked" in unchecked.line()


def test_a_configuration_s_mark_names_each_failed_gate_and_whether_it_excludes() -> None:
    clean = mark([_row(0, _gate("warmup", True)), _row(1, _gate("warmup", True))])
    assert clean.clean and clean.text == "all pass (2)" and not clean.excluding
    advisory = mark([_row(0, _gate("independence", False)), _row(1, _gate("independence", True))])
    assert advisory.text == "independence 1/2" and not advisory.excluding
    assert "round 0: independence 1: independence measured" in advisory.detail
    driver = mark([_row(0, _gate("driver_not_bottleneck", False), _gate("stationarity", False))])
    assert driver.excluding and driver.text.startswith("driver-bound (does not rank servers) 1/1")
    assert mark([_row(0)]).text == "not checked"
    # a failed phase says nothing about the configuration's validity
    assert mark([_row(0, _gate("warmup", False), status="failed")]).text == "not checked"


def test_a_real_run_records_the_gates_of_each_mode(tmp_path: Path) -> None:
    run = bench_run(
        tmp_path,
        ["--impl", "blocking-c", "--trials", "1", "--duration", "0.3", "--warmup", "0.05",
         "--no-calibrate", "--env", "host", "--rate-fraction", "0.3"],
    )  # fmt: skip
    by_mode = {r.mode: {g.name for g in r.gates} for r in run.rows if r.ok}
    latency = {"warmup", "stationarity", "independence"}
    machine = {"steal", "migrations"}
    assert by_mode["pingpong"] == latency | machine
    assert by_mode["rate"] >= latency | {"load_held", "interarrivals"}
    assert by_mode["flood"] >= latency
    for row in run.rows:
        for gate in row.gates:
            assert gate.detail and (gate.threshold is None or gate.threshold > 0)
    # the client's pinned CPU's busy share, read over the probes' own window: a share
    shares = [g.value for r in run.rows for g in r.gates if g.name == "driver_not_bottleneck"]
    assert shares and all(v is not None and 0.0 < v <= 1.0 for v in shares)
    # the server and the driver are pinned: their threads did not move
    moved = [g for r in run.rows for g in r.gates if g.name == "migrations"]
    assert moved and all(g.passed and g.value == 0 for g in moved), [g.detail for g in moved]


def test_a_phase_that_failed_stationarity_is_re_run_once_within_the_round_s_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from contextlib import nullcontext

    from bench.results.run import Run
    from bench.runner import measure
    from bench.runner.config import RunConfig
    from bench.runner.phase import PhaseSpec
    from bench.runner.progress import LogProgress
    from bench.runner.recording import Recording
    from bench.runner.validity import retry_budget
    from bench.topology import LOOPBACK

    attempts: list[str] = []

    def measured(spec: PhaseSpec, *args: object) -> PhaseRow:
        attempts.append(spec.key)
        steady = len([k for k in attempts if k == spec.key]) > 1
        return replace(spec.row("ok", None), gates=(_gate("stationarity", steady),))

    class Server:
        def health(self) -> None:
            return None

    monkeypatch.setattr(measure, "measure_phase", measured)
    monkeypatch.setattr(measure, "running_server", lambda *a: nullcontext(Server()))
    monkeypatch.setattr(measure, "phase_conditions", lambda *a: nullcontext(None))
    monkeypatch.setattr(measure, "marked_watch", lambda: None)
    cfg = RunConfig(out_root=tmp_path, server_cpu=None, client_cpu=None)
    recording = Recording(Run.new({}, {}), tmp_path)
    said: list[str] = []
    runner = measure.Runner(cfg, recording, LogProgress(said.append))
    specs = [
        (
            PhaseSpec.of(
                0,
                "userspace",
                env="host",
                topology="lo",
                impl="x",
                mode="pingpong",
                size=size,
                outstanding=1,
            ),
            None,
            0.1,
        )
        for size in range(64, 64 + 30)
    ]
    assert retry_budget(30) == 2
    runner.retry_round, runner.retries_left = 0, retry_budget(30)

    class Impl:
        name = "x"

    runner._measure_impl_trial(Impl(), LOOPBACK, 0, specs, "salt", {})  # type: ignore[arg-type]
    rows = recording.run.rows
    assert len(rows) == 30 and len(attempts) == 32  # two re-runs, then the budget is spent
    retried = [r for r in rows if r.retried]
    assert len(retried) == 2 and all(g.passed for r in retried for g in r.gates)
    assert retried[0].retried == "first attempt failed stationarity 1 (threshold 0.5)"
    assert sum(not r.gates[0].passed for r in rows) == 28  # kept as measured, gate failed
    assert sum("re-run" in line for line in said) == 2


def test_steal_and_migrations_are_gates_of_their_own() -> None:
    from bench.analysis import gates
    from bench.metrics.migrations import parse_sched

    assert gates.steal(0.4).passed and not gates.steal(12.0).passed
    assert gates.migrations(0, "the server's threads 0").passed
    moved = gates.migrations(3, "the driver's threads 3")
    assert not moved.passed and "3 CPU migration(s)" in moved.detail
    with pytest.raises(ValueError):
        gates.steal(float("nan"))
    sched = "se.exec_start : 1.0\nse.nr_migrations                             :     17\n"
    assert parse_sched(sched) == 17 and parse_sched("nothing : 1") is None


def test_a_flood_whose_driver_window_was_not_read_says_the_driver_gate_was_not_computed() -> None:
    from bench.results.rows import Configuration

    c = Configuration(env="host", impl="x", mode="flood", size=64, topology="lo")
    result = DriverResult(
        requests=10, replies=10, lost=0, duplicates=0, reordered=0, corrupt=0, duration_s=1.0,
        send_rps=10.0, throughput_rps=10.0, latency_ns={}, histogram=empty(),
        histogram_encoded="", samples=np.zeros(0, dtype=np.int64), sample_cap=0,
        client_pid=0, client_rusage={},
    )  # fmt: skip
    checked, notes = phase_gates(c, None, result, None)
    assert "driver_not_bottleneck" not in {g.name for g in checked}
    assert any("driver not computed" in n and "ticks" in n for n in notes), notes
    checked, _ = phase_gates(c, None, result, 0.95)
    (driver,) = [g for g in checked if g.name == "driver_not_bottleneck"]
    assert not driver.passed


def _driver_gate(run: Run) -> GateCheck:
    (row,) = [r for r in run.rows if r.ok and r.mode == "rate"]
    (gate,) = [g for g in row.gates if g.name == "driver_not_bottleneck"]
    return gate


def test_a_cpu_hog_beside_the_driver_marks_its_phase_driver_bound(tmp_path: Path) -> None:
    args = ["--impl", "blocking-c", "--mode", "rate", "--rate", "2000", "--trials", "1",
            "--duration", "0.5", "--warmup", "0.05", "--no-calibrate", "--env", "host",
            "--server-cpu", "1", "--client-cpu", "0"]  # fmt: skip
    for name in ("alone", "hog"):
        (tmp_path / name).mkdir()
    alone = _driver_gate(bench_run(tmp_path / "alone", args))
    assert alone.passed, alone.detail  # 2000 requests/s leave the driver's CPU mostly idle
    hog = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-c", "while True: pass"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        beside = _driver_gate(bench_run(tmp_path / "hog", args))
    finally:
        hog.kill()
        hog.wait(10)
    assert not beside.passed, beside.detail
    assert beside.value is not None and alone.value is not None and beside.value > alone.value
    assert mark([r for r in Run.load(tmp_path / "hog" / "out").rows if r.mode == "rate"]).excluding
