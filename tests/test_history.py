"""bench history: the store on SQLite and on PostgreSQL (the same tests for both), its
command line, the change points of a series and the trend page.

Runs are the TEST FIXTURE run of tests/fixtures (synthetic numbers) under new run ids,
times, commits and machines; a step is made by scaling its latencies.  The PostgreSQL
server is a throwaway one (tests/postgres_server.py), started once for the session.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from bench.cli import main
from bench.history import schema
from bench.history.errors import (
    DuplicateRunError,
    HistorySchemaError,
    HistoryUnavailable,
    HistoryUrlError,
)
from bench.history.extract import run_record
from bench.history.page import render_trends
from bench.history.store import SERIES_COLUMNS, HistoryStore, MachineKey, machine_key
from bench.history.trends import MIN_SIZE, RunValue, breakpoints, change_points, series_of
from bench.results.frame import round_values
from bench.results.run import Run
from tests.postgres_server import PostgresServer, PostgresUnavailable, postgres_server

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "runs" / "fixture-base" / "results.json"
BACKENDS = ("sqlite", "postgresql")
_databases = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the session, always stopped at its end."""
    with ExitStack() as stack:
        try:
            server = stack.enter_context(postgres_server())
        except PostgresUnavailable as exc:
            pytest.fail(f"PostgreSQL for the history tests: {exc}")
        yield server


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty history database: a SQLite file in tmp_path, or a new PostgreSQL
    database on the session's server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.sqlite'}"
    server: PostgresServer = request.getfixturevalue("pg_server")
    return server.create_database(f"history_{next(_databases)}")


@pytest.fixture(scope="session")
def document() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text())
    return data


def make_run(
    document: dict[str, Any],
    run_id: str,
    day: int,
    *,
    commit: str | None = None,
    hostname: str = "bench-a",
    scale: float = 1.0,
    host_pingpong_only: bool = False,
) -> Run:
    """The fixture run as run ``run_id``, created on day ``day`` of 2026, on ``hostname``,
    its latencies times ``scale`` (only its host pingpong rows when asked: a small run)."""
    data = copy.deepcopy(document)
    data["run_id"] = run_id
    data["created"] = f"2026-01-{day:02d}T12:00:00Z"
    data["tool"]["commit"] = commit or f"{day:07x}abcdef"
    for env in data["environments"].values():
        env["hostname"] = hostname
    if host_pingpong_only:
        data["results"] = [
            r for r in data["results"] if r["env"] == "host" and r["mode"] == "pingpong"
        ]
    for row in data["results"]:
        latency = row.get("latency_ns") or {}
        for key, value in latency.items():
            if value is not None:
                latency[key] = value * scale
    return Run.from_json(data)


def save(run: Run, root: Path) -> Path:
    folder = root / run.run_id
    folder.mkdir(parents=True)
    return run.save(folder, check=False)


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


# -- the store ----------------------------------------------------------------------------


