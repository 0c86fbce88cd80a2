"""The compare rule, measured on recorded guard runs: its defaults are the ones the replay
chooses, its A/A false alarms stay within the bound, and it catches injected slowdowns.

tests/fixtures/guard-runs/ holds twelve real runs of the CI guard (blocking-c, blocking-py,
asyncio-py, ten rounds each) recorded one after another on one machine within 15 minutes,
every one that was recorded (blocking-c's median round trip moved between 37 and 66 µs
among them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.analysis.compare import (
    DEFAULT_FACTOR,
    DEFAULT_OTHER_MACHINE_FACTOR,
    DEFAULT_RAW_CHECK,
    DEFAULT_REFERENCE_FACTOR,
    GUARD_METRICS,
    Rule,
    compare_samples,
    run_samples,
)
from bench.analysis.rule_calibration import (
    ANOTHER_MACHINE,
    MAX_FALSE_ALARMS,
    NO_CHANGE,
    NORMALISED_ONLY_CHECK,
    Injection,
    MachineChange,
    RuleCalibration,
    calibrate_rule,
    machine_changes,
)
from bench.cli import main
from bench.results.metrics import metric
from bench.results.run import Run

GUARD_RUNS = Path(__file__).resolve().parent / "fixtures" / "guard-runs"


def _runs() -> list[Run]:
    return [Run.load(path) for path in sorted(GUARD_RUNS.iterdir())]


@pytest.fixture(scope="module")
def runs() -> list[Run]:
    found = _runs()
    assert len(found) >= 4, "the recorded guard runs are missing"
    return found


@pytest.fixture(scope="module")
def calibration(runs: list[Run]) -> RuleCalibration:
    return calibrate_rule(runs)


def test_replays_the_guards_rule(calibration: RuleCalibration, runs: list[Run]) -> None:
    assert calibration.reference == "blocking-py"
    assert set(calibration.targets) == {"blocking-c", "asyncio-py"}
    assert calibration.metrics == GUARD_METRICS
    assert calibration.rounds == (10,)
    assert calibration.pairs == len(runs) * (len(runs) - 1)


def test_the_default_rule_is_the_one_the_replay_chooses(calibration: RuleCalibration) -> None:
    assert calibration.chosen == (DEFAULT_FACTOR, DEFAULT_RAW_CHECK)
    assert calibration.chosen_other_machine == DEFAULT_OTHER_MACHINE_FACTOR
    assert calibration.chosen_reference == DEFAULT_REFERENCE_FACTOR


def test_between_machines_a_shared_cost_needs_the_larger_factor(
    calibration: RuleCalibration,
) -> None:
    """Without the raw check a faster shared cost reads as a regression of the impl slower
    than the reference: at the one-machine factor the replay counts it."""
    assert DEFAULT_OTHER_MACHINE_FACTOR > DEFAULT_FACTOR
    worst = calibration.worst_false_alarms(DEFAULT_FACTOR, NORMALISED_ONLY_CHECK)
    assert worst.value > MAX_FALSE_ALARMS
    chosen = calibration.worst_false_alarms(DEFAULT_OTHER_MACHINE_FACTOR, NORMALISED_ONLY_CHECK)
    assert chosen.value <= MAX_FALSE_ALARMS


def test_the_reference_is_judged_against_its_own_history(calibration: RuleCalibration) -> None:
    rows = {r.reference_factor: r for r in calibration.reference_rows}
    chosen = rows[DEFAULT_REFERENCE_FACTOR]
    assert chosen.false_alarms.value <= MAX_FALSE_ALARMS
    assert chosen.power[3.0].value > 0.9  # a reference three times slower is caught
    smaller = [r for f, r in rows.items() if f < DEFAULT_REFERENCE_FACTOR]
    assert all(r.false_alarms.value > MAX_FALSE_ALARMS for r in smaller)


def test_the_default_rule_keeps_false_alarms_within_the_bound(
    calibration: RuleCalibration,
) -> None:
    worst = calibration.worst_false_alarms(DEFAULT_FACTOR, DEFAULT_RAW_CHECK)
    assert worst.value <= MAX_FALSE_ALARMS
    for row in calibration.rows:
        if (row.factor, row.raw_check) == (DEFAULT_FACTOR, DEFAULT_RAW_CHECK):
            assert row.false_alarms.value <= MAX_FALSE_ALARMS, row.machine


def test_the_default_rule_catches_a_slowed_blocking_c(calibration: RuleCalibration) -> None:
    row = calibration.row(DEFAULT_FACTOR, DEFAULT_RAW_CHECK, NO_CHANGE)
    caught = row.power_by_impl["blocking-c"]
    assert caught[1.5].value >= caught[1.3].value >= caught[1.2].value
    assert caught[1.5].value > 0.9
    assert caught[1.3].value > row.false_alarms.value


def test_a_larger_factor_never_catches_more(calibration: RuleCalibration) -> None:
    factors = sorted({r.factor for r in calibration.rows})
    for check in ("strict", "direction"):
        powers = [calibration.row(f, check).power[1.3].value for f in factors]
        assert powers == sorted(powers, reverse=True), (check, powers)
    for change in [c for c in calibration.machine_changes if c.other_machine]:
        powers = [
            calibration.row(f, NORMALISED_ONLY_CHECK, change.name).power[1.3].value for f in factors
        ]
        assert powers == sorted(powers, reverse=True), (check, powers)


def test_machine_changes_move_every_impl_and_are_judged_both_ways(runs: list[Run]) -> None:
    changes = machine_changes(runs, "blocking-py")
    names = [c.name for c in changes]
    assert names[0] == NO_CHANGE
    shared = [c for c in changes if c.add_ns and not c.other_machine]
    assert len(shared) == 2 and shared[0].add_ns == -shared[1].add_ns > 0
    elsewhere = [c for c in changes if c.other_machine]
    assert len(elsewhere) == (len(changes) - 1) // 2 == 4
    assert all(c.name.endswith(ANOTHER_MACHINE) for c in elsewhere)


def test_a_shared_cost_is_not_multiplicative() -> None:
    rtt, rate, count = (
        metric("rtt_p50"),
        metric("throughput_rps"),
        metric("server_syscalls_per_req"),
    )
    change = MachineChange("+10 µs", add_ns=10_000.0)
    assert change.apply(rtt, 20_000.0) == 30_000.0  # 1.5x
    assert change.apply(rtt, 100_000.0) == 110_000.0  # 1.1x
    assert change.apply(rate, 50_000.0) == pytest.approx(1.0 / (1 / 50_000.0 + 10e-6))
    assert change.apply(count, 2.0) == 2.0


def test_an_injected_slowdown_moves_only_the_slowed_impl(runs: list[Run]) -> None:
    m = metric("rtt_p50")
    samples = run_samples(runs[0], m, "blocking-py")
    injected = Injection(MachineChange(NO_CHANGE), "blocking-c", 2.0).samples(
        m, samples, "blocking-py"
    )
    for key, sample in samples.items():
        factor = 2.0 if key.impl == "blocking-c" else 1.0
        assert injected[key].raw == tuple(v * factor for v in sample.raw)
    changes = compare_samples({m.name: samples}, {m.name: injected}, Rule(), "blocking-py")
    regressed = {c.key.impl for c in changes if c.verdict == "regression"}
    assert regressed == {"blocking-c"}


def test_fewer_than_three_runs_are_refused(runs: list[Run]) -> None:
    with pytest.raises(ValueError, match="at least 3"):
        calibrate_rule(runs[:2])
    with pytest.raises(ValueError, match="twice"):
        calibrate_rule([runs[0], runs[0], runs[1]])
    with pytest.raises(ValueError, match="not measured"):
        calibrate_rule(runs[:3], reference="kmod-kthread")


def test_cli_prints_the_table_and_the_choice(capsys: pytest.CaptureFixture[str]) -> None:
    paths = [str(p) for p in sorted(GUARD_RUNS.iterdir())][:3]
    assert main(["compare", "--calibrate-rule", *paths, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["pairs"] == 6 and data["reference"] == "blocking-py"
    assert {"chosen", "chosen_other_machine_factor", "chosen_reference_factor"} <= set(data)
    assert main(["compare", "--calibrate-rule", *paths]) == 0
    out = capsys.readouterr().out
    assert "A/A false alarms" in out and "judged raw against its own factor" in out
    assert main(["compare", "--calibrate-rule", *paths[:2]]) == 2
    err = capsys.readouterr().err
    assert "at least 3" in err and len(err.strip().splitlines()) == 1
