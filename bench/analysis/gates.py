"""Validity gates: does a phase prove it measured what it says?  (Lancet, ATC'19, is the
model.)  Pure functions over what the driver kept of one phase (bench/driver/client.py:
the ordered stream of (send time, latency) in send order, the rate schedule's counts, the
client's CPU share); each returns a Gate: its name, the value measured, the threshold it
is held to, whether it passed, and a sentence saying so.

- ``warmup``          where the warm-up ends, detected, not assumed: the first window of the
                      phase whose median agrees with the rest's;
- ``stationarity``    KPSS (level): the latencies after the warm-up have no trend or shift;
- ``independence``    lag-1 Spearman rank correlation of successive latencies; when it
                      fails, the thinning lag at which it would pass;
- ``load_held``       rate mode: sends achieved / offered, due sends dropped counted;
- ``interarrivals``   rate mode: the actual gaps between sends against the process asked
                      for (uniform: their spread; Poisson: Kolmogorov-Smirnov distance);
- ``driver_not_bottleneck``  flood and rate: the client's CPU busy share;
- ``percentile_interval``    a distribution-free (binomial, order-statistic) confidence
                      interval of a percentile within a phase.

Thresholds are effect sizes where a significance test alone would fail every long phase
for a difference nobody would notice; each gate's threshold is stated in its result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

# scipy.stats is imported where it is used (the Poisson arrivals' test): a guest measures
# with these gates, and importing scipy.stats there costs a quarter of a minute under
# emulation; the rank correlation and the binomial's quantiles below need numpy and
# scipy.special only (tests check them against scipy.stats).

Values = npt.ArrayLike

# warm-up: the phase cut into this many windows; a window agrees with the rest when its
# median is within WARMUP_TOLERANCE of theirs, or their median is within the window
# median's WARMUP_CONFIDENCE interval (sampling noise, a multimodal distribution); a
# warm-up past MAX_WARMUP_FRACTION of the phase fails.
WARMUP_WINDOWS = 20
MIN_WINDOW = 10
WARMUP_TOLERANCE = 0.10
WARMUP_CONFIDENCE = 0.99
MAX_WARMUP_FRACTION = 0.5

# KPSS (level stationarity, Kwiatkowski et al. 1992, table 1): the statistic's critical
# values at 10 %, 5 %, 2.5 % and 1 %; the gate holds the 1 % one.
KPSS_CRITICAL = ((0.10, 0.347), (0.05, 0.463), (0.025, 0.574), (0.01, 0.739))
STATIONARITY_ALPHA = 0.01
MIN_STATIONARITY_SAMPLES = 20

# independence: |Spearman rho| of successive latencies at most this; thinning tried up to
# MAX_THINNING while at least MIN_INDEPENDENCE_SAMPLES remain.
MAX_ABS_RHO = 0.2
MAX_THINNING = 1024
MIN_INDEPENDENCE_SAMPLES = 30

LOAD_TOLERANCE = 0.05  # achieved / offered within ±5 %, dropped due sends within 5 % of due
UNIFORM_MAX_CV = 0.5  # uniform arrivals: the gaps' coefficient of variation at most
POISSON_MAX_KS = 0.1  # Poisson arrivals: KS distance to the requested gaps at most
MAX_DRIVER_BUSY = 0.9  # the client's CPU busy share (busy / wall) below this
MAX_STEAL_PCT = 5.0  # the hypervisor's steal, % of the phase's CPU time, below this
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Gate:
    """One check of one phase: ``value`` measured against ``threshold``; ``detail`` says
    what was measured and why it passed or failed, in a sentence."""

    name: str
    value: float
    threshold: float
    passed: bool
    detail: str


def _series(values: Values) -> npt.NDArray[np.float64]:
    x = np.asarray(values, dtype=np.float64).ravel()
    return x[np.isfinite(x)]


# ---- warm-up -------------------------------------------------------------------------------


def _agrees(window: npt.NDArray[np.float64], rest: float, tolerance: float) -> bool:
    """The window's median is within ``tolerance`` of ``rest``, or ``rest`` is within the
    window median's distribution-free interval."""
    here = float(np.median(window))
    if abs(here - rest) <= tolerance * abs(rest):
        return True
    interval = percentile_interval(window, 0.5, WARMUP_CONFIDENCE)
    return interval is not None and interval.contains(rest)