def test_three_runs_show_in_series_show_and_the_trend_page(
    db_url: str,
    document: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    runs = [make_run(document, f"run-{i}", day) for i, day in enumerate((3, 1, 2))]
    paths = [save(run, tmp_path / "runs") for run in runs]
    capsys.readouterr()
    assert main(["history", "add", *map(str, paths), "--db", db_url]) == 0
    lines = capsys.readouterr().out.splitlines()
    expected = run_record(runs[0]).count
    assert len(lines) == 3
    for path, line in zip(paths, lines, strict=True):
        assert line.startswith(f"added {path}: {expected} values (bench-a (2x ")

    with HistoryStore.open(db_url, tmp_path) as store:
        assert [r["run_id"] for r in store.runs()] == ["run-1", "run-2", "run-0"]
        frame = store.series()
        assert list(frame.columns) == list(SERIES_COLUMNS)
        assert len(frame) == 3 * expected
        assert list(frame["run_id"].drop_duplicates()) == ["run-1", "run-2", "run-0"]
        assert frame["created"].is_monotonic_increasing
        one = store.series(impl="blocking-c", metric="rtt_p50")
        assert set(one["impl"]) == {"blocking-c"} and set(one["metric"]) == {"rtt_p50"}
        assert set(one["hostname"]) == {"bench-a"} and set(one["env"]) == {"host", "vm"}
        impls = sorted(set(frame["impl"]))

    assert main(["history", "show", "--db", db_url]) == 0
    shown = capsys.readouterr().out
    for run in runs:
        assert run.run_id in shown
    assert "host/blocking-c pingpong 64B lo" in shown and "rtt_p50 (µs)" in shown

    out = tmp_path / "trends"
    report = ["history", "report", "--out", str(out), "--metric", "rtt_p50", "--db", db_url]
    assert main(report) == 0
    page = out / "index.html"
    assert capsys.readouterr().out.strip() == f"trends: {page}"
    html = page.read_text()
    assert html.count('<img src="data:image/png;base64,') == len(impls)
    for impl in impls:
        assert f"<h3>{impl}</h3>" in html
    assert "http://" not in html and "https://" not in html


def test_a_run_added_twice_is_refused_and_the_history_unchanged(
    db_url: str, document: dict[str, Any], tmp_path: Path
) -> None:
    run = make_run(document, "twice", 1)
    with HistoryStore.open(db_url, tmp_path) as store:
        count = store.add(run)
        assert count == run_record(run).count > 0
        before_runs, before_values = store.runs(), store.series()
        with pytest.raises(DuplicateRunError) as refused:
            store.add(run)
        assert str(refused.value) == f"run twice is already in the history ({store.url})"
        assert store.runs() == before_runs
        assert store.series().equals(before_values)


def test_cli_refuses_a_duplicate_with_exit_2_and_one_line(
    db_url: str, document: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = save(make_run(document, "dup", 1), tmp_path)
    assert main(["history", "add", str(path), "--db", db_url]) == 0
    capsys.readouterr()
    assert main(["history", "add", str(path), "--db", db_url]) == 2
    err = capsys.readouterr().err
    assert one_line(err).startswith("error: run dup is already in the history (")
    with HistoryStore.open(db_url, tmp_path) as store:
        assert [r["run_id"] for r in store.runs()] == ["dup"]


def test_last_runs_are_the_newest_of_the_machine_oldest_first(
    db_url: str, document: dict[str, Any], tmp_path: Path
) -> None:
    a = [
        make_run(document, f"a{i}", day, host_pingpong_only=True)
        for i, day in enumerate((1, 2, 4, 5), 1)
    ]
    b = make_run(document, "b1", 3, hostname="bench-b", host_pingpong_only=True)
    with HistoryStore.open(db_url, tmp_path) as store:
        for run in (a[3], b, a[0], a[2], a[1]):
            store.add(run)
        key = machine_key(a[0])

        def ids(runs: list[Run]) -> list[str]:
            return [r.run_id for r in runs]

        assert ids(store.last_runs(key, 2)) == ["a3", "a4"]
        assert ids(store.last_runs(key, 10)) == ["a1", "a2", "a3", "a4"]
        assert ids(store.last_runs(key, 2, exclude_run_id="a4")) == ["a2", "a3"]
        assert ids(store.last_runs(key, 5, before_created=a[2].created)) == ["a1", "a2"]
        assert ids(store.last_runs(machine_key(b), 5)) == ["b1"]
        other_kernel = MachineKey("bench-a", key.cpu_model, key.cpu_count, "5.0")
        assert store.last_runs(other_kernel, 5) == []
        rebuilt = store.last_runs(key, 1)[0]
        assert rebuilt.to_json() == a[3].to_json()


def test_a_step_over_runs_is_a_change_point_on_the_page(
    db_url: str, document: dict[str, Any], tmp_path: Path
) -> None:
    with HistoryStore.open(db_url, tmp_path) as store:
        for day in range(1, 17):
            scale = 1.0 if day <= 8 else 1.3
            store.add(make_run(document, f"r{day:02d}", day, scale=scale, host_pingpong_only=True))
        frame = store.series(impl="blocking-c", metric="rtt_p50")
    found = series_of(frame)
    assert "host/blocking-c pingpong 64B lo" in {s.configuration for s in found}
    for series in found:  # every configuration of blocking-c on the host got slower
        assert [p.run_id for p in series.points] == [f"r{d:02d}" for d in range(1, 17)]
        (change,) = series.changes()
        assert (change.index, change.run_id) == (8, "r09")
        assert change.git_commit == f"{9:07x}abcdef"
        assert change.ratio == pytest.approx(1.3)
    html = render_trends(frame, tmp_path / "page").read_text()
    assert "r09" in html and "1.300x" in html


def test_another_schema_version_is_refused(db_url: str, tmp_path: Path) -> None:
    HistoryStore.open(db_url, tmp_path).close()
    engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(schema.meta.update().values(value="hellobench-history/0"))
    engine.dispose()
    with pytest.raises(HistorySchemaError, match="hellobench-history/0"):
        HistoryStore.open(db_url, tmp_path)


def test_empty_history_gives_an_empty_page(db_url: str, tmp_path: Path) -> None:
    with HistoryStore.open(db_url, tmp_path) as store:
        assert store.runs() == []
        frame = store.series()
    assert frame.empty and list(frame.columns) == list(SERIES_COLUMNS)
    html = render_trends(frame, tmp_path / "page").read_text()
    assert "The history is empty" in html and "<img" not in html


# -- opening ------------------------------------------------------------------------------


def test_default_is_a_sqlite_file_in_the_results_folder(tmp_path: Path) -> None:
    root = tmp_path / "results"
    with HistoryStore.open(None, root) as store:
        assert store.url == f"sqlite:///{root / 'history.sqlite'}"
    assert (root / "history.sqlite").is_file()


@pytest.mark.parametrize("url", ["not a url", "mysql://user@host/db", "nosuchdb:///x"])
def test_bad_url_exits_2(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "show", "--db", url]) == 2
    assert one_line(capsys.readouterr().err).startswith("error: --db ")
    with pytest.raises(HistoryUrlError):
        HistoryStore.open(url, Path("/nonexistent"))


def test_an_unreachable_database_is_one_line_without_its_password(
    pg_server: PostgresServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = pg_server.url("no_such_database").replace("hellobench@", "hellobench:s3cret@", 1)
    with pytest.raises(HistoryUnavailable) as failed:
        HistoryStore.open(url, tmp_path)
    assert "s3cret" not in str(failed.value) and "***" in str(failed.value)
    assert main(["history", "show", "--db", url]) == 1
    err = one_line(capsys.readouterr().err)
    assert err.startswith("failed: history database postgresql+psycopg://hellobench:***@")
    assert "s3cret" not in err


def test_the_stored_values_are_those_of_round_values(document: dict[str, Any]) -> None:
    run = make_run(document, "x", 1)
    record = run_record(run)
    for metric in ("rtt_p50", "throughput_rps", "server_syscalls_per_req"):
        expected = {c.label(): v for c, v in round_values(run.rows, metric).items() if v}
        stored = {s.configuration.label(): s.values[metric] for s in record.series
                  if metric in s.values}  # fmt: skip
        assert stored == expected


# -- change points ------------------------------------------------------------------------


def _points(values: np.ndarray) -> list[RunValue]:
    return [RunValue(f"run-{i}", f"2026-01-01T00:{i:02d}:00+00:00", f"c{i}", float(v))
            for i, v in enumerate(values)]  # fmt: skip


def test_a_step_is_found_where_it_is() -> None:
    rng = np.random.default_rng(7)
    values = np.r_[10 + rng.normal(0, 0.1, 12), 13 + rng.normal(0, 0.1, 12)]
    (change,) = change_points(_points(values))
    assert (change.index, change.run_id, change.git_commit) == (12, "run-12", "c12")
    assert change.before == pytest.approx(10, abs=0.1)
    assert change.after == pytest.approx(13, abs=0.1)
    assert change.ratio == pytest.approx(1.3, abs=0.02)
    assert change_points(_points(values)) == [change]  # deterministic


def test_a_flat_noisy_series_has_no_change_point() -> None:
    for seed in range(20):
        rng = np.random.default_rng(seed)
        assert breakpoints(list(10 + rng.normal(0, 0.3, 24))) == [], seed
    assert breakpoints([5.0] * 20) == []


def test_one_odd_run_is_no_change_point() -> None:
    values = np.r_[np.full(10, 10.0), [15.0], np.full(10, 10.0)]
    assert breakpoints(list(values)) == []


def test_a_short_series_has_no_change_point() -> None:
    values = [10.0] * MIN_SIZE + [20.0] * (MIN_SIZE - 1)
    assert breakpoints(values) == []
    assert breakpoints([10.0] * MIN_SIZE + [20.0] * MIN_SIZE) == [MIN_SIZE]


# -- compare --against-history ------------------------------------------------------------

GUARD_RUNS = Path(__file__).resolve().parent / "fixtures" / "guard-runs"


def test_compare_against_history_pools_the_last_runs_of_the_machine(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real guard runs of one machine: the newest compared with the five before it is
    clean, and the comparison says what it pooled."""
    paths = sorted(GUARD_RUNS.iterdir())
    assert main(["history", "add", *map(str, paths[:-1]), "--db", db_url]) == 0
    capsys.readouterr()
    newest = Run.load(paths[-1])
    args = ["compare", "--guard", "--against-history", "5", str(paths[-1]), "--db", db_url]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "normalised to blocking-py" in out
    assert "last 5 runs in the history" in out
    assert "0 regressions" in out
    stored = [Run.load(p).run_id for p in paths[:-1]]
    assert all(run_id in out for run_id in stored[-5:]), out
    assert not any(run_id in out for run_id in stored[:-5]), out
    with HistoryStore.open(db_url, GUARD_RUNS) as store:
        last = store.last_runs(machine_key(newest), 2)
    assert [r.run_id for r in last] == stored[-2:]


def test_compare_against_an_empty_history_exits_2(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    newest = sorted(GUARD_RUNS.iterdir())[-1]
    assert main(["compare", "--against-history", "3", str(newest), "--db", db_url]) == 2
    assert "holds no run of" in one_line(capsys.readouterr().err)
