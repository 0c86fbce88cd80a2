"""The results model: one Run type that loads any folder a user would give it, migrates
older files, saves atomically; typed rows; the tidy frame that groups configurations; the
export command.  Inputs are the TEST FIXTURE runs of tests/fixtures/make_fixtures.py."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bench import PROJECT_ROOT
from bench.cli import main
from bench.report.render import render_report
from bench.results.frame import export_frame, grouped, medians
from bench.results.metrics import METRIC_NAMES, metric
from bench.results.rows import CONFIG_FIELDS, PhaseRow
from bench.results.run import INCOMPLETE_MARKER, RESULTS_NAME, Run
from bench.results.schema import SCHEMA_ID, ResultsError, validate

FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "runs"
BASE = FIXTURES / "fixture-base"
LEGACY = FIXTURES / "legacy-v1"


def _copy_run(src: Path, parent: Path, name: str) -> Path:
    folder = parent / name
    folder.mkdir(parents=True)
    shutil.copy(src / RESULTS_NAME, folder / RESULTS_NAME)
    return folder


# -- loading ---------------------------------------------------------------------------


def test_a_run_folder_a_file_and_a_folder_of_runs_all_load(tmp_path: Path) -> None:
    older = _copy_run(LEGACY, tmp_path, "older")
    newer = _copy_run(BASE, tmp_path, "newer")
    os.utime(older / RESULTS_NAME, (1, 1))
    by_folder, by_file, by_parent = (
        Run.load(newer),
        Run.load(newer / RESULTS_NAME),
        Run.load(tmp_path),
    )
    assert by_folder.run_id == by_file.run_id == by_parent.run_id == "fixture-base"
    assert by_folder.located is None and by_file.located is None
    assert by_parent.located is not None
    assert "2 run(s)" in by_parent.located and "newer" in by_parent.located
    assert by_parent.path == newer / RESULTS_NAME


def test_a_folder_without_runs_says_so(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match=r"no results\.json in it"):
        Run.load(tmp_path)


def test_report_and_compare_take_the_folder_given_to_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results"
    _copy_run(BASE, out, "20260101T000000Z-aaaaaa")
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    printed = capsys.readouterr().out
    assert "using the newest" in printed
    assert (tmp_path / "report" / "index.html").exists()
    assert main(["compare", str(out), str(out)]) == 0
    assert "0 regressions" in capsys.readouterr().out


# -- migration -------------------------------------------------------------------------


def test_a_version_1_file_is_migrated_on_load() -> None:
    raw = json.loads((LEGACY / RESULTS_NAME).read_text())
    assert raw["schema"] == "hellobench/1" and "impls" not in raw
    run = Run.load(LEGACY)
    assert run.extra["migrated"]["from"] == "hellobench/1"
    assert set(run.impls) == {r["impl"] for r in raw["results"]}
    assert run.impls["ebpf-xdp"].family == "eBPF" and run.impls["ebpf-xdp"].kernel_side
    assert "user-space-twin" in run.impls["blocking-c"].roles
    host = [r for r in run.rows if r.env == "host"]
    assert {(r.server_cpu, r.client_cpu) for r in host} == {(0, 1)}  # from its placement
    validate(run.to_json())  # it saves as the current schema


def test_a_version_1_file_renders_the_report_of_its_version_2_twin(tmp_path: Path) -> None:
    """The committed v1 fixture and the same fixture written for v2 give the same page,
    except for the one line that says from which version each file was read."""
    old_run = _copy_run(LEGACY, tmp_path / "v1", "run")
    new_run = _copy_run(BASE, tmp_path / "v2", "run")
    old = render_report(Run.load(old_run), tmp_path / "v1" / "report").read_text()
    new = render_report(Run.load(new_run), tmp_path / "v2" / "report").read_text()
    read_from = re.compile(r"<dt>read from</dt><dd>([^<]*)</dd>\n?")
    old_from, new_from = read_from.search(old), read_from.search(new)
    assert old_from and old_from.group(1).startswith("hellobench/1")
    assert new_from and new_from.group(1).startswith("hellobench/2")
    assert read_from.sub("", old) == read_from.sub("", new)


def test_the_migration_keeps_failed_pingpong_rows_with_their_configuration() -> None:
    raw = json.loads((LEGACY / RESULTS_NAME).read_text())
    raw["config"]["outstanding"] = 1  # what a version 1 run recorded
    failed = dict(raw["results"][0], status="failed", error="x", outstanding=None)
    raw["results"].append(failed)
    run = Run.from_json(raw)
    key = run.rows[0].configuration
    assert run.rows[-1].configuration == key
    assert len(run.groups(ok_only=False)[key]) == len(run.groups()[key]) + 1


def test_an_unknown_schema_is_refused() -> None:
    with pytest.raises(ResultsError, match="hellobench/99"):
        Run.from_json({"schema": "hellobench/99"})


# -- saving ----------------------------------------------------------------------------


def test_save_round_trips_and_marks_incomplete_runs(tmp_path: Path) -> None:
    run = Run.load(BASE)
    run.complete = False
    path = run.save(tmp_path)
    assert (tmp_path / INCOMPLETE_MARKER).exists()
    again = Run.load(tmp_path)
    assert again.rows == run.rows and again.impls == run.impls
    assert json.loads(path.read_text())["schema"] == SCHEMA_ID
    run.complete = True
    run.save(tmp_path)
    assert not (tmp_path / INCOMPLETE_MARKER).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files


def test_save_refuses_an_invalid_document(tmp_path: Path) -> None:
    run = Run.load(BASE)
    run.rows[0] = dataclasses.replace(run.rows[0], size=5)  # below the protocol minimum
    with pytest.raises(ResultsError, match="results/0"):
        run.save(tmp_path)
    assert not (tmp_path / RESULTS_NAME).exists()


DOCUMENTED_DEFAULTS = {
    "rx_cpu": "client",
    "idle": "default",
    "client_wait": "block",
    "arrivals": "uniform",
    "timing": "probed",
}


def _kept(written: object, again: object) -> bool:
    """True when every value in ``written`` is in ``again`` unchanged; added keys hold empty
    defaults (None, 0, [], {}), nested records, or the documented factor defaults."""
    if isinstance(written, dict) and isinstance(again, dict):
        extra = set(again) - set(written)
        return all(_kept(v, again.get(k)) for k, v in written.items()) and all(
            not again[k] or isinstance(again[k], dict) or DOCUMENTED_DEFAULTS.get(k) == again[k]
            for k in extra
        )
    return written == again


def test_rows_written_before_the_factors_read_as_the_suite_ran_them() -> None:
    raw = json.loads((BASE / RESULTS_NAME).read_text())["results"][0]
    assert "rx_cpu" not in raw and "idle" not in raw
    row = PhaseRow.from_json(raw)
    assert (row.rx_cpu, row.idle) == ("client", "default")
    steered = PhaseRow.from_json({**raw, "rx_cpu": "server", "idle": "poll"})
    assert (steered.configuration.rx_cpu, steered.configuration.idle) == ("server", "poll")


def test_rows_are_typed_and_round_trip() -> None:
    raw = json.loads((BASE / RESULTS_NAME).read_text())["results"]
    rows = [PhaseRow.from_json(r) for r in raw]
    for row, written in zip(rows, raw, strict=True):
        again = row.to_json()
        assert PhaseRow.from_json(again) == row
        assert _kept(written, again)  # every field kept as written (absent ones become None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rows[0].size = 1  # type: ignore[misc]


# -- the frame and the metric registry ---------------------------------------------------


def test_the_frame_has_one_row_per_phase_and_a_column_per_metric() -> None:
    run = Run.load(BASE)
    frame = run.frame()
    assert len(frame) == len(run.rows)
    assert set(CONFIG_FIELDS) | set(METRIC_NAMES) <= set(frame.columns)
    first = run.rows[0]
    assert frame.loc[0, "rtt_p50"] == first.latency_ns.p50
    assert frame.loc[0, "cpu_ns_per_req"] == first.per_request.cpu_ns.total


def test_every_metric_says_its_unit_direction_and_kind() -> None:
    for name in METRIC_NAMES:
        m = metric(name)
        assert m.unit and m.better in ("lower", "higher") and m.kind in ("time", "count", "rate",
                                                                          "share")  # fmt: skip
    assert metric("throughput_rps").better == "higher"
    assert metric("server_syscalls_per_req").kind == "count"
    with pytest.raises(ValueError, match="unknown metric"):
        metric("speed")


def test_medians_are_those_of_the_ok_trials() -> None:
    run = Run.load(BASE)
    table = medians(run.rows, ["rtt_p50"])
    for key, rows in grouped(run.rows).items():
        values = sorted(r.latency_ns.p50 for r in rows if r.latency_ns.p50 is not None)
        assert table[key].trials == len(rows)
        assert table[key].values["rtt_p50"] == pytest.approx(float(pd.Series(values).median()))


def test_configurations_apart_in_any_field_are_never_pooled() -> None:
    run = Run.load(BASE)
    row = next(r for r in run.rows if r.mode == "pingpong" and r.ok)
    rate = dataclasses.replace(row, mode="rate", outstanding=None, offered_rps=1000.0)
    variants = [
        rate,
        dataclasses.replace(rate, offered_rps=2000.0),  # --rate R1 --rate R2
        dataclasses.replace(row, outstanding=4),
        dataclasses.replace(row, server_cpu=row.client_cpu),
        dataclasses.replace(row, rx_cpu="server"),
        dataclasses.replace(row, idle="poll"),
    ]
    groups = grouped([row, *variants])
    assert len(groups) == 7
    # a rate given as a fraction is named by the fraction, whatever the maximum measured
    a = dataclasses.replace(rate, load_fraction=0.5, offered_rps=1000.0, trial=0)
    b = dataclasses.replace(rate, load_fraction=0.5, offered_rps=1100.0, trial=1)
    assert list(grouped([a, b]).values()) == [[a, b]]


# -- export ------------------------------------------------------------------------------


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )


def test_export_csv_writes_one_row_per_phase(tmp_path: Path) -> None:
    out = tmp_path / "phases.csv"
    proc = _bench("export", str(BASE), "--format", "csv", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(out)
    run = Run.load(BASE)
    assert len(table) == len(run.rows)
    assert list(table["impl"]) == [r.impl for r in run.rows]
    assert table["rtt_p50"].iloc[0] == run.rows[0].latency_ns.p50


def test_export_json_and_parquet_hold_the_same_table(tmp_path: Path) -> None:
    expected = export_frame(Run.load(BASE).rows)
    written = _bench("export", str(BASE), "--format", "parquet", "--out", str(tmp_path / "p"))
    assert written.returncode == 0, written.stderr
    parquet = pd.read_parquet(tmp_path / "p")
    proc = _bench("export", str(BASE), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    records = json.loads(proc.stdout)
    assert len(parquet) == len(records) == len(expected)
    assert list(parquet.columns) == list(records[0]) == list(expected.columns)
    assert parquet["throughput_rps"].tolist() == expected["throughput_rps"].tolist()


def test_export_of_parquet_to_stdout_is_refused() -> None:
    proc = _bench("export", str(BASE), "--format", "parquet")
    assert proc.returncode == 2 and "--out" in proc.stderr


# A published schema is never edited again: a change is a new version with a migration.
PUBLISHED_SCHEMAS = {
    "hellobench/1": "323f26de1c9aafd7763590dc467fbd40566fdb2150417a4755085857265b83f3",
    "hellobench/2": "21a063b8eef1d403205f0a7a35cd13ca3609182907c7236823bd4b9391156c66",
    "hellobench/3": "35f36aafb580fc0e8b30300671c17f05d9015a79ac1e30cb7a21f3231c6c436f",
    "hellobench/4": "58962c2148708500c014e5bb2ff125a599c8cf74a0d4b734a20ab3e3dea855dc",
    "hellobench/5": "a3a4038a3b10c6b4eb38204db9105cdd8b0af264397881a001cc1804498393ad",
    "hellobench/6": "ac760303e55073bd01ba1777db2176003e46a7d8464cda4853dab66faeeccbfe",
}


def test_published_schemas_are_never_edited() -> None:
    import hashlib

    from bench.results.schema import SCHEMA_FILES

    assert set(SCHEMA_FILES) == set(PUBLISHED_SCHEMAS)
    for version, path in SCHEMA_FILES.items():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest == PUBLISHED_SCHEMAS[version], f"{version} ({path.name}) was edited"


def _declared(node: dict[str, Any], defs: dict[str, Any]) -> set[str]:
    while "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[1]]
    return set(node.get("properties", {}))


def test_every_field_a_row_writes_is_declared_and_nothing_else() -> None:
    """The current schema declares exactly what the typed row writes, at the row and in
    each of its records (and admits nothing undeclared there)."""
    from bench.results.schema import schema

    current = dict(schema())
    defs = current["$defs"]
    row_schema = defs["row"]
    assert row_schema["additionalProperties"] is False
    for path in sorted(FIXTURES.glob("*/results.json")):
        for row in Run.load(path.parent).rows:
            written = row.to_json()
            assert set(written) <= _declared(row_schema, defs), path
            for name, value in written.items():
                declared = row_schema["properties"][name]
                if isinstance(value, dict) and "additionalProperties" not in declared:
                    assert set(value) <= _declared(declared, defs), (path, name)
    assert {f.name for f in dataclasses.fields(PhaseRow)} == _declared(row_schema, defs)
