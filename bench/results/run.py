"""One run's results: the :class:`Run` that loads, validates, migrates and saves results.json.

``Run.load(path)`` accepts a run folder, a results.json, or the folder given to
``bench run --out`` (the newest run inside it; ``Run.located`` then says which).  A file
of an older schema is migrated in memory; ``save`` always writes the current one, after
validating it, atomically, with an INCOMPLETE marker beside it while ``complete`` is false.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.results.anatomy import AnatomyRecord
from bench.results.descriptions import Environment, ImplInfo
from bench.results.migrate import migrate
from bench.results.rows import Configuration, PhaseRow, Skip
from bench.results.schema import SCHEMA_ID, ResultsError, one_line, validate
from bench.system.files import write_atomic

if TYPE_CHECKING:
    import pandas as pd

RESULTS_NAME = "results.json"
INCOMPLETE_MARKER = "INCOMPLETE"
INCOMPLETE_TEXT = "this run did not finish; results.json holds the rows measured so far\n"
_KNOWN = {"schema", "run_id", "created", "complete", "tool", "config", "impls", "environments",
          "results", "skipped", "anatomy"}  # fmt: skip


# A run id names folders (reports/<run-id>, results/<run-id>): never a path of its own.
SAFE_RUN_ID = re.compile(r"[0-9A-Za-z_.-]{1,128}")


def _check_run_id(value: object, where: str) -> None:
    if not isinstance(value, str) or not SAFE_RUN_ID.fullmatch(value) or set(value) == {"."}:
        raise ResultsError(
            one_line(
                f"{where}: run_id {str(value)[:80]!r} is not a run id (1-128 letters, digits, "
                "'_', '.', '-'; not a path)"
            )
        )


def new_run_id() -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


@dataclass
class Run:
    """A run's document as typed records.  ``extra`` keeps the top-level fields that are
    not records (``vm``, ``wall_s``, ``migrated``) as they are."""

    run_id: str
    created: str
    complete: bool = False
    tool: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    impls: dict[str, ImplInfo] = field(default_factory=dict)
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: list[PhaseRow] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    anatomy: list[AnatomyRecord] = field(default_factory=list)  # the claim's anatomy passes
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None  # the results.json it was loaded from or last saved to
    located: str | None = None  # how ``load`` found it, when it had to look

    # -- construction ------------------------------------------------------------------

    @classmethod
    def new(cls, config: Mapping[str, Any], tool: Mapping[str, Any]) -> Run:
        created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        return cls(run_id=new_run_id(), created=created, tool=dict(tool), config=dict(config))

    @classmethod
    def from_json(cls, document: Mapping[str, Any], where: str = "results") -> Run:
        """A Run from a document of any known schema (validated, then migrated)."""
        version = validate(document, where)
        _check_run_id(document.get("run_id"), where)
        current = migrate(dict(document), version, where)
        if version != SCHEMA_ID:
            validate(current, f"{where} (migrated from {version})")
        try:
            return cls(
                run_id=str(current["run_id"]),
                created=str(current["created"]),
                complete=bool(current["complete"]),
                tool=dict(current.get("tool") or {}),
                config=dict(current.get("config") or {}),
                impls={n: ImplInfo.from_json(n, raw) for n, raw in current["impls"].items()},
                environments={str(k): dict(v) for k, v in current["environments"].items()},
                rows=[PhaseRow.from_json(r) for r in current["results"]],
                skipped=[Skip.from_json(s) for s in current["skipped"]],
                anatomy=[AnatomyRecord.from_json(a) for a in current.get("anatomy") or []],
                extra={k: v for k, v in current.items() if k not in _KNOWN},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ResultsError(one_line(f"{where}: unusable record: {exc!r}")) from None

    @classmethod
    def load(cls, path: Path) -> Run:
        """Load a run folder, a results.json, or the newest run in a folder of runs."""
        file, located = locate(Path(path))
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ResultsError(f"{file}: no such results file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ResultsError(one_line(f"{file}: cannot read: {exc}")) from None
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ResultsError(
                f"{file}: corrupt JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
            ) from None
        run = cls.from_json(document, str(file))
        run.path, run.located = file, located
        return run

    # -- writing -----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_ID,
            "run_id": self.run_id,
            "created": self.created,
            "complete": self.complete,
            "tool": self.tool,
            "config": self.config,
            "impls": {name: info.to_json() for name, info in self.impls.items()},
            "environments": self.environments,
            "results": [row.to_json() for row in self.rows],
            "skipped": [s.to_json() for s in self.skipped],
            "anatomy": [a.to_json() for a in self.anatomy],
            **self.extra,
        }

    def save(self, run_dir: Path, *, check: bool = True) -> Path:
        """Validate (unless ``check`` is false) and atomically write
        ``run_dir/results.json``; returns its path."""
        document = self.to_json()
        if check:
            validate(document, str(run_dir / RESULTS_NAME))
        path = run_dir / RESULTS_NAME
        marker = run_dir / INCOMPLETE_MARKER
        if not self.complete and not marker.exists():
            write_atomic(marker, INCOMPLETE_TEXT)  # first: an incomplete file always has it
        write_atomic(path, json.dumps(document, indent=1) + "\n")
        if self.complete:
            marker.unlink(missing_ok=True)
        self.path = path
        return path

    # -- reading -----------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        if self.path is None:
            raise ValueError(f"run {self.run_id} has not been loaded or saved")
        return self.path.parent

    @property
    def env_names(self) -> tuple[str, ...]:
        """Every environment: those described, then any that only rows name."""
        names = list(self.environments)
        names += sorted({r.env for r in self.rows} - set(names))
        return tuple(names)

    def environment(self, name: str) -> Environment:
        return Environment(name, self.environments.get(name) or {})

    def impl(self, name: str) -> ImplInfo:
        """What the run says about ``name`` (family "unknown" when it says nothing)."""
        kind = next((r.kind for r in self.rows if r.impl == name), "userspace")
        return self.impls.get(name) or ImplInfo(name, kind, "unknown")

    def impl_order(self, names: Iterable[str]) -> list[str]:
        """``names`` family by family, then by name."""
        return sorted(set(names), key=lambda n: self.impl(n).sort_key())

    def add_row(self, row: PhaseRow) -> None:
        self.rows.append(row)

    def skip(self, impl: str, env: str, reason: str) -> None:
        self.skipped.append(Skip(impl, env, reason))

    def frame(self) -> pd.DataFrame:
        """One row per phase, one column per field and per metric (see results.frame)."""
        from bench.results.frame import phase_frame

        return phase_frame(self.rows)

    def groups(self, *, ok_only: bool = True) -> dict[Configuration, list[PhaseRow]]:
        """The rows of each configuration, trials in order (computed by results.frame)."""
        from bench.results.frame import grouped

        return grouped(self.rows, ok_only=ok_only)


def _newest_run(folder: Path) -> tuple[Path, str] | None:
    found = sorted(folder.glob(f"*/{RESULTS_NAME}"), key=lambda p: (p.stat().st_mtime, p))
    if not found:
        return None
    newest = found[-1]
    note = f"{folder} holds {len(found)} run(s); using the newest, {newest.parent.name}"
    return newest, note


def locate(path: Path) -> tuple[Path, str | None]:
    """The results.json that ``path`` names, and a note when it had to be looked for.

    ``path`` may be the file, its run folder, or a folder of run folders (``--out``)."""
    if not path.is_dir():
        return path, None
    if (path / RESULTS_NAME).exists():
        return path / RESULTS_NAME, None
    newest = _newest_run(path)
    if newest is None:
        raise ResultsError(f"{path}: no {RESULTS_NAME} in it, nor in a run folder inside it")
    return newest
