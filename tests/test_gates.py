"""The validity gates (bench/analysis/gates.py) on series whose answer is known: seeded
white noise passes, a trend, a shift, a pattern or a late warm-up fails.  No process is
started here (tests/test_gates_driver.py runs the real client)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.analysis import gates
from bench.analysis.gates import Gate


def _noise(n: int = 4000, seed: int = 1) -> np.ndarray:
    # latency-like: a floor plus a skewed spread, independent draws
    return 50_000 + np.random.default_rng(seed).gamma(2.0, 10_000, n)


def test_a_gate_is_a_small_frozen_record() -> None:
    g = gates.driver_not_bottleneck(0.5)
    assert isinstance(g, Gate)
    assert [f.name for f in dataclasses.fields(Gate)] == [
        "name", "value", "threshold", "passed", "detail",
    ]  # fmt: skip
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.passed = False  # type: ignore[misc]


# ---- warm-up -------------------------------------------------------------------------------


def test_a_steady_phase_has_no_warmup() -> None:
    for seed in range(5):
        x = _noise(seed=seed)
        assert gates.warmup_end(x) == 0
        assert gates.warmup(x).passed


def test_a_warmup_is_found_where_it_ends() -> None:
    x = _noise()
    x[:600] *= 4.0  # the first 15 % are slow
    end = gates.warmup_end(x)
    assert 400 <= end <= 800
    g = gates.warmup(x)
    assert g.passed and g.value == pytest.approx(end / len(x))


def test_a_phase_that_never_settles_fails_the_warmup() -> None:
    x = _noise() + np.linspace(0, 2_000_000, 4000)
    assert gates.warmup_end(x) > 2000
    g = gates.warmup(x)
    assert not g.passed and g.value > g.threshold


def test_two_modes_are_no_warmup() -> None:
    x = _noise()
    x[1::2] += 1_000_000  # fast, slow, fast, ...: every window's median is ill-defined
    assert gates.warmup_end(x) == 0


def test_a_short_phase_is_not_cut() -> None:
    assert gates.warmup_end(np.arange(15)) == 0
    assert gates.warmup_end([]) == 0


# ---- stationarity --------------------------------------------------------------------------


def test_white_noise_is_stationary() -> None:
    passed = sum(gates.stationarity(_noise(seed=s)).passed for s in range(20))
    assert passed >= 18  # 1 % level: a rare failure is the test's own size


@pytest.mark.parametrize(
    "change",
    [
        np.linspace(0, 40_000, 4000),  # a ramp of twice the spread
        np.r_[np.zeros(2000), np.full(2000, 30_000)],  # a shift half-way
    ],
)
def test_a_trend_or_a_shift_is_not(change: np.ndarray) -> None:
    g = gates.stationarity(_noise() + change)
    assert not g.passed and g.value > g.threshold
    assert "drift" in g.detail


def test_kpss_matches_the_published_critical_values() -> None:
    # Under the null the statistic exceeds the 5 % critical value about 5 % of the time.
    rng = np.random.default_rng(7)
    stats = [gates.kpss_level(rng.normal(size=500))[0] for _ in range(400)]
    share = np.mean(np.array(stats) > 0.463)
    assert 0.02 <= share <= 0.09
    # a random walk is the textbook alternative
    walk = np.cumsum(rng.normal(size=2000))
    statistic, p_value, _ = gates.kpss_level(walk)
    assert statistic > 0.739 and p_value == pytest.approx(0.01)


def test_kpss_agrees_with_statsmodels_where_it_is_installed() -> None:
    tsa = pytest.importorskip("statsmodels.tsa.stattools")
    for seed in range(3):
        x = _noise(seed=seed) + np.linspace(0, 5_000 * seed, 4000)
        expected = tsa.kpss(x, regression="c", nlags="auto")
        statistic, _, lags = gates.kpss_level(x)
        assert statistic == pytest.approx(expected[0]) and lags == expected[2]


def test_too_few_samples_do_not_pass() -> None:
    g = gates.stationarity([1.0, 2.0, 3.0])
    assert not g.passed and math.isnan(g.value)
    with pytest.raises(ValueError, match="alpha"):
        gates.stationarity(_noise(), alpha=0.2)


# ---- independence --------------------------------------------------------------------------


def test_independent_samples_pass() -> None:
    g = gates.independence(_noise())
    assert g.passed and abs(g.value) < 0.1


def _ar1(phi: float, n: int = 20_000, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.empty(n)
    x[0] = 0.0
    noise = rng.normal(size=n)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + noise[i]
    return x


def test_correlated_samples_fail_and_say_how_to_thin_them() -> None:
    x = _ar1(0.9)
    g = gates.independence(x)
    assert not g.passed and g.value > 0.8
    lag = gates.thinning_lag(x)
    assert lag is not None and lag > 1
    assert abs(gates.lag1_spearman(x[::lag])) <= gates.MAX_ABS_RHO
    assert f"one sample in {lag}" in g.detail


def test_alternating_samples_fail_and_no_thinning_hides_it() -> None:
    x = _noise()
    x[1::2] += 100_000
    g = gates.independence(x)
    assert not g.passed and g.value < -0.5
    # Every second sample would look independent, but it would keep only the fast ones.
    assert gates.thinning_lag(x) is None
    assert all(lag == 1 or lag % 2 for lag in gates.thinning_lags())


def test_constant_latencies_are_independent() -> None:
    assert gates.independence(np.full(100, 7.0)).passed


# ---- rate mode -----------------------------------------------------------------------------


def test_a_held_load_passes() -> None:
    g = gates.load_held(1000.0, sent=2000, duration_s=2.0, dropped_due=1, due=2001)
    assert g.passed and g.value == pytest.approx(1.0)
    assert "1 of 2001 due sends dropped" in g.detail


def test_a_load_not_held_fails_and_counts_the_dropped() -> None:
    g = gates.load_held(1e6, sent=300_000, duration_s=1.0, dropped_due=700_000, due=1_000_000)
    assert not g.passed and g.value == pytest.approx(0.3)
    assert "700000 of 1000000 due sends dropped" in g.detail
    # sent at the rate, but a tenth of what was due never went: still not held
    assert not gates.load_held(100.0, sent=100, duration_s=1.0, dropped_due=10).passed
    with pytest.raises(ValueError):
        gates.load_held(0.0, sent=1, duration_s=1.0)


def test_a_poisson_load_allows_for_its_own_count() -> None:
    # 1000 arrivals expected: a phase with 930 of them is an ordinary draw (2.2 sd)
    assert not gates.load_held(500.0, sent=930, duration_s=2.0).passed
    g = gates.load_held(500.0, sent=930, duration_s=2.0, arrivals="poisson")
    assert g.passed and g.threshold == pytest.approx(0.05 + 3 / math.sqrt(1000))
    assert not gates.load_held(500.0, sent=800, duration_s=2.0, arrivals="poisson").passed


def test_evenly_spaced_sends_are_uniform() -> None:
    rng = np.random.default_rng(5)
    send = np.arange(1000) * 1_000_000 + rng.integers(0, 50_000, 1000)
    g = gates.interarrivals(send, 1000.0, "uniform")
    assert g.passed and g.value < 0.1
    # at stride 4, a gap is four periods
    assert gates.interarrivals(send[::4], 1000.0, "uniform", stride=4).passed


def test_bursts_are_not_uniform() -> None:
    # a client that fell behind sends batches of 8 at once, then waits
    send = np.repeat(np.arange(125) * 8_000_000, 8)
    g = gates.interarrivals(send, 1000.0, "uniform")
    assert not g.passed and g.value > 1.0


def test_poisson_sends_pass_as_poisson_only() -> None:
    rng = np.random.default_rng(9)
    send = np.cumsum(rng.exponential(1e6, 4000)).astype(np.int64)
    assert gates.interarrivals(send, 1000.0, "poisson").passed
    assert not gates.interarrivals(send, 1000.0, "uniform").passed
    # thinned by the stream's stride, the gaps are Gamma(stride)
    assert gates.interarrivals(send[::4], 1000.0, "poisson", stride=4).passed
    # at twice the rate asked for, not the process asked for
    assert not gates.interarrivals(send, 500.0, "poisson").passed
    # evenly spaced sends are no Poisson process
    assert not gates.interarrivals(np.arange(4000) * 1_000_000, 1000.0, "poisson").passed


def test_too_few_gaps_do_not_pass() -> None:
    g = gates.interarrivals([0, 1_000_000, 2_000_000], 1000.0, "uniform")
    assert not g.passed and math.isnan(g.value)
    with pytest.raises(ValueError):
        gates.interarrivals(np.arange(100) * 1000, 1000.0, "bursty")


# ---- the driver ----------------------------------------------------------------------------


def test_a_busy_client_may_be_the_bottleneck() -> None:
    assert gates.driver_not_bottleneck(0.4).passed
    g = gates.driver_not_bottleneck(0.97)
    assert not g.passed and g.threshold == gates.MAX_DRIVER_BUSY
    assert not gates.driver_not_bottleneck(0.5, threshold=0.3).passed
    with pytest.raises(ValueError):
        gates.driver_not_bottleneck(math.nan)


# ---- percentiles ---------------------------------------------------------------------------


def test_order_statistic_ranks_are_the_textbook_ones() -> None:
    assert gates.order_statistic_ranks(100, 0.5) == (40, 61)
    interval = gates.percentile_interval(np.arange(1, 101), 0.5)
    assert interval is not None
    assert (interval.low, interval.high) == (40.0, 61.0)
    assert interval.coverage >= 0.95 and interval.estimate == 50.5
    assert gates.percentile_interval(np.arange(5), 0.5) is None  # too few for 95 %
    assert gates.percentile_interval(np.arange(100), 0.999) is None


def test_the_median_interval_covers_the_true_median() -> None:
    """200 simulated phases (exponential latencies, seeded): the 95 % interval of the
    median covers the true median, ln 2, in at least 93 % of them."""
    rng = np.random.default_rng(2024)
    covered = 0
    for _ in range(200):
        interval = gates.percentile_interval(rng.exponential(1.0, 1000), 0.5)
        assert interval is not None and interval.low <= interval.estimate <= interval.high
        covered += interval.contains(math.log(2.0))
    assert covered >= 186


def test_a_tail_interval_covers_the_true_tail() -> None:
    rng = np.random.default_rng(11)
    true_p99 = -math.log(0.01)
    covered = 0
    for _ in range(200):
        interval = gates.percentile_interval(rng.exponential(1.0, 2000), 0.99)
        assert interval is not None
        covered += interval.contains(true_p99)
    assert covered >= 186


# ---- a phase's stream ----------------------------------------------------------------------


def test_latency_gates_cut_the_warmup_before_testing() -> None:
    x = _noise()
    x[:400] *= 5.0
    first, steady, independent = gates.latency_gates(x)
    assert first.passed and first.value > 0
    # with the slow start left in, the series would shift
    assert not gates.stationarity(x).passed
    assert steady.passed and independent.passed


def test_latency_gates_of_a_phase_that_never_settles_test_all_of_it() -> None:
    first, steady, _ = gates.latency_gates(_noise() + np.linspace(0, 2_000_000, 4000))
    assert not first.passed and not steady.passed
    assert steady.detail.endswith("(not stationary)")


# ---- the gates' statistics against scipy.stats --------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=3, max_size=200))
def test_lag1_spearman_equals_scipy_s(values: list[int]) -> None:
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    found = gates.lag1_spearman(x)
    if np.all(x == x[0]) or np.all(x[:-1] == x[0]) or np.all(x[1:] == x[1]):
        assert math.isnan(found)
        return
    expected = float(stats.spearmanr(x[:-1], x[1:]).statistic)
    assert found == pytest.approx(expected, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.integers(1, 3000), st.integers(3000, 2_000_000)),
    st.floats(0.01, 0.99),
    st.sampled_from([0.9, 0.95, 0.99]),
)
def test_order_statistic_ranks_are_scipy_s_binomial_quantiles(
    n: int, q: float, confidence: float
) -> None:
    from scipy import stats

    tail = (1.0 - confidence) / 2.0
    low = int(stats.binom(n, q).ppf(tail))
    high = int(stats.binom(n, q).ppf(1.0 - tail)) + 1
    if low < 1 or high > n:
        with pytest.raises(ValueError):
            gates.order_statistic_ranks(n, q, confidence)
        return
    assert gates.order_statistic_ranks(n, q, confidence) == (low, high)
