"""Percentile intervals of a configuration: the order-statistic interval of a phase's p50 and
p99 read from its histogram (it covers the true quantile as often as it says), the spread
over rounds, and a percentile at the driver's timeout said to be lost requests."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from bench.analysis.percentiles import histogram_interval, precision, precisions
from bench.driver.histogram import highest_equivalent_values, recorded, values_at_ranks
from bench.results.rows import PhaseRow

TIMEOUT_NS = 200_000.0


def _histogram(values: np.ndarray) -> HdrHistogram:
    hist = HdrHistogram(1, 10_000_000, 3)
    for v in values:
        hist.record_value(int(v))
    return hist


def _row(trial: int, hist: HdrHistogram) -> PhaseRow:
    return PhaseRow(env="host", impl="x", kind="userspace", mode="pingpong", size=64,
                    topology="lo", trial=trial, status="ok",
                    histogram=hist.encode().decode())  # fmt: skip


def test_the_within_phase_interval_covers_the_true_median_as_often_as_it_says() -> None:
    rng = np.random.default_rng(7)
    true_median = 20_000.0 * np.log(2)  # exponential with mean 20 µs
    covered = 0
    trials = 200
    for _ in range(trials):
        found = histogram_interval(_histogram(rng.exponential(20_000.0, 400) + 1), 0.5)
        assert found is not None and found.low <= found.estimate <= found.high
        covered += found.low <= true_median <= found.high
    # 95 % nominal: at least 93 % of 200 simulated phases (histogram buckets only widen it)
    assert covered / trials >= 0.93


def test_too_few_requests_give_no_interval() -> None:
    assert histogram_interval(_histogram(np.array([5000, 6000, 7000])), 0.99) is None


def test_a_configuration_s_rounds_give_their_spread() -> None:
    rng = np.random.default_rng(3)
    rows = [_row(t, _histogram(rng.normal(10_000 * (t + 1), 500, 2000))) for t in range(3)]
    p50 = precision(rows, 0.5)
    assert p50 is not None and p50.rounds == 3 and not p50.lost
    assert p50.round_min == pytest.approx(10_000, rel=0.05)
    assert p50.round_max == pytest.approx(30_000, rel=0.05)
    assert p50.within_low is not None and p50.within_high is not None
    assert p50.within_low < 20_000 < p50.within_high  # the middle round's interval
    # a failed phase adds nothing
    failed = dataclasses.replace(rows[0], status="failed", histogram=rows[2].histogram)
    assert precision([*rows[:2], failed], 0.5).rounds == 2  # type: ignore[union-attr]


def test_a_percentile_at_the_timeout_is_lost_requests_not_an_interval() -> None:
    lost = np.concatenate([np.full(970, 10_000), np.full(30, TIMEOUT_NS)])
    rows = [_row(0, _histogram(lost))]
    found = precisions({rows[0].configuration: rows}, TIMEOUT_NS)
    (p50, p99) = found[rows[0].configuration]
    assert not p50.lost and p99.lost and p99.within_low is None


def test_a_corrupt_histogram_gives_no_interval_and_no_crash() -> None:
    row = dataclasses.replace(_row(0, _histogram(np.array([1000] * 100))), histogram="garbage")
    assert precision([row], 0.5) is None


@pytest.mark.parametrize("lowest,highest,digits", [(1, 10_000_000, 3), (1000, 3_600_000_000, 2)])
def test_histograms_are_read_as_hdrh_reads_them(lowest: int, highest: int, digits: int) -> None:
    hist = HdrHistogram(lowest, highest, digits)
    index = np.arange(hist.counts_len)
    fast = highest_equivalent_values(hist, index)
    slow = [hist.get_highest_equivalent_value(hist.get_value_from_index(int(i))) for i in index]
    assert fast.tolist() == slow
    rng = np.random.default_rng(5)
    for v in rng.lognormal(11, 1.5, 5000).astype(int) + lowest:
        hist.record_value(int(min(v, highest)))
    expected = [
        (int(i.value_iterated_to), int(i.total_count_to_this_value))
        for i in hist.get_recorded_iterator()
    ]
    assert recorded(hist) == expected
    n = hist.get_total_count()
    assert values_at_ranks(hist, [n // 2]) == [float(hist.get_value_at_percentile(50.0))]
