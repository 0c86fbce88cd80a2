"""Read a run's results.json: load, validate against schema hellobench/1, and index its rows.

Everything downstream of a run (report, compare) starts here and reads nothing else.
Errors are :class:`ResultsError` with a one-line message that names the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema.exceptions

SCHEMA_ID = "hellobench/1"
SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "results-v1.json"
RESULTS_NAME = "results.json"

Row = Mapping[str, Any]


class ResultsError(Exception):
    """A results file that cannot be used; the message is one line and names the file."""


@dataclass(frozen=True)
class Run:
    """One validated results.json."""

    path: Path
    data: Mapping[str, Any]

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    @property
    def run_id(self) -> str:
        return str(self.data["run_id"])

    @property
    def complete(self) -> bool:
        return bool(self.data["complete"])

    @property
    def environments(self) -> Mapping[str, Mapping[str, Any]]:
        envs: Mapping[str, Mapping[str, Any]] = self.data["environments"]
        return envs

    @property
    def rows(self) -> Sequence[Row]:
        rows: Sequence[Row] = self.data["results"]
        return rows

    @property
    def skipped(self) -> Sequence[Mapping[str, str]]:
        skipped: Sequence[Mapping[str, str]] = self.data["skipped"]
        return skipped

    @property
    def env_names(self) -> tuple[str, ...]:
        """Every environment: those described, then any that only rows name."""
        names = list(self.environments)
        names += sorted({str(r["env"]) for r in self.rows} - set(names))
        return tuple(names)

    def environment(self, name: str) -> Mapping[str, Any]:
        """The environment's description ({} when results.json has none)."""
        return self.environments.get(name) or {}

    @property
    def config(self) -> Mapping[str, Any]:
        config: Mapping[str, Any] = self.data.get("config") or {}
        return config


@dataclass(frozen=True, order=True)
class GroupKey:
    """The trials of one configuration: what a summary line or a comparison is about."""

    env: str
    impl: str
    mode: str
    size: int
    topology: str
    load_fraction: float | None = None

    def label(self) -> str:
        load = "" if self.load_fraction is None else f" @{self.load_fraction:g}"
        return f"{self.env}/{self.impl} {self.mode} {self.size}B {self.topology}{load}"


def _sort_key(key: GroupKey) -> tuple[str, str, str, int, str, float]:
    lf = -1.0 if key.load_fraction is None else key.load_fraction
    return (key.env, key.impl, key.mode, key.size, key.topology, lf)


def group_key(row: Row) -> GroupKey:
    lf = row.get("load_fraction")
    return GroupKey(
        env=str(row["env"]),
        impl=str(row["impl"]),
        mode=str(row["mode"]),
        size=int(row["size"]),
        topology=str(row["topology"]),
        load_fraction=None if lf is None else float(lf),
    )


def group_rows(rows: Iterable[Row], *, ok_only: bool = True) -> dict[GroupKey, list[Row]]:
    """Rows by configuration, trials sorted by trial number, keys in a stable order."""
    groups: dict[GroupKey, list[Row]] = {}
    for row in rows:
        if ok_only and row["status"] != "ok":
            continue
        groups.setdefault(group_key(row), []).append(row)
    return {
        key: sorted(groups[key], key=lambda r: int(r["trial"]))
        for key in sorted(groups, key=_sort_key)
    }


@cache
def _schema() -> Mapping[str, Any]:
    schema: Mapping[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return schema


def results_path(path: Path) -> Path:
    """``path`` itself when it is a file, else the results.json inside the run folder."""
    return path / RESULTS_NAME if path.is_dir() else path


def _one_line(text: str) -> str:
    return " ".join(text.split())


def validate_results(data: object, where: str = "results") -> None:
    """Raise ResultsError unless ``data`` is a hellobench/1 document."""
    if not isinstance(data, dict):
        raise ResultsError(f"{where}: not a results document (top level is not an object)")
    version = data.get("schema")
    if version != SCHEMA_ID:
        raise ResultsError(f"{where}: schema {version!r} is not supported (expected {SCHEMA_ID!r})")
    validator = jsonschema.Draft202012Validator(_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        at = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ResultsError(
            _one_line(f"{where}: does not match {SCHEMA_ID} at {at}: {error.message}")[:300]
        )


def load_results(path: Path) -> Run:
    """Load and validate a results.json (or the one inside a run folder)."""
    file = results_path(Path(path))
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{file}: no such results file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(_one_line(f"{file}: cannot read: {exc}")) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(
            f"{file}: corrupt JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
        ) from None
    validate_results(data, str(file))
    return Run(path=file, data=data)


def per_request(row: Row, field: str) -> float | None:
    """A per-request field of a row (``cpu_ns.<kind>`` for CPU), None when not measured."""
    pr: Mapping[str, Any] = row["per_request"]
    if field.startswith("cpu_ns."):
        value = pr["cpu_ns"].get(field.split(".", 1)[1])
    else:
        value = pr.get(field)
    return None if value is None else float(value)


def latency(row: Row, percentile: str) -> float | None:
    value = row["latency_ns"].get(percentile)
    return None if value is None else float(value)
