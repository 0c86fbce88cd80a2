"""Predictions that can fail, fairly: the calibration predicts each effect from the
request-path syscalls and switches counted, with the calibration's own spread; an
equivalence test against a stated margin says held, failed or inconclusive — a wider
interval can only make it inconclusive, never held."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench.analysis.equivalence import FAILED, HELD, INCONCLUSIVE, equivalence
from bench.analysis.prediction import predict, price
from bench.results.metrics import metric
from bench.results.rows import PhaseRow
from bench.results.run import Run
from tests.test_results import BASE


def test_held_needs_a_narrow_interval_inside_the_margin() -> None:
    # measured 10.2 µs ± 0.1 µs s.e. against a prediction of 10 µs, margin 1 µs: held
    narrow = equivalence(10_200.0, 100.0, 9, 10_000.0, 50.0, 1_000.0, 0.05)
    assert narrow is not None and narrow.outcome == HELD
    # the same mean with a wide interval: cannot tell
    wide = equivalence(10_200.0, 3_000.0, 9, 10_000.0, 50.0, 1_000.0, 0.05)
    assert wide is not None and wide.outcome == INCONCLUSIVE
    # far off, precisely: failed
    far = equivalence(20_000.0, 100.0, 9, 10_000.0, 50.0, 1_000.0, 0.05)
    assert far is not None and far.outcome == FAILED
    # the calibration's own spread widens the test too: a precise measurement against an
    # uncertain price is not held
    shaky = equivalence(10_200.0, 100.0, 9, 10_000.0, 2_000.0, 1_000.0, 0.05)
    assert shaky is not None and shaky.outcome == INCONCLUSIVE
    assert equivalence(1.0, 1.0, 0, 1.0, 0.0, 1.0, 0.05) is None  # no degrees of freedom


def test_widening_an_interval_never_makes_a_prediction_hold() -> None:
    outcomes = [
        equivalence(10_600.0, se, 9, 10_000.0, 0.0, 1_000.0, 0.05)
        for se in (50.0, 100.0, 200.0, 400.0, 800.0, 1_600.0, 3_200.0)
    ]
    seen = [o.outcome for o in outcomes if o is not None]
    assert seen[0] == HELD and seen[-1] == INCONCLUSIVE
    assert HELD not in seen[seen.index(INCONCLUSIVE) :]


def _row_at(idle: str, syscalls: float, switches: float, eagain: float = 0.0) -> PhaseRow:
    row = next(r for r in Run.load(BASE).rows if r.ok and r.mode == "pingpong")
    assert row.per_request is not None
    per_request = replace(
        row.per_request,
        server_syscalls=syscalls / 2 + eagain,
        client_syscalls=syscalls / 2,
        server_eagain_syscalls=eagain,
        client_eagain_syscalls=0.0,
        system_ctx_switches=switches,
    )
    return replace(row, idle=idle, server_cpu=1, client_cpu=0, per_request=per_request)


CALIBRATION = {
    "null_syscall_ns": 200.0,
    "context_switch_ns": 1500.0,
    "wakeup_ns": 30000.0,
    "wakeup_median_ns": 40000.0,
    "wakeup_poll_median_ns": 16000.0,
    "details": {
        "null_syscall": {"samples": [190.0, 200.0, 210.0, 200.0]},
        "context_switch": {
            "cross_cpu_roundtrip_ns": [70000.0, 90000.0, 80000.0, 80000.0],
            "cross_cpu_poll_roundtrip_ns": [32000.0, 32000.0, 32000.0, 32000.0],
            "same_cpu_roundtrip_ns": [3000.0, 3000.0],
        },
    },
}


def test_an_effect_is_predicted_from_counts_and_the_wakeup_at_its_idle_level() -> None:
    a = _row_at("default", syscalls=4.0, switches=4.0)
    b = _row_at("poll", syscalls=4.0, switches=4.0)
    terms = [(-1.0, a.configuration, [a]), (1.0, b.configuration, [b])]
    guess = predict("rtt_p50", CALIBRATION, terms)
    # same counts; each switch is half a wake-up: 4 × (8000 − 20000)
    assert guess.value == pytest.approx(4 * (16000.0 - 40000.0) / 2)
    # its spread: 4 switches × half a wake-up, a wake-up half a round trip (s.e. of the
    # mean of the round trips: sd 8165 / √4), the poll level's round trips all equal
    sd = pytest.approx(4 * 0.25 * 8164.97 / 2, rel=1e-4)
    assert guess.se == sd
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
    assert predict("server_cpu_busy_ns_per_req", CALIBRATION, []).value is None
    null = price(CALIBRATION, "null_syscall_ns")
    assert null is not None and null.se == pytest.approx(8.16497 / 2, rel=1e-4)


def test_polls_that_returned_eagain_are_not_priced() -> None:
    blocking = _row_at("default", syscalls=4.0, switches=2.0)
    spinning = _row_at("default", syscalls=4.0, switches=2.0, eagain=30.0)
    assert metric("request_syscalls_per_req").read(spinning) == pytest.approx(4.0)
    assert metric("syscalls_per_req").read(spinning) == pytest.approx(34.0)
    terms = [(-1.0, blocking.configuration, [blocking]), (1.0, spinning.configuration, [spinning])]
    assert predict("rtt_p50", CALIBRATION, terms).value == pytest.approx(0.0)
    uncounted = replace(
        spinning, per_request=replace(spinning.per_request, server_eagain_syscalls=None)
    )
    terms = [(1.0, uncounted.configuration, [uncounted])]
    guess = predict("rtt_p50", CALIBRATION, terms)
    assert guess.value is None and "EAGAIN" in guess.basis
