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

from bench.analysis.stats import CONFIDENCE, Interval
from bench.results.metrics import metric
from bench.results.rows import Configuration
from bench.results.run import Run

DOSE_METRICS = ("rtt_p50", "server_cpu_busy_ns_per_req", "cpu_ns_per_req")
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


@dataclass(frozen=True)
class DoseResponse:
    key: Configuration  # the configuration with its dose removed (server_options "")
    dose: str
    doses: tuple[float, ...]
    slopes: tuple[Slope, ...]
    predicted: float | None  # per unit, from the calibration
    predicted_by: str

    def slope(self, name: str) -> Slope | None:
        return next((s for s in self.slopes if s.metric == name), None)

    def prediction_held(self, name: str = "rtt_p50") -> bool | None:
        found = self.slope(name)
        if found is None or self.predicted is None:
            return None
        return found.interval.contains(self.predicted)


def _single_dose(options: str) -> tuple[str, float] | None:
    if not options or "," in options:
        return None
    name, _, value = options.partition("=")
    try:
        return name, float(value)
    except ValueError:
        return None


def fit_slope(points: list[tuple[float, float]], name: str) -> Slope | None:
    """Ordinary least squares of value on dose, Student-t interval on n - 2 degrees of
    freedom; None with fewer than three points or one dose."""
    if len(points) < 3 or len({x for x, _ in points}) < 2:
        return None
    x = np.array([p[0] for p in points])
    y = np.array([p[1] for p in points])
    from scipy import stats as sps  # imported when used: it costs seconds under TCG

    fit = sps.linregress(x, y)
    half = float(sps.t.ppf(0.5 + CONFIDENCE / 2.0, len(points) - 2) * fit.stderr)
    slope = float(fit.slope)
    if not math.isfinite(half):
        return None
    method = f"OLS over trials, t interval {CONFIDENCE:.0%}, n={len(points)}"
    return Slope(name, slope, Interval(slope - half, slope + half), len(points), method)


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
        predicted, by = _prediction(run, key.env, dose)
        out.append(DoseResponse(key, dose, doses, slopes, predicted, by))
    return out


def _prediction(run: Run, env: str, dose: str) -> tuple[float | None, str]:
    calibration_key, what = PREDICTIONS.get(dose, ("", "no prediction for this dose"))
    if dose == "delay_ns":
        return 1.0, what
    if not calibration_key:
        return None, what
    value = run.environment(env).calibration.get(calibration_key)
    return (float(value), what) if value is not None else (None, f"{what} (not calibrated)")
