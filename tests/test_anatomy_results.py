"""The anatomy as results.json keeps it and as the report and the answer read it: the record
round-trips through the schema, older files load, a pass that failed is recorded and shown
as such, the stages' kinds and the calibrated transitions are derived from the run, and
hostile strings never become markup.  Inputs: TEST FIXTURE runs and synthetic passes."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import pytest

from bench import PROJECT_ROOT
from bench.analysis import anatomy
from bench.analysis.answer import answers
from bench.anatomy.measure import AnatomyResult
from bench.anatomy.stages import USER_STAGES, RequestAnatomy
from bench.anatomy.summary import Distribution, stage_summaries, tail_anatomy
from bench.cli import main
from bench.errors import HellobenchError
from bench.report.render import build_page
from bench.results.anatomy import AnatomyRecord, Quantiles, StageRecord
from bench.results.metrics import metric
from bench.results.run import RESULTS_NAME, Run
from bench.results.schema import SCHEMA_ID, validate
from bench.runner import anatomy as runner_anatomy
from bench.runner.config import RunConfig
from bench.runner.in_guest import guest_anatomy_passes

BASE = PROJECT_ROOT / "tests" / "fixtures" / "runs" / "fixture-base"
LEVELS = {"rx_cpu": "client", "idle": "default", "client_wait": "block", "arrivals": "uniform"}


def _request(seq: int, stages: Mapping[str, int]) -> RequestAnatomy:
    return RequestAnatomy(
        seq=seq, rtt_ns=sum(stages.values()), stages=dict(stages), missing=(), rx_cpu=0,
        server_cpu=1, server_polls=0, client_polls=0,
    )  # fmt: skip


def _result(impl: str = "blocking-c", n: int = 200) -> AnatomyResult:
    """A pass whose server wake-up grows with the request's rank: the tail is wake-ups."""
    requests = tuple(
        _request(
            i, {name: 1000 + (50 * i if name == "server wake-up" else 0) for name in USER_STAGES}
        )
        for i in range(n)
    )
    return AnatomyResult(
        impl=impl, settings=dict(LEVELS), every=8, server_in_user_space=True,
        handler_hooked=False, handler_note="", untraced_ns={"p50": 40000.0, "p99": 60000.0},
        traced_driver_ns={"p50": 44000.0, "p99": None},
        traced_rtt=Distribution.of([r.rtt_ns for r in requests]), stage_names=USER_STAGES,
        requests=requests, stages=tuple(stage_summaries(requests, USER_STAGES)),
        tail=tail_anatomy(requests, USER_STAGES), programs=(), loader={"events": 9},
        incomplete=3, traced_requests=n * 8,
    )  # fmt: skip


def _record(impl: str = "blocking-c", env: str = "host") -> AnatomyRecord:
    return runner_anatomy.record_of(
        _result(impl), env=env, topology="lo", size=64, server_cpu=1, client_cpu=0
    )


def _run_with(records: list[AnatomyRecord], tmp_path: Path) -> Run:
    """The fixture run with ``records``; its rows' empty polls counted (none), so that their
    request-path syscalls are known."""
    folder = tmp_path / "run"
    folder.mkdir(parents=True)
    shutil.copy(BASE / RESULTS_NAME, folder / RESULTS_NAME)
    run = Run.load(folder)
    run.rows = [
        dataclasses.replace(
            r,
            per_request=dataclasses.replace(
                r.per_request, server_eagain_syscalls=0.0, client_eagain_syscalls=0.0
            ),
        )
        for r in run.rows
    ]
    run.anatomy = records
    run.save(folder)
    return Run.load(folder)


def test_a_pass_is_recorded_with_its_summaries_and_reads_back(tmp_path: Path) -> None:
    record = _record()
    assert record.ok and record.sampled == 200 and record.incomplete == 3
    assert record.rx_on_client_cpu == 1.0 and record.rx_on_server_cpu == 0.0
    assert record.stage_names == USER_STAGES
    assert record.tracing_cost == pytest.approx(1.1)
    # the tail's extra time is the server's wake-up, and the composition says so
    grown = {n: record.tail[n] - record.median[n] for n in USER_STAGES}  # type: ignore[operator]
    assert max(grown, key=lambda n: grown[n]) == "server wake-up"
    assert sum(v for n, v in grown.items() if n != "server wake-up") == 0
    run = _run_with([record], tmp_path)
    document = json.loads((run.run_dir / RESULTS_NAME).read_text())
    assert validate(document) == SCHEMA_ID
    assert run.anatomy == [record]


def test_a_failed_pass_is_kept_with_its_error(tmp_path: Path) -> None:
    failed = AnatomyRecord("host", "lo", "ebpf-xdp", dict(LEVELS), 64, error="loader: EPERM")
    run = _run_with([failed], tmp_path)
    assert run.anatomy == [failed] and not run.anatomy[0].ok
    page = build_page(run, tmp_path / "report")
    assert "not traced: loader: EPERM" in page


