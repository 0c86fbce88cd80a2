"""``python -m bench run`` as the tests start it: a subprocess with its own ledger, its
results read back with the library."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench import PROJECT_ROOT
from bench.results.run import Run

RUN_TIMEOUT_S = 300


def bench_run(tmp_path: Path, args: list[str], timeout: float = RUN_TIMEOUT_S) -> Run:
    """Run ``bench run ARGS --out tmp_path/out`` and load what it wrote (the run must pass)."""
    ledger = tmp_path / "ledger"
    ledger.mkdir(exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "run", *args, "--out", str(tmp_path / "out")],
        cwd=PROJECT_ROOT,
        env={**os.environ, "HELLOBENCH_LEDGER": str(ledger)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Run.load(tmp_path / "out")
