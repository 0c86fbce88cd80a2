"""Change points of the history's series: where a metric's level moved and stayed moved.

A series is one metric of one configuration on one machine and kernel, as the per-run
median of its rounds, in the order the runs were created.  The change points are those of
ruptures' Pelt search under an L1 cost (a shift of the median: one odd run moves it far
less than it moves a mean), with a penalty made from the series' own noise: the spread of
successive differences (a median absolute deviation, which a level shift barely moves),
scaled by ``log(n)``.  Segments are at least ``MIN_SIZE`` runs
long, so one odd run is never a change; a series shorter than two segments has none.  The
search is exact and deterministic: the same history gives the same change points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from bench.host.identity import MachineKey

if TYPE_CHECKING:
    import pandas as pd

MIN_SIZE = 3  # runs on each side of a change point, at least
PENALTY_SCALE = 3.0  # penalty = scale × noise (as a standard deviation) × log(n)
RELATIVE_NOISE_FLOOR = 0.002  # noise taken as at least 0.2 % of the series' median level
MAD_TO_SIGMA = 1.4826  # a normal distribution's standard deviation per MAD
# the per-run series: one line of the trend page, one search for change points
SERIES_KEY = ("hostname", "cpu_model", "cpu_count", "kernel", "configuration", "metric")


@dataclass(frozen=True)
class RunValue:
    """One point of a series: a run and its median of the metric over rounds."""

    run_id: str
    created: str
    git_commit: str | None
    value: float


@dataclass(frozen=True)
class ChangePoint:
    """The series' level moved at run ``index`` (its position in the series, the first run
    of the new level): from the median ``before`` of the segment before to ``after``."""

    index: int
    run_id: str
    created: str
    git_commit: str | None
    before: float
    after: float

    @property
    def ratio(self) -> float:
        """after / before (nan when before is 0)."""
        return self.after / self.before if self.before else math.nan


def noise_sigma(values: Sequence[float]) -> float:
    """The series' noise as a standard deviation, from the MAD of successive differences
    (the difference of two independent draws has twice the variance of one), floored at a
    small share of its level so that a flat series of identical values has some."""
    x = np.asarray(values, dtype=float)
    floor = RELATIVE_NOISE_FLOOR * float(np.median(np.abs(x))) if x.size else 0.0
    if x.size < 3:
        return max(floor, 1e-12)
    diffs = np.diff(x)
    mad = float(np.median(np.abs(diffs - np.median(diffs))))
    return max(MAD_TO_SIGMA * mad / math.sqrt(2.0), floor, 1e-12)


def breakpoints(values: Sequence[float], *, min_size: int = MIN_SIZE) -> list[int]:
    """The indices where a new segment begins (none for a series shorter than two
    segments of ``min_size``)."""
    n = len(values)
    if min_size < 1:
        raise ValueError(f"min_size must be at least 1 (got {min_size})")
    if n < 2 * min_size:
        return []
    import ruptures

    signal = np.asarray(values, dtype=float).reshape(-1, 1)
    penalty = PENALTY_SCALE * noise_sigma(values) * math.log(n)
    algo = ruptures.Pelt(model="l1", min_size=min_size, jump=1).fit(signal)
    ends: list[int] = [int(b) for b in algo.predict(pen=penalty)]
    return [b for b in ends if 0 < b < n]


def change_points(points: Sequence[RunValue], *, min_size: int = MIN_SIZE) -> list[ChangePoint]:
    """The change points of one series, its points in time order."""
    values = [p.value for p in points]
    starts = breakpoints(values, min_size=min_size)
    edges = [0, *starts, len(values)]
    found = []
    for i, start in enumerate(starts, start=1):
        before = float(np.median(values[edges[i - 1] : start]))
        after = float(np.median(values[start : edges[i + 1]]))
        p = points[start]
        found.append(ChangePoint(start, p.run_id, p.created, p.git_commit, before, after))
    return found


def run_medians(frame: pd.DataFrame) -> pd.DataFrame:
    """Per series (:data:`SERIES_KEY`) and run, the median over rounds of the values of
    ``HistoryStore.series``: columns SERIES_KEY, impl, run_id, created, git_commit, value,
    in time order."""
    import pandas as pd

    columns = [*SERIES_KEY, "impl", "run_id", "created", "git_commit", "value"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    keys = [*SERIES_KEY, "impl", "run_id", "created"]
    out = frame.groupby(keys, sort=False, dropna=False).agg(
        git_commit=("git_commit", "first"), value=("value", "median")
    )
    out = out.reset_index().sort_values(["created", "run_id", *SERIES_KEY], kind="stable")
    return out[columns].reset_index(drop=True)


def _commit(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class Series:
    """One series of the history: machine, configuration, metric and its points."""

    machine: MachineKey
    impl: str
    configuration: str
    metric: str
    points: tuple[RunValue, ...]

    def changes(self, *, min_size: int = MIN_SIZE) -> list[ChangePoint]:
        return change_points(self.points, min_size=min_size)


def series_of(frame: pd.DataFrame) -> list[Series]:
    """The series of a frame of ``HistoryStore.series`` values, each with its per-run
    medians in time order; ordered by metric, impl, configuration and machine."""
    medians = run_medians(frame)
    found: list[Series] = []
    for key, group in medians.groupby(list(SERIES_KEY), sort=True, dropna=False):
        hostname, cpu_model, cpu_count, kernel, configuration, metric = cast(tuple[Any, ...], key)
        points = tuple(
            RunValue(str(run_id), str(created), _commit(commit), float(value))
            for run_id, created, commit, value in zip(
                group["run_id"], group["created"], group["git_commit"], group["value"],
                strict=True,
            )
        )  # fmt: skip
        machine = MachineKey(str(hostname), str(cpu_model), int(cpu_count), str(kernel))
        impl = str(group["impl"].iloc[0])
        found.append(Series(machine, impl, str(configuration), str(metric), points))
    return sorted(found, key=lambda s: (s.metric, s.impl, s.configuration, s.machine.label()))
