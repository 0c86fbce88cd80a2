"""Dose–response: a server option measured at several values (``--server-levels``), and the
fitted slope of a metric against it, with its interval — the marginal cost of one unit of
the dose where the server runs.  For ``extra_syscalls`` the unit is one user/kernel
transition on the request path, set against the calibrated null syscall."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from bench.analysis.equivalence import EquivalenceTest, equivalence
from bench.analysis.prediction import price
from bench.analysis.stats import CONFIDENCE, Interval
from bench.question import PREDICTION_ALPHA, margin_ns
from bench.results.metrics import metric
from bench.results.rows import Configuration
from bench.results.run import Run

DOSE_METRICS = ("rtt_p50", "server_cpu_busy_ns_per_req", "cpu_ns_per_req")
PREDICTED_METRICS = ("rtt_p50", "server_cpu_busy_ns_per_req")
# What the calibration predicts one unit of a dose costs (calibration key, what it is).
PREDICTIONS: Mapping[str, tuple[str, str]] = {
    "extra_syscalls": ("null_syscall_ns", "the calibrated null syscall"),
    "delay_ns": ("", "1 ns per ns of spin"),
}


@dataclass(frozen=True)
class Slope:
    metric: str
    slope: float  # metric units per unit of dose
    interval: Interval
    n: int
    method: str
    se: float = float("nan")  # standard error of the slope


@dataclass(frozen=True)
class DoseResponse:
    key: Configuration  # the configuration with its dose removed (server_options "")
    dose: str
    doses: tuple[float, ...]
    slopes: tuple[Slope, ...]
    predicted: float | None  # per unit, from the calibration
    predicted_by: str
    predicted_se: float | None = None

    def slope(self, name: str) -> Slope | None:
        return next((s for s in self.slopes if s.metric == name), None)

    def prediction_test(self, name: str = "rtt_p50") -> EquivalenceTest | None:
        """The slope against the predicted price per unit (TOST, margin 10 % of it); None
        where nothing is predicted (or for CPU time, which the price does not model)."""
        found = self.slope(name)
        if found is None or self.predicted is None or name not in PREDICTED_METRICS:
            return None
        return equivalence(
            found.slope, found.se, found.n - 2, self.predicted, self.predicted_se or 0.0,
            margin_ns(None, per_unit=self.predicted), PREDICTION_ALPHA,
        )  # fmt: skip


def _single_dose(options: str) -> tuple[str, float] | None:
    if not options or "," in options:
        return None
    name, _, value = options.partition("=")
    try:
        return name, float(value)
    except ValueError:
        return None


def fit_slope(
    points: list[tuple[float, float]], name: str, confidence: float = CONFIDENCE
) -> Slope | None:
    """Ordinary least squares of value on dose, Student-t interval on n - 2 degrees of
    freedom at ``confidence``; None with fewer than three points or one dose."""
    if len(points) < 3 or len({x for x, _ in points}) < 2:
        return None
    x = np.array([p[0] for p in points])
    y = np.array([p[1] for p in points])
    from scipy import stats as sps  # imported when used: it costs seconds under TCG

    fit = sps.linregress(x, y)
    half = float(sps.t.ppf(0.5 + confidence / 2.0, len(points) - 2) * fit.stderr)
    slope = float(fit.slope)
    if not math.isfinite(half) or not math.isfinite(slope):
        return None
    shown = f"{confidence * 100:.4g}%"
    method = f"OLS over trials, t interval {shown}, n={len(points)}"
    interval = Interval(slope - half, slope + half)
    return Slope(name, slope, interval, len(points), method, float(fit.stderr))


def dose_responses(run: Run) -> list[DoseResponse]:
    """Every configuration measured at two or more values of one server option."""
    points: dict[tuple[Configuration, str], dict[str, list[tuple[float, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for row in run.rows:
        found = _single_dose(row.server_options) if row.ok else None
        if found is None:
            continue
        option, amount = found
        base = replace(row.configuration, server_options="")
        for name in DOSE_METRICS:
            value = metric(name).read(row)
            if value is not None:
                points[base, option][name].append((amount, float(value)))
    out: list[DoseResponse] = []
    for (key, dose), by_metric in sorted(points.items(), key=lambda kv: kv[0][0].sort_key()):
        slopes = tuple(s for n in DOSE_METRICS if (s := fit_slope(by_metric.get(n, []), n)))
        if not slopes:
            continue
        doses = tuple(sorted({x for pts in by_metric.values() for x, _ in pts}))
        predicted, by, se = _prediction(run, key.env, dose)
        out.append(DoseResponse(key, dose, doses, slopes, predicted, by, se))
    return out


def _prediction(run: Run, env: str, dose: str) -> tuple[float | None, str, float | None]:
    calibration_key, what = PREDICTIONS.get(dose, ("", "no prediction for this dose"))
    if dose == "delay_ns":
        return 1.0, what, 0.0
    if not calibration_key:
        return None, what, None
    found = price(run.environment(env).calibration, calibration_key)
    if found is None:
        return None, f"{what} (not calibrated)", None
    return found.value, what, found.se
