"""The CI regression guard: an unchanged tree passes, a slowed impl is flagged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench import PROJECT_ROOT

pytestmark = pytest.mark.slow

SLOW_BLOCKING_C = "delay_ns=300000"  # blocking-c spins 300 µs before every reply


def regress(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", "regress", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=PROJECT_ROOT,
    )


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("regress")
    proc = regress("--record", "--baseline", str(root / "baseline"), "--out", str(root / "runs"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (root / "baseline" / "results.json").exists()
    return root / "baseline"


def test_unchanged_tree_passes(baseline: Path, tmp_path: Path) -> None:
    proc = regress("--baseline", str(baseline), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "REGRESSION" not in proc.stdout


def test_slowed_impl_is_flagged(baseline: Path, tmp_path: Path) -> None:
    proc = regress(
        "--baseline", str(baseline), "--out", str(tmp_path), "--server-option", SLOW_BLOCKING_C
    )
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    flagged = [line for line in proc.stdout.splitlines() if line.startswith("REGRESSION")]
    assert flagged, proc.stdout[-3000:]
    assert all("blocking-c" in line for line in flagged), flagged


def test_committed_baseline_is_a_valid_guard_run() -> None:
    from bench.impl.registry import role_holder, role_holders
    from bench.results.run import Run

    run = Run.load(PROJECT_ROOT / "results" / "baseline")
    measured = {row.impl for row in run.rows if row.ok}
    assert set(role_holders("guard")) <= measured
    assert role_holder("guard-reference") in measured
    trials = [row for row in run.rows if row.impl == "blocking-c"]
    assert len(trials) == 5