def test_a_version_5_file_loads_with_no_anatomy(tmp_path: Path) -> None:
    document = Run.load(BASE).to_json()
    document["schema"] = "hellobench/5"
    del document["anatomy"]
    document.pop("migrated", None)
    run = Run.from_json(document)
    assert run.anatomy == []
    assert "no anatomy traced" in run.extra["migrated"]["note"]


def test_stages_fall_into_kinds_by_name() -> None:
    assert anatomy.kind_of("server wake-up") == anatomy.WAKE_UPS
    assert anatomy.kind_of("client receive") == anatomy.SYSCALLS
    assert anatomy.kind_of("stack to server socket") == anatomy.STACK
    assert anatomy.kind_of("stack to receive processing") == anatomy.STACK
    assert anatomy.kind_of("server socket queue") == anatomy.QUEUES
    assert anatomy.kind_of("server user space") == anatomy.USER_SPACE
    assert anatomy.kind_of("receive, handler and way back") == anatomy.UNSPLIT
    assert anatomy.kind_of("in-kernel handler") == anatomy.HANDLER


def test_the_composition_adds_up_and_the_transitions_are_priced_from_the_run(
    tmp_path: Path,
) -> None:
    run = _run_with([_record()], tmp_path)
    (group,) = anatomy.groups(run)
    (p,) = group.passes
    assert p.median_rtt == pytest.approx(sum(p.by_kind().values()))
    assert p.median_rtt == pytest.approx(sum(p.composition.values()))
    # the claim's rows of that configuration: their request-path syscalls × the null syscall
    read = metric("request_syscalls_per_req").read
    counted = sorted(
        v for r in run.rows
        if r.ok and r.env == "host" and r.impl == "blocking-c" and r.mode == "pingpong"
        and r.size == 64 and r.rx_cpu == "client" and not r.server_options
        and (v := read(r)) is not None
    )  # fmt: skip
    assert counted, "the fixture has the configuration's rows"
    null = run.environment("host").calibration["null_syscall_ns"]
    assert p.request_syscalls is not None
    assert counted[0] <= p.request_syscalls <= counted[-1]
    assert p.transitions_ns == pytest.approx(p.request_syscalls * null)
    assert "calibrated, not traced" in p.transitions_note


def test_a_pass_without_counted_syscalls_prices_no_transitions(tmp_path: Path) -> None:
    run = _run_with([_record(impl="no-such-impl")], tmp_path)
    (p,) = anatomy.groups(run)[0].passes
    assert p.transitions_ns is None and "not counted" in p.transitions_note


def test_the_answer_cites_the_anatomy_at_the_question_s_placement(tmp_path: Path) -> None:
    at_question = {**LEVELS, "rx_cpu": "server"}
    moved = dataclasses.replace(_result(), settings=at_question)
    cited = runner_anatomy.record_of(
        moved, env="host", topology="lo", size=64, server_cpu=1, client_cpu=0
    )
    run = _run_with([cited], tmp_path)
    sentence = anatomy.citation(run, "host", "default")
    assert sentence is not None and "blocking-c's" in sentence
    assert "server wake-up" in sentence and "inside syscalls" in sentence
    # at rx on the client CPU (not the question's placement) nothing is cited
    assert anatomy.citation(_run_with([_record()], tmp_path / "b"), "host", "default") is None
    said = answers(run)
    assert "Where the time goes" in said.get("host", "Where the time goes (no family)")


def test_hostile_strings_of_a_pass_never_become_markup(tmp_path: Path) -> None:
    hostile = "<script>alert(1)</script>"
    bad = AnatomyRecord(
        "host", "lo", hostile, dict(LEVELS), 64, error=f"{hostile} <img src=x onerror=1>"
    )
    good = runner_anatomy.record_of(
        dataclasses.replace(_result(), handler_note=hostile, server_in_user_space=False),
        env="host", topology="lo", size=64, server_cpu=1, client_cpu=0,
    )  # fmt: skip
    run = _run_with([bad, good], tmp_path)
    page = build_page(run, tmp_path / "report")
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;" in page


def test_a_run_without_anatomy_says_why_on_the_page(tmp_path: Path) -> None:
    run = _run_with([], tmp_path)
    assert anatomy.NOT_TRACED in build_page(run, tmp_path / "r1")
    run.extra["anatomy_skipped"] = {"vm": "the kernel has no BTF"}
    page = build_page(run, tmp_path / "r2")
    assert "vm: anatomy not traced: the kernel has no BTF" in page


