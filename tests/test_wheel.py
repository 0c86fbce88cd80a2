"""hellobench installed as a tool: the wheel built from this checkout, installed into a new
virtual environment and run from a folder outside the checkout, lists every impl (they
ship inside the package), measures and renders a report there; an empty registry is one
line on stderr and exit 2, never an empty list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bench import PROJECT_ROOT
from bench.impl.registry import manifests

pytestmark = [pytest.mark.slow]

INSTALL_TIMEOUT_S = 600
RUN_TIMEOUT_S = 900


def _uv(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "uv", *args], capture_output=True, text=True, cwd=cwd,
        timeout=INSTALL_TIMEOUT_S,
    )  # fmt: skip
    assert proc.returncode == 0, f"uv {' '.join(args)}:\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _uv("build", "--wheel", "--out-dir", str(out), str(PROJECT_ROOT))
    (built,) = out.glob("hellobench-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hellobench command of a new venv holding only the wheel and its dependencies."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    _uv("venv", "--python", sys.executable, str(venv))
    _uv("pip", "install", "--python", str(venv / "bin" / "python"), f"{wheel}[uvloop]")
    return venv / "bin" / "hellobench"


def _elsewhere(tmp_path: Path) -> dict[str, str]:
    """An environment that cannot see the checkout: no PYTHONPATH, HOME's cache kept."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HELLOBENCH_IMPLS")}
    env["PWD"] = str(tmp_path)
    return env


def test_the_wheel_carries_every_impl_folder(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    for name, manifest in manifests().items():
        folder = manifest.folder.name
        shipped = {n for n in names if n.startswith(f"bench/shipped_impls/{folder}/")}
        tracked = subprocess.run(
            ["git", "ls-files", f"impls/{folder}"], capture_output=True, text=True,
            cwd=PROJECT_ROOT, check=True,
        ).stdout.split()  # fmt: skip
        expected = {f"bench/shipped_impls/{p.removeprefix('impls/')}" for p in tracked}
        assert expected and expected <= shipped, name


def test_the_installed_tool_lists_every_impl_from_another_folder(
    installed: Path, tmp_path: Path
) -> None:
    proc = subprocess.run(
        [str(installed), "list", "--json"], capture_output=True, text=True, cwd=tmp_path,
        env=_elsewhere(tmp_path), timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    listed = {record["name"] for record in json.loads(proc.stdout)}
    assert listed == set(manifests())


def test_an_empty_registry_is_one_line_and_exit_2(installed: Path, tmp_path: Path) -> None:
    empty = tmp_path / "no-impls"
    empty.mkdir()
    env = _elsewhere(tmp_path) | {"HELLOBENCH_IMPLS": str(empty)}
    for argv in (["list"], ["list", "--json"], ["run", "--quick"]):
        proc = subprocess.run(
            [str(installed), *argv], capture_output=True, text=True, cwd=tmp_path, env=env,
            timeout=RUN_TIMEOUT_S,
        )  # fmt: skip
        assert proc.returncode == 2, (argv, proc.stdout, proc.stderr)
        assert proc.stdout == ""
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: no impl is registered"), lines
        assert str(empty) in lines[0]


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="a run pins CPUs and sets RPS: root")
def test_a_quick_run_from_another_folder_writes_its_results_and_report_there(
    installed: Path, tmp_path: Path
) -> None:
    proc = subprocess.run(
        [str(installed), "run", "--quick", "--impl", "blocking-c", "--no-calibrate",
         "--report"],
        capture_output=True, text=True, cwd=tmp_path, env=_elsewhere(tmp_path),
        timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (results,) = (tmp_path / "results").glob("*/results.json")
    (report,) = (tmp_path / "reports").glob("*/index.html")
    assert report.parent.name == results.parent.name
    assert f"report: {report}" in proc.stdout.replace("\n", "")
    assert "blocking-c" in report.read_text()
