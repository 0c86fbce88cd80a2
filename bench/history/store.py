"""The history database: :class:`HistoryStore` opens it (SQLite by default, PostgreSQL by
URL), adds runs in one transaction each, and reads them back as runs, as a frame of values
or as whole :class:`Run` objects.

``HistoryStore.open(None, results_root)`` is ``sqlite:///<results_root>/history.sqlite``;
``postgresql://...`` means the psycopg (version 3) driver.  Every failure to open is one
line naming the database by its URL without the password.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from bench.history import schema
from bench.history.errors import (
    DuplicateRunError,
    HistoryDriverMissing,
    HistorySchemaError,
    HistoryUnavailable,
    HistoryUrlError,
)
from bench.history.extract import RunRecord, run_record, utc_iso
from bench.history.machine import MachineKey, machine_key
from bench.results.run import Run

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_NAME", "SERIES_COLUMNS", "HistoryStore", "MachineKey", "machine_key"]

DEFAULT_NAME = "history.sqlite"
DIALECTS = ("sqlite", "postgresql")
SCHEMA_KEY = "schema"
# the columns of ``HistoryStore.series``, in order
SERIES_COLUMNS = (
    "run_id", "created", "git_commit", "suite_version", "env", "hostname", "cpu_model",
    "cpu_count", "kernel", "accel", *schema.SERIES_FIELDS, "configuration", "metric", "round",
    "value",
)  # fmt: skip


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def database_url(url: str | None, results_root: Path) -> sa.URL:
    """The URL the store opens: ``url`` (``postgresql://`` meaning psycopg) or the default
    SQLite file in ``results_root``; HistoryUrlError when it is none the store can use."""
    if url is None:
        return sa.URL.create("sqlite", database=str(Path(results_root) / DEFAULT_NAME))
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise HistoryUrlError(
            f"--db {url!r} is not a database URL (sqlite:///FILE or postgresql://...)"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in DIALECTS:
        raise HistoryUrlError(
            f"--db {parsed.render_as_string(hide_password=True)}: unsupported database "
            f"{backend!r} (use sqlite:///FILE or postgresql://...)"
        )
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _engine(url: sa.URL, safe: str) -> sa.Engine:
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        try:
            Path(str(url.database)).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HistoryUnavailable(f"history database {safe}: {exc}") from None
    try:
        engine = sa.create_engine(url)
    except ImportError as exc:
        raise HistoryDriverMissing(
            f"history database {safe}: its driver is not installed ({_first_line(exc)})"
        ) from None
    except sa.exc.ArgumentError as exc:
        raise HistoryUrlError(f"--db {safe}: {_first_line(exc)}") from None
    if url.get_backend_name() == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_foreign_keys)
    return engine


def _sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _pk(conn: sa.Connection, insert: sa.Insert) -> int:
    """Execute ``insert`` of one row and return the row's generated id."""
    key = conn.execute(insert).inserted_primary_key
    if key is None or key[0] is None:
        raise HistoryUnavailable("the database returned no id for a row it stored")
    return int(key[0])


class HistoryStore:
    """An open history database.  Use :meth:`open`; close it (or use it as a context
    manager) when done."""

    def __init__(self, engine: sa.Engine, safe_url: str) -> None:
        self.engine = engine
        self.url = safe_url  # the URL without its password: safe to print

    # -- opening -----------------------------------------------------------------------

    @classmethod
    def open(cls, url: str | None, results_root: Path) -> HistoryStore:
        """Open (and on first use create) the history at ``url``, by default the SQLite
        file ``results_root/history.sqlite``."""
        parsed = database_url(url, results_root)
        safe = parsed.render_as_string(hide_password=True)
        store = cls(_engine(parsed, safe), safe)
        try:
            store._prepare()
        except BaseException:
            store.close()
            raise
        return store

    def _prepare(self) -> None:
        try:
            with self.engine.begin() as conn:
                tables = set(sa.inspect(conn).get_table_names())
                if schema.meta.name in tables:
                    self._check_version(conn)
                    schema.metadata.create_all(conn)
                    return
                if tables & {t.name for t in schema.metadata.sorted_tables}:
                    raise HistorySchemaError(
                        f"{self.url} holds tables of no known history schema: use another database"
                    )
                schema.metadata.create_all(conn)
                conn.execute(
                    schema.meta.insert().values(key=SCHEMA_KEY, value=schema.SCHEMA_VERSION)
                )
        except sa.exc.SQLAlchemyError as exc:
            raise HistoryUnavailable(
                f"history database {self.url} cannot be opened: {_first_line(exc)}"
            ) from None
        except ImportError as exc:  # a driver module loaded only on connecting
            raise HistoryDriverMissing(
                f"history database {self.url}: its driver is not installed ({_first_line(exc)})"
            ) from None

    def _check_version(self, conn: sa.Connection) -> None:
        found = conn.execute(
            sa.select(schema.meta.c.value).where(schema.meta.c.key == SCHEMA_KEY)
        ).scalar_one_or_none()
        if found != schema.SCHEMA_VERSION:
            raise HistorySchemaError(
                f"{self.url} holds history schema {found!r}, not {schema.SCHEMA_VERSION!r}: "
                "use another database"
            )

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------

    def add(self, run: Run) -> int:
        """Store ``run`` (one transaction) and return how many values it added;
        DuplicateRunError when its run id is already in the history."""
        record = run_record(run)
        try:
            with self.engine.begin() as conn:
                if self._has_run(conn, record.run_id):
                    raise self._duplicate(record.run_id)
                self._insert(conn, record)
        except sa.exc.IntegrityError:
            # added by someone else between the check and the insert
            raise self._duplicate(record.run_id) from None
        except sa.exc.SQLAlchemyError as exc:
            raise HistoryUnavailable(
                f"history database {self.url}: run {record.run_id} not added: {_first_line(exc)}"
            ) from None
        return record.count

    def _duplicate(self, run_id: str) -> DuplicateRunError:
        return DuplicateRunError(f"run {run_id} is already in the history ({self.url})")

    @staticmethod
    def _has_run(conn: sa.Connection, run_id: str) -> bool:
        found = conn.execute(
            sa.select(schema.runs.c.id).where(schema.runs.c.run_id == run_id)
        ).first()
        return found is not None

    @staticmethod
    def _insert(conn: sa.Connection, record: RunRecord) -> None:
        added = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        run_pk = _pk(
            conn,
            schema.runs.insert().values(
                run_id=record.run_id, created=record.created, added=added,
                suite_version=record.suite_version, git_commit=record.git_commit,
                complete=record.complete, document=record.document,
            ),
        )  # fmt: skip
        env_pk: dict[str, int] = {}
        for env in record.environments:
            env_pk[env.name] = _pk(
                conn,
                schema.environments.insert().values(
                    run=run_pk, name=env.name, hostname=env.machine.hostname,
                    cpu_model=env.machine.cpu_model, cpu_count=env.machine.cpu_count,
                    kernel=env.machine.kernel, accel=env.accel,
                ),
            )  # fmt: skip
        for series in record.series:
            series_pk = _pk(
                conn,
                schema.series.insert().values(environment=env_pk[series.env], **series.columns()),
            )
            rows = [
                {"series": series_pk, "metric": metric, "round": r, "value": value}
                for metric, rounds in series.values.items()
                for r, value in rounds.items()
            ]
            if rows:
                conn.execute(schema.values.insert(), rows)

    # -- reading -----------------------------------------------------------------------

    def _read(self, statement: sa.Select[Any]) -> Sequence[sa.RowMapping]:
        try:
            with self.engine.connect() as conn:
                return conn.execute(statement).mappings().all()
        except sa.exc.SQLAlchemyError as exc:
            raise HistoryUnavailable(
                f"history database {self.url} cannot be read: {_first_line(exc)}"
            ) from None

    def runs(self) -> list[dict[str, Any]]:
        """Every stored run, oldest first: run_id, created, suite_version, git_commit,
        complete."""
        r = schema.runs.c
        statement = sa.select(r.run_id, r.created, r.suite_version, r.git_commit, r.complete)
        rows = self._read(statement.order_by(r.created, r.id))
        return [dict(row) | {"complete": bool(row["complete"])} for row in rows]

    def series(self, impl: str | None = None, metric: str | None = None) -> pd.DataFrame:
        """One row per stored value (columns :data:`SERIES_COLUMNS`), ordered by created,
        configuration, metric and round; only ``impl``'s and ``metric``'s when given."""
        import pandas as pd

        r, e, s, v = (schema.runs.c, schema.environments.c, schema.series.c, schema.values.c)
        statement = (
            sa.select(
                r.run_id, r.created, r.git_commit, r.suite_version, e.name.label("env"),
                e.hostname, e.cpu_model, e.cpu_count, e.kernel, e.accel,
                *(s[name] for name in schema.SERIES_FIELDS), s.configuration, v.metric,
                v["round"], v.value,
            )
            .select_from(
                schema.values.join(schema.series, v.series == s.id)
                .join(schema.environments, s.environment == e.id)
                .join(schema.runs, e.run == r.id)
            )
            .order_by(r.created, r.id, s.configuration, v.metric, v["round"])
        )  # fmt: skip
        if impl is not None:
            statement = statement.where(s.impl == impl)
        if metric is not None:
            statement = statement.where(v.metric == metric)
        return pd.DataFrame([dict(row) for row in self._read(statement)],
                            columns=list(SERIES_COLUMNS))  # fmt: skip

    def last_runs(
        self,
        key: MachineKey,
        n: int,
        *,
        before_created: str | None = None,
        exclude_run_id: str | None = None,
    ) -> list[Run]:
        """The newest ``n`` runs with an environment on machine ``key`` (created before
        ``before_created``, other than ``exclude_run_id``, when given), oldest first."""
        r, e = schema.runs.c, schema.environments.c
        on_machine = sa.select(e.run).where(
            e.hostname == key.hostname,
            e.cpu_model == key.cpu_model,
            e.cpu_count == key.cpu_count,
            e.kernel == key.kernel,
        )
        statement = sa.select(r.run_id, r.document).where(r.id.in_(on_machine))
        if before_created is not None:
            statement = statement.where(r.created < utc_iso(before_created))
        if exclude_run_id is not None:
            statement = statement.where(r.run_id != exclude_run_id)
        statement = statement.order_by(r.created.desc(), r.id.desc()).limit(max(n, 0))
        rows = self._read(statement)
        return [
            Run.from_json(json.loads(row["document"]), f"history run {row['run_id']}")
            for row in reversed(rows)
        ]