def test_a_failing_pass_is_recorded_and_the_ladder_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def failing(impl: str, *args: object, **kwargs: object) -> AnatomyResult:
        calls.append(impl)
        if impl == "first":
            raise HellobenchError("tracer: cannot attach")
        return _result(impl)

    class FakeImpl:
        def __init__(self, name: str) -> None:
            self.name = name
            self.manifest = SimpleNamespace(server_path={"transitions": True, "sleeps": True})

    class Topo:
        name = "lo"

    from contextlib import nullcontext
    from types import SimpleNamespace

    monkeypatch.setattr(runner_anatomy, "anatomy_pass", failing)
    monkeypatch.setattr(runner_anatomy, "running_server", lambda impl, cfg: nullcontext(None))
    monkeypatch.setattr(runner_anatomy, "phase_conditions", lambda *a: nullcontext(None))
    from bench.driver.client import DriverConfig

    said: list[str] = []
    records = runner_anatomy.trace_ladder(
        [FakeImpl("first"), FakeImpl("second")],  # type: ignore[list-item]
        Topo(),  # type: ignore[arg-type]
        [LEVELS],
        env="host",
        driver=lambda settings: DriverConfig(mode="pingpong", port=3000, size=64, cpu=0),
        server=lambda: None,  # type: ignore[arg-type, return-value]
        server_cpu=1,
        sampled=100,
        samples_dir=tmp_path,
        progress=said.append,
    )
    assert calls == ["first", "second"]
    assert records[0].error == "tracer: cannot attach" and not records[0].ok
    assert records[1].ok and records[1].impl == "second"
    (saved,) = (tmp_path / runner_anatomy.ANATOMY_FOLDER).iterdir()
    assert len(json.loads(saved.read_text())["requests"]) == 200
    assert any("failed: tracer: cannot attach" in line for line in said)


def test_the_guest_watchdog_allows_for_the_anatomy(tmp_path: Path) -> None:
    cfg = RunConfig(out_root=tmp_path, design="standard", env="vm", anatomy_requests=400)
    assert guest_anatomy_passes(cfg) > 0
    assert guest_anatomy_passes(RunConfig(out_root=tmp_path, design="standard", env="vm")) == 0


def test_stage_records_say_what_they_do_not_know() -> None:
    stage = StageRecord("client send", Quantiles.of({"p50": float("nan"), "mean": 3}))
    assert stage.ns == Quantiles(None, None, None, 3.0)


def test_export_writes_one_row_per_pass_and_stage(tmp_path: Path) -> None:
    failed = AnatomyRecord("vm", "lo", "kmod-softirq", dict(LEVELS), 64, error="no BTF")
    run = _run_with([_record(), failed], tmp_path)
    out = tmp_path / "anatomy.csv"
    assert main(["export", str(run.run_dir), "--table", "anatomy", "--out", str(out)]) == 0
    frame = pd.read_csv(out)
    traced = frame[frame["impl"] == "blocking-c"]
    assert list(traced["stage"]) == list(USER_STAGES)
    median = run.anatomy[0].median
    assert traced["median_requests_mean_ns"].sum() == pytest.approx(sum(median.values()))  # type: ignore[arg-type]
    (row,) = frame[frame["impl"] == "kmod-softirq"].to_dict("records")
    assert row["error"] == "no BTF"


def test_a_claim_run_traces_its_ladder_and_the_report_and_answer_show_it(
    tmp_path: Path,
) -> None:
    from bench.anatomy.build import unavailable_reason
    from bench.host.capabilities import capabilities
    from tests.bench_runs import bench_run

    host = capabilities()
    why = unavailable_reason() or (None if host.bpf else host.bpf_reason)
    if why:
        pytest.skip(f"the anatomy cannot be traced here: {why}")
    run = bench_run(
        tmp_path,
        ["--design", "claim", "--quick", "--trials", "1", "--impl", "blocking-c",
         "--impl", "ebpf-xdp", "--anatomy-requests", "100", "--no-calibrate"],
    )  # fmt: skip
    assert sorted(r.impl for r in run.anatomy) == ["blocking-c", "ebpf-xdp"]
    for r in run.anatomy:
        assert r.ok, r.error
        assert r.levels["rx_cpu"] == "server" and r.sampled > 0
        assert r.rx_on_server_cpu is not None and r.rx_on_server_cpu >= 0.99
        median = sum(v for v in r.median.values() if v is not None)
        assert median > 0 and r.untraced.p50 is not None and r.traced_driver.p50 is not None
        saved = runner_anatomy.requests_file(
            run.run_dir / "samples" / runner_anatomy.ANATOMY_FOLDER, r
        )
        requests = json.loads(saved.read_text())["requests"]
        assert len(requests) == r.sampled
        assert all(sum(q["stages"].values()) == q["rtt_ns"] for q in requests)
    page = build_page(run, tmp_path / "report")
    assert "Where the time goes: host/lo" in page
    cited = anatomy.citation(run, "host", "default")
    assert cited is not None and "blocking-c's" in cited and "ebpf-xdp's" in cited


def test_under_tcg_a_server_polling_with_syscalls_is_not_traced() -> None:
    from types import SimpleNamespace

    from bench.impl.registry import discover

    entries = discover()

    def why(name: str, accel: str) -> str | None:
        impl = SimpleNamespace(manifest=entries[name].manifest, name=name)
        return runner_anatomy.untraceable(impl, accel)  # type: ignore[arg-type]

    assert why("spin-c", "tcg") == runner_anatomy.POLLING_UNDER_TCG
    assert why("spin-c", "native") is None and why("spin-c", "kvm") is None
    for traced in ("blocking-c", "kmod-kthread", "kmod-kthread-poll", "kmod-softirq"):
        assert why(traced, "tcg") is None, traced
