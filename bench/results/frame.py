"""The tidy view of a run: a pandas DataFrame with one row per phase and one column per
field and per metric — the one place where rows are grouped into configurations and
trials, and where medians over trials are taken.

Columns: the configuration fields (bench/results/rows.py CONFIG_FIELDS), ``trial``,
``kind``, ``status``, ``error``, the counts, every metric of bench/results/metrics.py under
its name, ``histogram`` and ``samples_file``; ``configuration`` holds the Configuration
record itself (the grouping key) and is left out of exports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import pandas as pd

from bench.results.anatomy import AnatomyRecord
from bench.results.metrics import METRIC_NAMES, METRICS
from bench.results.rows import CONFIG_FIELDS, Configuration, PhaseRow

KEY = "configuration"
COUNT_FIELDS = ("requests", "replies", "lost", "duplicates", "reordered", "corrupt")
OUTCOME_FIELDS = ("trial", "kind", "status", "error", *COUNT_FIELDS, "duration_s")


def _record(position: int, row: PhaseRow) -> dict[str, object]:
    record: dict[str, object] = {KEY: row.configuration, "position": position}
    config = row.configuration
    record.update({name: getattr(config, name) for name in CONFIG_FIELDS})
    record.update({name: getattr(row, name) for name in OUTCOME_FIELDS})
    for m in METRICS:
        value = m.read(row)
        record[m.name] = float("nan") if value is None else value
    record["histogram"] = row.histogram
    record["samples_file"] = row.samples.file if row.samples else None
    return record


def phase_frame(rows: Sequence[PhaseRow]) -> pd.DataFrame:
    """One row per phase, in the order of ``rows`` (``position`` is the index in it)."""
    columns = [KEY, "position", *CONFIG_FIELDS, *OUTCOME_FIELDS, *METRIC_NAMES]
    columns += ["histogram", "samples_file"]
    frame = pd.DataFrame([_record(i, r) for i, r in enumerate(rows)], columns=columns)
    return frame.astype({name: "float64" for name in METRIC_NAMES})


def export_frame(rows: Sequence[PhaseRow]) -> pd.DataFrame:
    """The frame without the record objects: plain values only, for files and notebooks."""
    return phase_frame(rows).drop(columns=[KEY, "position"])


ANATOMY_COLUMNS = (
    "env", "topology", "impl", "levels", "size", "every", "sampled", "stage", "position",
    "p50_ns", "p90_ns", "p99_ns", "mean_ns", "median_requests_mean_ns",
    "slowest_1pct_mean_ns", "missing", "error",
)  # fmt: skip


def anatomy_frame(records: Sequence[AnatomyRecord]) -> pd.DataFrame:
    """One row per anatomy pass and stage (a pass that failed: one row, its error)."""
    out: list[dict[str, object]] = []
    for r in records:
        levels = ",".join(f"{k}={r.levels[k]}" for k in sorted(r.levels))
        head = {"env": r.env, "topology": r.topology, "impl": r.impl, "levels": levels,
                "size": r.size, "every": r.every, "sampled": r.sampled}  # fmt: skip
        if not r.stages:
            out.append({**head, "error": r.error or "no request sampled"})
        for i, s in enumerate(r.stages):
            out.append({
                **head, "stage": s.name, "position": i, "p50_ns": s.ns.p50, "p90_ns": s.ns.p90,
                "p99_ns": s.ns.p99, "mean_ns": s.ns.mean,
                "median_requests_mean_ns": r.median.get(s.name),
                "slowest_1pct_mean_ns": r.tail.get(s.name), "missing": s.missing,
                "error": r.error,
            })  # fmt: skip
    return pd.DataFrame(out, columns=list(ANATOMY_COLUMNS))


def _ok(frame: pd.DataFrame, ok_only: bool) -> pd.DataFrame:
    return frame[frame["status"] == "ok"] if ok_only else frame


def grouped(
    rows: Sequence[PhaseRow], *, ok_only: bool = True
) -> dict[Configuration, list[PhaseRow]]:
    """The rows of every configuration, trials in trial order, configurations sorted."""
    frame = _ok(phase_frame(rows), ok_only)
    if frame.empty:
        return {}
    out: dict[Configuration, list[PhaseRow]] = {}
    for key, group in frame.sort_values(["trial", "position"]).groupby(KEY, sort=False):
        out[cast(Configuration, key)] = [rows[int(i)] for i in group["position"]]
    return {k: out[k] for k in sorted(out, key=Configuration.sort_key)}


@dataclass(frozen=True)
class Medians:
    """The medians over a configuration's ok trials (None where no trial measured one)."""

    trials: int
    values: Mapping[str, float | None]


def medians(
    rows: Sequence[PhaseRow], metrics: Sequence[str] = METRIC_NAMES
) -> dict[Configuration, Medians]:
    """Per configuration (sorted), the median over its ok trials of each metric."""
    frame = _ok(phase_frame(rows), True)
    if frame.empty:
        return {}
    by = frame.groupby(KEY, sort=False)
    table = by[list(metrics)].median()
    sizes = by.size().to_dict()
    out: dict[Configuration, Medians] = {}
    for key, values in table.iterrows():
        config = cast(Configuration, key)
        out[config] = Medians(
            int(sizes[key]),
            {m: None if pd.isna(values[m]) else float(values[m]) for m in metrics},
        )
    return {k: out[k] for k in sorted(out, key=Configuration.sort_key)}


def round_values(rows: Sequence[PhaseRow], metric: str) -> dict[Configuration, dict[int, float]]:
    """Per configuration, ``metric`` of each ok trial, by trial number (its round): the
    values of two configurations measured in the same round pair up by key."""
    frame = _ok(phase_frame(rows), True).sort_values(["trial", "position"])
    out: dict[Configuration, dict[int, float]] = {}
    for key, group in frame.groupby(KEY, sort=False):
        present = group[["trial", metric]].dropna()
        out[cast(Configuration, key)] = {
            int(t): float(v) for t, v in zip(present["trial"], present[metric], strict=True)
        }
    return out


def trial_values(rows: Sequence[PhaseRow], metric: str) -> dict[Configuration, list[float]]:
    """Per configuration, the measured values of ``metric`` over its ok trials."""
    frame = _ok(phase_frame(rows), True).sort_values(["trial", "position"])
    out: dict[Configuration, list[float]] = {}
    for key, group in frame.groupby(KEY, sort=False):
        out[cast(Configuration, key)] = [float(v) for v in group[metric].dropna()]
    return out
