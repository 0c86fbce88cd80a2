"""A results file is input from anywhere (a CI artifact, a colleague's run): its run id
never names a path, and none of its strings reaches the report's markup unescaped."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from bench import PROJECT_ROOT
from bench.report.figures import safe_id
from bench.report.render import render_report
from bench.results.run import Run
from bench.results.schema import ResultsError

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "runs" / "fixture-base" / "results.json"
SCRIPT = '"><script>alert(1)</script><x a="'
HOSTILE_ENV = f"env{SCRIPT}"
HOSTILE_IMPL = f"impl{SCRIPT}"


def _document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(FIXTURE.read_text())
    return loaded


def _write(tmp_path: Path, document: dict[str, Any]) -> Path:
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "results.json").write_text(json.dumps(document))
    return run


@pytest.mark.parametrize("run_id", ["../../../../tmp/hb-escape", "/tmp/hb-escape", "..", "a/b"])
def test_a_run_id_that_is_a_path_is_refused(tmp_path: Path, run_id: str) -> None:
    document = _document()
    document["run_id"] = run_id
    folder = _write(tmp_path, document)
    with pytest.raises(ResultsError, match="is not a run id"):
        Run.load(folder)
    done = subprocess.run(
        [sys.executable, "-m", "bench", "report", str(folder)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not Path("/tmp/hb-escape").exists()


def test_the_report_folder_is_checked_even_for_a_run_built_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bench.report.render.work_root", lambda: tmp_path)
    run = Run.load(FIXTURE.parent)
    run.run_id = "../outside"
    with pytest.raises(ResultsError, match="outside"):
        render_report(run)
    assert not (tmp_path / "outside").exists()


def _hostile() -> dict[str, Any]:
    """The fixture with markup in every kind of string a results file carries: an
    environment's name, an impl's name, notes, errors, skip reasons, the command."""
    text = json.dumps(_document())
    text = text.replace('"host"', json.dumps(HOSTILE_ENV))
    text = text.replace('"asyncio-py"', json.dumps(HOSTILE_IMPL))
    document: dict[str, Any] = json.loads(text)
    document["config"]["command"] = f"python -m bench run {SCRIPT}"
    for row in document["results"][:20]:
        row["metric_notes"] = [f"note {SCRIPT}"]
        if row["status"] == "failed":
            row["error"] = f"error {SCRIPT}"
    document["skipped"] = [{"impl": HOSTILE_IMPL, "env": HOSTILE_ENV, "reason": SCRIPT}]
    return document


def test_no_string_of_a_results_file_reaches_the_markup(tmp_path: Path) -> None:
    run = Run.load(_write(tmp_path, _hostile()))
    assert HOSTILE_ENV in run.env_names and HOSTILE_IMPL in run.impls
    page = render_report(run, tmp_path / "out").read_text()
    assert "<script" not in page.lower()
    assert SCRIPT not in page
    assert "&lt;script&gt;" in page  # shown, escaped
    svgs = re.findall(r"<svg\b.*?</svg>", page, flags=re.S)
    assert svgs
    for svg in svgs:  # inserted as markup: their ids are restricted, their text escaped XML
        for value in re.findall(r'\bid="([^"]*)"', svg):
            assert re.fullmatch(r"[A-Za-z0-9_.:-]+", value), value
        ET.fromstring(svg)


def test_safe_ids_keep_two_names_apart() -> None:
    assert safe_id("cdf-host-pingpong") == "cdf-host-pingpong"
    a, b = safe_id('x"y'), safe_id("x<y")
    assert a != b and re.fullmatch(r"[A-Za-z0-9_-]+", a) and re.fullmatch(r"[A-Za-z0-9_-]+", b)
