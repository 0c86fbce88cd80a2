"""The claim's model is a prediction that can fail: the calibration predicts each saving
from fewer syscalls and switches; the sentence says whether the measured interval holds
it, and what it missed is called its error, not a part of the saving."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench.analysis.claim import Decomposition, evaluate_claim
from bench.analysis.prediction import predict
from bench.analysis.stats import Interval
from bench.results.rows import PhaseRow
from bench.results.run import Run
from tests.test_results import BASE


def test_a_prediction_holds_only_inside_the_measured_interval() -> None:
    parts = Decomposition(True, "", 2.0, 100.0, 1.0, 5000.0, 200.0, 5000.0, 800.0)
    assert parts.predicted == 5200.0
    assert parts.held(Interval(5000.0, 6000.0))
    assert not parts.held(Interval(5300.0, 6000.0))
    assert not Decomposition(False, "not calibrated").held(Interval(-1e9, 1e9))


def test_every_pair_sentence_says_whether_its_prediction_held() -> None:
    claim = evaluate_claim(Run.load(BASE))
    judged = [p for p in claim.pairs if p.rtt_parts.available]
    assert judged, "the fixture has calibrated pairs"
    for p in judged:
        sentence = p.sentences[1]
        assert sentence.startswith("The calibration predicts an RTT difference of")
        held = p.rtt_parts.held(p.rtt.ci)
        assert ("the prediction held" in sentence) is held, sentence
        assert ("the prediction failed, off by" in sentence) is (not held), sentence
        assert "is the rest" not in sentence


def _row_at(idle: str, syscalls: float, switches: float) -> PhaseRow:
    row = next(r for r in Run.load(BASE).rows if r.ok and r.mode == "pingpong")
    assert row.per_request is not None
    per_request = replace(
        row.per_request,
        server_syscalls=syscalls / 2,
        client_syscalls=syscalls / 2,
        system_ctx_switches=switches,
    )
    return replace(row, idle=idle, server_cpu=1, client_cpu=0, per_request=per_request)


CALIBRATION = {
    "null_syscall_ns": 200.0,
    "context_switch_ns": 1500.0,
    "wakeup_ns": 30000.0,
    "wakeup_median_ns": 40000.0,
    "wakeup_poll_median_ns": 16000.0,
}


def test_an_effect_is_predicted_from_counts_and_the_wakeup_at_its_idle_level() -> None:
    a = _row_at("default", syscalls=4.0, switches=4.0)
    b = _row_at("poll", syscalls=4.0, switches=4.0)
    terms = [(-1.0, a.configuration, [a]), (1.0, b.configuration, [b])]
    guess = predict("rtt_p50", CALIBRATION, terms)
    # same counts; each switch is half a wake-up: 4 × (8000 − 20000)
    assert guess.value == pytest.approx(4 * (16000.0 - 40000.0) / 2)
    assert guess.held(Interval(-50000.0, -46000.0)) is True
    assert guess.held(Interval(-10000.0, 0.0)) is False
    cpu = predict("cpu_ns_per_req", CALIBRATION, terms)
    assert cpu.value == pytest.approx(0.0)  # CPU time: the same-CPU switch, both sides


def test_fewer_syscalls_predict_their_calibrated_price_and_nothing_else_is_free() -> None:
    a = _row_at("default", syscalls=4.0, switches=2.0)
    b = _row_at("default", syscalls=0.0, switches=2.0)
    guess = predict(
        "rtt_p50", CALIBRATION, [(-1.0, a.configuration, [a]), (1.0, b.configuration, [b])]
    )
    assert guess.value == pytest.approx(-4 * 200.0)
    missing = {k: v for k, v in CALIBRATION.items() if k != "wakeup_poll_median_ns"}
    polled = _row_at("poll", syscalls=4.0, switches=2.0)
    unknown = predict("rtt_p50", missing, [(1.0, polled.configuration, [polled])])
    assert unknown.value is None and "wakeup_poll_median_ns" in unknown.basis
    assert unknown.held(Interval(-1e9, 1e9)) is None
    assert predict("server_cpu_busy_ns_per_req", CALIBRATION, []).value is None