def warmup_end(
    latency: Values, *, windows: int = WARMUP_WINDOWS, tolerance: float = WARMUP_TOLERANCE
) -> int:
    """Index of the first sample after the warm-up: the start of the first window whose
    median agrees with the median of all samples after it (within ``tolerance``, relative,
    or within the window median's confidence interval).  0 when the phase is too short to
    cut in windows; ``len(latency)`` when no window agrees."""
    x = _series(latency)
    count = min(windows, len(x) // MIN_WINDOW)
    if count < 2:
        return 0
    bounds = np.linspace(0, len(x), count + 1).astype(int)
    for k in range(count - 1):
        rest = float(np.median(x[bounds[k + 1] :]))
        if _agrees(x[bounds[k] : bounds[k + 1]], rest, tolerance):
            return int(bounds[k])
    return len(x)


def warmup(
    latency: Values,
    *,
    windows: int = WARMUP_WINDOWS,
    tolerance: float = WARMUP_TOLERANCE,
    max_fraction: float = MAX_WARMUP_FRACTION,
) -> Gate:
    """The warm-up detected (``warmup_end``) as a fraction of the phase; it fails when the
    phase never settles within ``max_fraction`` of its samples."""
    x = _series(latency)
    end = warmup_end(x, windows=windows, tolerance=tolerance)
    fraction = end / len(x) if len(x) else 0.0
    passed = fraction <= max_fraction
    if end == len(x) and len(x):
        what = "no window's median agrees with the rest's: the phase never settles"
    else:
        what = f"warm-up ends at sample {end} of {len(x)} ({fraction:.0%})"
    return Gate(
        "warmup",
        fraction,
        max_fraction,
        passed,
        f"{what}; medians within {tolerance:.0%}, at most {max_fraction:.0%} may be warm-up",
    )


# ---- stationarity --------------------------------------------------------------------------


def _autocovariance_sum(resid: npt.NDArray[np.float64], lag: int) -> float:
    return float(np.dot(resid[lag:], resid[: len(resid) - lag]))


def _kpss_lags(resid: npt.NDArray[np.float64]) -> int:
    """Bartlett window width chosen from the data (Hobijn, Franses & Ooms 1998), as
    statsmodels' ``kpss(nlags="auto")`` does."""
    n = len(resid)
    covlags = int(n ** (2.0 / 9.0))
    s0 = float(np.dot(resid, resid)) / n
    s1 = 0.0
    for i in range(1, covlags + 1):
        prod = _autocovariance_sum(resid, i) / (n / 2.0)
        s0 += prod
        s1 += i * prod
    s_hat = s1 / s0 if s0 else 0.0
    lags = int(1.1447 * (s_hat * s_hat) ** (1.0 / 3.0) * n ** (1.0 / 3.0))
    return min(lags, n - 1)


def kpss_level(values: Values) -> tuple[float, float, int]:
    """The KPSS statistic for level stationarity, its p-value (interpolated in the table
    of critical values, so within 0.01..0.10) and the Bartlett lags used."""
    x = _series(values)
    n = len(x)
    resid = x - x.mean()
    lags = _kpss_lags(resid)
    long_run = float(np.dot(resid, resid))
    for i in range(1, lags + 1):
        long_run += 2.0 * _autocovariance_sum(resid, i) * (1.0 - i / (lags + 1.0))
    long_run /= n
    eta = float(np.sum(np.cumsum(resid) ** 2)) / (n * n)
    statistic = eta / long_run if long_run > 0 else 0.0
    crit = [c for _, c in KPSS_CRITICAL]
    alphas = [a for a, _ in KPSS_CRITICAL]
    p_value = float(np.interp(statistic, crit, alphas))
    return statistic, p_value, lags


def _kpss_critical(alpha: float) -> float:
    for level, value in KPSS_CRITICAL:
        if math.isclose(level, alpha):
            return value
    raise ValueError(f"alpha must be one of {[a for a, _ in KPSS_CRITICAL]}, not {alpha}")


def stationarity(latency: Values, *, alpha: float = STATIONARITY_ALPHA) -> Gate:
    """KPSS (null: level-stationary) over the latencies in send order, warm-up already
    cut off; it fails when the statistic exceeds the critical value at ``alpha``."""
    x = _series(latency)
    threshold = _kpss_critical(alpha)
    if len(x) < MIN_STATIONARITY_SAMPLES:
        return Gate(
            "stationarity", math.nan, threshold, False, f"{len(x)} samples: too few for KPSS"
        )
    statistic, p_value, lags = kpss_level(x)
    passed = statistic <= threshold
    verdict = "no trend or shift found" if passed else "the latencies drift (not stationary)"
    return Gate(
        "stationarity",
        statistic,
        threshold,
        passed,
        f"KPSS {statistic:.3g} vs {threshold} at {alpha:.0%} (p {'≥' if p_value >= 0.1 else '≈'} "
        f"{p_value:.2g}, {lags} lags, {len(x)} samples): {verdict}",
    )


# ---- independence --------------------------------------------------------------------------


def lag1_spearman(values: Values) -> float:
    """Spearman rank correlation of each sample with the next (nan: too few or constant)."""
    x = _series(values)
    if len(x) < 3 or np.all(x == x[0]):
        return math.nan
    a, b = average_ranks(x[:-1]), average_ranks(x[1:])
    if np.all(a == a[0]) or np.all(b == b[0]):
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def average_ranks(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """1-based ranks, ties given the mean of the ranks they share (scipy's rankdata)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    group = np.repeat(np.arange(len(starts)), ends - starts)
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = ((starts + ends + 1) / 2.0)[group]
    return ranks


def thinning_lags(max_lag: int = MAX_THINNING) -> list[int]:
    """The lags thinning tries: 1, then 2**k + 1.  Odd, so that thinning never keeps one
    phase of a pattern of period two (fast, slow, fast, ...) and calls it independent."""
    lags = [1]
    while 2 * lags[-1] - 1 <= max_lag:
        lags.append(2 * lags[-1] - 1 if lags[-1] > 1 else 3)
    return lags


def thinning_lag(
    values: Values, *, max_abs_rho: float = MAX_ABS_RHO, max_lag: int = MAX_THINNING
) -> int | None:
    """The smallest lag L (of ``thinning_lags``) such that every L-th sample passes the
    lag-1 test (Lancet's thinning); None when none up to ``max_lag`` that leaves enough
    samples does."""
    x = _series(values)
    for lag in thinning_lags(max_lag):
        if len(x) // lag < MIN_INDEPENDENCE_SAMPLES:
            return None
        rho = lag1_spearman(x[::lag])
        if math.isnan(rho) or abs(rho) <= max_abs_rho:
            return lag
    return None


def independence(latency: Values, *, max_abs_rho: float = MAX_ABS_RHO) -> Gate:
    """Lag-1 Spearman rank correlation of successive latencies: independent enough when
    |rho| ≤ ``max_abs_rho``.  A failure says the thinning lag that would pass."""
    x = _series(latency)
    if len(x) < MIN_INDEPENDENCE_SAMPLES:
        return Gate(
            "independence", math.nan, max_abs_rho, False, f"{len(x)} samples: too few to test"
        )
    rho = lag1_spearman(x)
    if math.isnan(rho):
        return Gate("independence", 0.0, max_abs_rho, True, "all latencies equal")
    passed = abs(rho) <= max_abs_rho
    detail = f"lag-1 Spearman rho {rho:+.3f}, |rho| at most {max_abs_rho}"
    if not passed:
        lag = thinning_lag(x, max_abs_rho=max_abs_rho)
        detail += (
            f"; one sample in {lag} would pass (thinning)"
            if lag is not None
            else "; no thinning leaving enough samples passes"
        )
    return Gate("independence", rho, max_abs_rho, passed, detail)


# ---- rate mode: the offered load ----------------------------------------------------------


def load_held(
    offered_rps: float,
    sent: int,
    duration_s: float,
    *,
    dropped_due: int = 0,
    due: int | None = None,
    arrivals: str = "uniform",
    tolerance: float = LOAD_TOLERANCE,
) -> Gate:
    """Achieved send rate ÷ offered rate within ±``tolerance``, and the due sends the client
    never sent (``dropped_due`` of ``due``) within ``tolerance`` of those due.  Poisson
    arrivals: a phase's count of arrivals varies by itself (its standard deviation is the
    square root of the mean), so the rate's tolerance widens by three of them."""
    if offered_rps <= 0 or duration_s <= 0:
        raise ValueError("offered_rps and duration_s must be > 0")
    ratio = sent / duration_s / offered_rps
    allowed = tolerance
    if arrivals == "poisson":
        allowed += 3.0 / math.sqrt(offered_rps * duration_s)
    due = due if due is not None else sent + dropped_due
    dropped_share = dropped_due / due if due else 0.0
    passed = abs(ratio - 1.0) <= allowed and dropped_share <= tolerance
    return Gate(
        "load_held",
        ratio,
        allowed,
        passed,
        f"sent {sent / duration_s:.6g}/s of {offered_rps:.6g}/s offered ({ratio:.1%}, "
        f"within {allowed:.1%}); {dropped_due} of {due} due sends dropped "
        f"({dropped_share:.1%}, within {tolerance:.0%})",
    )


def interarrivals(
    send_ns: Values,
    rate_rps: float,
    arrivals: str,
    *,
    stride: int = 1,
    max_cv: float = UNIFORM_MAX_CV,
    max_ks: float = POISSON_MAX_KS,
) -> Gate:
    """The actual gaps between kept sends (every ``stride``-th request) against the process
    asked for.  Uniform: every gap is ``stride`` periods, so their coefficient of variation
    must stay under ``max_cv``.  Poisson: a gap of ``stride`` requests is Gamma(stride,
    1/rate) (exponential at stride 1); the Kolmogorov-Smirnov distance to it must stay under
    ``max_ks``."""
    if rate_rps <= 0 or stride < 1:
        raise ValueError("rate_rps must be > 0 and stride >= 1")
    gaps = np.diff(_series(send_ns)) / 1e9
    if len(gaps) < MIN_INDEPENDENCE_SAMPLES:
        threshold = max_cv if arrivals == "uniform" else max_ks
        return Gate("interarrivals", math.nan, threshold, False, f"{len(gaps)} gaps: too few")
    mean_gap = stride / rate_rps
    if arrivals == "uniform":
        cv = float(np.std(gaps) / mean_gap)
        passed = cv <= max_cv
        return Gate(
            "interarrivals",
            cv,
            max_cv,
            passed,
            f"uniform: gaps' spread {cv:.3f} of the period (at most {max_cv}), mean gap "
            f"{gaps.mean() * 1e6:.4g} µs for {mean_gap * 1e6:.4g} µs asked, {len(gaps)} gaps",
        )
    if arrivals != "poisson":
        raise ValueError(f"arrivals must be uniform or poisson, not {arrivals!r}")
    from scipy import stats

    test = stats.kstest(gaps, "gamma", args=(stride, 0.0, 1.0 / rate_rps))
    distance = float(test.statistic)
    passed = distance <= max_ks
    return Gate(
        "interarrivals",
        distance,
        max_ks,
        passed,
        f"poisson: KS distance {distance:.3f} of the gaps to Gamma({stride}, 1/{rate_rps:.6g}) "
        f"(at most {max_ks}; p {float(test.pvalue):.2g}), {len(gaps)} gaps",
    )


# ---- the driver ----------------------------------------------------------------------------


def driver_not_bottleneck(
    busy_share: float, *, threshold: float = MAX_DRIVER_BUSY, what: str = "the client"
) -> Gate:
    """The client's CPU busy share (CPU time ÷ wall time of the phase, 0..1) below
    ``threshold``: a client busy all the time may be what limits a flood or a rate.  A
    spinning client (--wait=spin) is busy by design: this gate cannot judge it."""
    if not math.isfinite(busy_share) or busy_share < 0:
        raise ValueError(f"busy_share must be a finite share >= 0, not {busy_share}")
    passed = busy_share < threshold
    return Gate(
        "driver_not_bottleneck",
        busy_share,
        threshold,
        passed,
        f"{what} was busy {busy_share:.0%} of the phase (below {threshold:.0%} to pass)",
    )


# ---- the machine under the phase -----------------------------------------------------------


def steal(steal_pct: float, *, threshold_pct: float = MAX_STEAL_PCT) -> Gate:
    """The hypervisor's steal time, % of all CPU time of the phase, below ``threshold_pct``:
    above it the guest's CPUs were taken away often enough to be part of what was timed."""
    if not math.isfinite(steal_pct) or steal_pct < 0:
        raise ValueError(f"steal_pct must be a finite percentage >= 0, not {steal_pct}")
    return Gate(
        "steal",
        steal_pct,
        threshold_pct,
        steal_pct < threshold_pct,
        f"steal {steal_pct:.2f} % of the phase's CPU time (below {threshold_pct:g} % to pass)",
    )


def migrations(moves: int, who: str) -> Gate:
    """Pinned threads that moved between CPUs during the phase (``who``: whose)."""
    if moves < 0:
        raise ValueError(f"migrations must be >= 0, not {moves}")
    return Gate(
        "migrations",
        float(moves),
        1.0,
        moves < 1,
        f"{who}: {moves} CPU migration(s) of pinned threads during the phase (none to pass)",
    )


# ---- percentiles within a phase -----------------------------------------------------------


@dataclass(frozen=True)
class PercentileInterval:
    """A confidence interval of the ``q`` quantile from order statistics: the ``low_rank``
    -th and ``high_rank``-th smallest samples (1-based) bracket it with probability
    ``coverage`` ≥ ``confidence`` whatever the distribution (samples independent)."""

    q: float
    estimate: float
    low: float
    high: float
    low_rank: int
    high_rank: int
    confidence: float
    coverage: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def binomial_cdf(n: int, q: float, k: int) -> float:
    """P(B ≤ k), B ~ Binomial(n, q) (0 below 0)."""
    return float(special.bdtr(k, n, q)) if k >= 0 else 0.0


def binomial_quantile(n: int, q: float, tail: float) -> int:
    """The smallest k with P(B ≤ k) ≥ ``tail``, B ~ Binomial(n, q) (scipy.stats' ppf), by
    bisection over k (the CDF rises with k)."""
    low, high = 0, n  # P(B ≤ n) = 1 ≥ tail
    while low < high:
        middle = (low + high) // 2
        if binomial_cdf(n, q, middle) >= tail:
            high = middle
        else:
            low = middle + 1
    return low


def order_statistic_ranks(n: int, q: float, confidence: float = CONFIDENCE) -> tuple[int, int]:
    """1-based ranks (l, u) with P(X_(l) ≤ ξ_q ≤ X_(u)) ≥ ``confidence``: the count of
    samples below the quantile is Binomial(n, q), so l - 1 and u - 1 are its lower and
    upper ``(1 - confidence) / 2`` quantiles.  ValueError when n is too small."""
    if not 0 < q < 1 or not 0 < confidence < 1:
        raise ValueError("q and confidence must be within (0, 1)")
    tail = (1.0 - confidence) / 2.0
    low = binomial_quantile(n, q, tail)  # P(B ≤ low - 1) < tail
    high = binomial_quantile(n, q, 1.0 - tail) + 1  # P(B ≤ high - 1) ≥ 1 - tail
    if low < 1 or high > n:
        raise ValueError(f"{n} samples cannot bracket the {q:g} quantile at {confidence:.0%}")
    return low, high


def percentile_interval(
    values: Values, q: float, confidence: float = CONFIDENCE
) -> PercentileInterval | None:
    """The distribution-free interval of the ``q`` quantile (0 < q < 1) of ``values``, or
    None when there are too few samples for one."""
    x = np.sort(_series(values))
    try:
        low, high = order_statistic_ranks(len(x), q, confidence)
    except ValueError:
        return None
    coverage = binomial_cdf(len(x), q, high - 1) - binomial_cdf(len(x), q, low - 1)
    return PercentileInterval(
        q=q,
        estimate=float(np.quantile(x, q)),
        low=float(x[low - 1]),
        high=float(x[high - 1]),
        low_rank=low,
        high_rank=high,
        confidence=confidence,
        coverage=coverage,
    )


# ---- a phase's latency stream --------------------------------------------------------------


def latency_gates(latency: Values) -> tuple[Gate, Gate, Gate]:
    """Warm-up, then stationarity and independence of what follows it (of the whole phase
    when it never settled: the warm-up gate failed already, the others say why)."""
    x = _series(latency)
    first = warmup(x)
    rest = x[warmup_end(x) :] if first.passed else x
    return first, stationarity(rest), independence(rest)
