"""The designs: which phases a run measures, for how many rounds, as the manifests' roles
and the run's options say; a real claim run measures its ladder, its dose-response and its
cross-checks, and the survey of the standard design gets its own rounds."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from bench.impl.registry import discover
from bench.question import PRIMARY_RX_CPU
from bench.runner.config import ConfigError, RunConfig
from bench.runner.design import CLAIM_ROLE, DOSE_LEVELS, LADDER_VM_ROLE, blocks, design_impls
from bench.runner.in_guest import (
    GUEST_ANATOMY_BUILD_S,
    GUEST_ANATOMY_PASS_S,
    GUEST_FIXED_S,
    GUEST_PHASE_OVERHEAD_S,
    MIN_GUEST_TIMEOUT_S,
    guest_anatomy_passes,
    guest_args,
    guest_config,
    guest_phases,
    guest_timeout,
)
from bench.runner.validity import RETRY_SHARE
from tests.bench_runs import bench_run


def test_the_claim_ladder_is_the_impls_with_the_claim_role(tmp_path: Path) -> None:
    cfg = RunConfig(out_root=tmp_path, design="claim", trials=10)
    claim, dose = blocks(cfg)
    holders = {n for n, e in discover().items() if CLAIM_ROLE in e.manifest.roles}
    assert set(claim.impls) == holders and len(holders) >= 4
    assert (claim.modes, claim.levels_of("rx_cpu"), claim.levels_of("idle")) == (
        ("pingpong",), ("client", "server"), ("default", "poll"),
    )  # fmt: skip
    assert claim.rounds == dose.rounds == 10
    assert dose.server_levels == (DOSE_LEVELS,) and len(dose.impls) == 1
    assert dose.impls[0] in holders
    assert set(design_impls(cfg)) == holders


def test_the_standard_design_adds_a_survey_with_its_own_rounds(tmp_path: Path) -> None:
    cfg = RunConfig(out_root=tmp_path, design="standard", trials=10, matrix_trials=2)
    names = [(b.name, b.rounds) for b in blocks(cfg)]
    assert names == [("claim", 10), ("dose", 10), ("survey", 2), ("survey-load", 1)]
    survey, load = blocks(cfg)[2:]
    assert survey.modes == ("pingpong",) and load.modes == ("rate", "flood")
    assert design_impls(cfg) == ()  # the survey takes every impl
    matrix = blocks(RunConfig(out_root=tmp_path, impls=("blocking-c",), trials=4))
    assert [(b.name, b.impls, b.rounds) for b in matrix] == [("matrix", ("blocking-c",), 4)]


def test_a_design_needs_a_server_cpu_and_a_known_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--server-cpu"):
        RunConfig(out_root=tmp_path, design="claim", server_cpu=None)
    with pytest.raises(ConfigError, match="--design"):
        RunConfig(out_root=tmp_path, design="everything")


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two CPUs")
def test_a_standard_run_measures_each_block_for_its_rounds(tmp_path: Path) -> None:
    args = ["--design", "standard", "--impl", "blocking-c", "--impl", "spin-c"]
    args += ["--mode", "flood", "--trials", "2", "--survey-trials", "1"]
    args += ["--claim-duration", "0.1", "--duration", "0.1", "--warmup", "0.05"]
    args += ["--no-calibrate", "--env", "host", "--seed", "11"]
    run = bench_run(tmp_path, args)
    assert run.config["design"] == "standard"
    assert [b["name"] for b in run.config["blocks"]] == ["claim", "dose", "survey"]
    rounds = Counter((r.impl, r.mode, r.rx_cpu, r.idle, r.server_options) for r in run.rows if r.ok)
    for impl in ("blocking-c", "spin-c"):
        for rx in ("client", "server"):
            for idle in ("default", "poll"):
                assert rounds[impl, "pingpong", rx, idle, ""] == 2  # the claim's rounds
        assert rounds[impl, "flood", "client", "default", ""] == 1  # the survey's
    for dose in ("0", "100", "200"):  # at the question's placement, every idle level
        for idle in ("default", "poll"):
            level = f"extra_syscalls={dose}"
            assert rounds["blocking-c", "pingpong", PRIMARY_RX_CPU, idle, level] == 2
            assert rounds["blocking-c", "pingpong", "client", idle, level] == 0
    assert not [k for k in rounds if k[0] == "spin-c" and k[4]]  # the dose is one impl's
    checks = run.extra["crosschecks"]
    assert {(c["impl"], c["rx_cpu"]) for c in checks} == {
        (i, rx) for i in ("blocking-c", "spin-c") for rx in ("client", "server")
    }
    for c in checks:
        assert "error" in c or (c["ours_p50_ns"] > 0 and c["probe_p50_ns"] > 0)


def test_the_guest_measures_the_claim_and_its_watchdog_allows_for_every_phase(
    tmp_path: Path,
) -> None:
    standard = RunConfig(out_root=tmp_path, design="standard", trials=10, budget="full")
    guest = guest_config(standard)
    assert guest.design == "claim"  # the survey stays on the host
    assert guest.budget == "full" and guest.env == "host"
    args = guest_args(standard, tmp_path / "vm")
    assert "--progress-lines" in args
    written = json.loads(Path(args[args.index("--config") + 1]).read_text())
    assert RunConfig.from_json(written) == guest
    ladder = len(blocks(RunConfig(out_root=tmp_path, design="claim", trials=10))[0].impls)
    # 4 placement levels; the doses at the question's placement and both idle levels
    assert guest_phases(standard) == 10 * ladder * 4 + 10 * 3 * 2
    longest = max(standard.claim_duration_s, standard.duration_s)  # an upper bound
    per_phase = 2 * (longest + standard.warmup_s) + GUEST_PHASE_OVERHEAD_S
    # each phase may be measured twice: a re-run of a failed warm-up or stationarity gate
    phases = guest_phases(standard) * (1.0 + RETRY_SHARE)
    assert guest_timeout(standard) == pytest.approx(
        max(MIN_GUEST_TIMEOUT_S, phases * per_phase + GUEST_FIXED_S)
    )
    traced = replace(standard, anatomy_requests=100)
    passes = guest_anatomy_passes(traced)
    assert passes == ladder * 2 * 2  # the claim's ladder at both rx and idle levels (full)
    assert guest_timeout(traced) == pytest.approx(
        guest_timeout(standard) + GUEST_ANATOMY_BUILD_S + passes * GUEST_ANATOMY_PASS_S
    )
    given = RunConfig(out_root=tmp_path, design="claim", vm_timeout_s=60.0)
    assert guest_timeout(given) == 60.0


def test_by_default_the_guest_measures_the_vm_ladder_at_both_receive_cpus(
    tmp_path: Path,
) -> None:
    standard = RunConfig(out_root=tmp_path, design="standard", trials=10)
    guest = guest_config(standard)
    assert guest.design == "ladder"
    assert guest.budget == "default"
    holders = {n for n, e in discover().items() if LADDER_VM_ROLE in e.manifest.roles}
    (ladder,) = blocks(RunConfig(out_root=tmp_path, design="ladder", trials=10))
    assert set(ladder.impls) == holders
    assert {"kmod-kthread", "kmod-kthread-poll", "blocking-c", "spin-c"} <= holders
    # The primary contrasts are evaluated with receive processing on the server's CPU, so
    # the guest's ladder has that level beside the default; idle=poll is --full's.
    assert PRIMARY_RX_CPU == "server" and PRIMARY_RX_CPU in ladder.levels_of("rx_cpu")
    assert (ladder.levels_of("rx_cpu"), ladder.levels_of("idle"), ladder.server_levels) == (
        ("client", "server"), ("default",), (),
    )  # fmt: skip
    assert ladder.rounds == 10 and ladder.modes == ("pingpong",)
    assert guest_phases(standard) == 10 * len(holders) * 2  # two receive CPUs, no doses


def test_the_ladder_on_its_own_measures_both_receive_cpus_and_needs_a_server_cpu(
    tmp_path: Path,
) -> None:
    named = RunConfig(out_root=tmp_path, design="ladder", impls=("blocking-c",), trials=3)
    (ladder,) = blocks(named)
    assert ladder.impls == ("blocking-c",) and ladder.levels_of("rx_cpu") == ("client", "server")
    # as results.json records it
    assert ladder.describe()["levels"] == {
        "rx_cpu": ["client", "server"], "idle": ["default"], "client_wait": ["block"],
        "arrivals": ["uniform"],
    }  # fmt: skip
    assert design_impls(named) == ("blocking-c",)
    with pytest.raises(ConfigError, match="--server-cpu"):
        RunConfig(out_root=tmp_path, design="ladder", server_cpu=None)


def test_a_quick_claim_measures_the_question_s_placement_only(tmp_path: Path) -> None:
    claim, dose = blocks(RunConfig(out_root=tmp_path, design="claim", trials=3, budget="quick"))
    assert (claim.levels_of("rx_cpu"), claim.levels_of("idle")) == ((PRIMARY_RX_CPU,), ("default",))
    assert dose.server_levels == (DOSE_LEVELS,)
    with pytest.raises(ConfigError, match="budget"):
        RunConfig(out_root=tmp_path, budget="lavish")


def test_the_budgets_set_the_phases_and_rounds(tmp_path: Path) -> None:
    from bench.cli import build_parser
    from bench.cli.run import run_config

    def config(*extra: str) -> RunConfig:
        args = build_parser().parse_args(["run", "--out", str(tmp_path), *extra])
        return run_config(args)

    quick, default, full = config("--quick"), config(), config("--full")
    assert (quick.budget, default.budget, full.budget) == ("quick", "default", "full")
    assert quick.env == "host" and quick.modes == ("pingpong",) and quick.trials == 3
    assert default.trials == full.trials == 10  # the claim's rounds are not cut
    assert default.claim_duration_s < full.claim_duration_s
    assert default.matrix_trials < full.matrix_trials
    assert len(default.rate_fractions) < len(full.rate_fractions)
    assert config("--duration", "0.7").duration_s == 0.7  # an option beats the budget
    from bench.errors import UsageError

    with pytest.raises(UsageError, match="--full: not allowed with argument --quick"):
        build_parser().parse_args(["run", "--quick", "--full"])


def test_the_claim_measures_the_question_s_mode_and_size() -> None:
    from bench import question
    from bench.runner.design import CLAIM_MODE, CLAIM_SIZE

    assert (CLAIM_MODE, CLAIM_SIZE) == (question.PRIMARY_MODE, question.PRIMARY_SIZE)
