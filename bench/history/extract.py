"""What the history keeps of a run, as plain records (no database here): the run's own
facts, the machine of each environment, and per environment and configuration the
per-round values of every metric of the registry that the run measured.

The per-round values are those of ``round_values`` (bench/results/frame.py): ok trials
only, by trial number, a metric a trial did not measure (or measured as infinite) left out.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from typing import Any, cast

from bench.history.schema import SERIES_FIELDS
from bench.host.identity import MachineKey
from bench.results.frame import KEY, phase_frame
from bench.results.metrics import METRIC_NAMES
from bench.results.rows import Configuration
from bench.results.run import Run


def utc_iso(text: str) -> str:
    """An ISO 8601 time as UTC to the second (``2026-01-01T00:00:00+00:00``), so that text
    order is time order; text that is not such a time is returned as it is."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return text
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).isoformat(timespec="seconds")


@dataclass
class SeriesRecord:
    """One environment × configuration of a run and its values: metric -> round -> value."""

    env: str
    configuration: Configuration
    values: dict[str, dict[int, float]] = field(default_factory=dict)

    def columns(self) -> dict[str, Any]:
        """The ``series`` table's columns (the environment is a foreign key, set apart)."""
        out = {name: getattr(self.configuration, name) for name in SERIES_FIELDS}
        out["configuration"] = self.configuration.label()
        return out

    @property
    def count(self) -> int:
        return sum(len(rounds) for rounds in self.values.values())


@dataclass(frozen=True)
class EnvironmentRecord:
    name: str
    machine: MachineKey
    accel: str | None


@dataclass
class RunRecord:
    """Everything the history stores of one run."""

    run_id: str
    created: str
    suite_version: str | None
    git_commit: str | None
    complete: bool
    document: str
    environments: list[EnvironmentRecord]
    series: list[SeriesRecord]

    @property
    def count(self) -> int:
        """How many values the run adds."""
        return sum(s.count for s in self.series)


def _environments(run: Run) -> list[EnvironmentRecord]:
    return [
        EnvironmentRecord(
            name=name,
            machine=MachineKey.of_record(run.environments.get(name) or {}),
            accel=run.environment(name).accel,
        )
        for name in run.env_names
    ]


def _series(run: Run) -> list[SeriesRecord]:
    """The values of ``round_values`` for every metric, from one frame of the run (one
    grouping for all metrics rather than one per metric)."""
    frame = phase_frame(run.rows)
    frame = frame[frame["status"] == "ok"].sort_values(["trial", "position"])
    found: dict[Configuration, SeriesRecord] = {}
    for key, group in frame.groupby(KEY, sort=False):
        config = cast(Configuration, key)
        trials = [int(t) for t in group["trial"]]
        record = SeriesRecord(config.env, config)
        for metric in METRIC_NAMES:
            column = group[metric].to_numpy(dtype=float)
            kept = {t: float(v) for t, v in zip(trials, column, strict=True) if math.isfinite(v)}
            if kept:
                record.values[metric] = kept
        if record.values:
            found[config] = record
    return [found[c] for c in sorted(found, key=Configuration.sort_key)]


def run_record(run: Run) -> RunRecord:
    """What the history stores of ``run``."""
    tool = run.tool or {}
    version, commit = tool.get("version"), tool.get("commit")
    return RunRecord(
        run_id=run.run_id,
        created=utc_iso(run.created),
        suite_version=None if version is None else str(version),
        git_commit=None if commit is None else str(commit),
        complete=run.complete,
        document=json.dumps(run.to_json(), separators=(",", ":")),
        environments=_environments(run),
        series=_series(run),
    )
