"""An owned child is in the ledger before it exists: a run killed between the fork and the
record of the pid still leaves nothing behind after the sweep."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from bench.system import ledger
from bench.system.owned import CLEANER, KIND, OWNER_ENV, OwnedProcess

# a run that records the child (token only, as OwnedProcess does first), starts it, and
# dies by SIGKILL before it could record the pid
DIES_BETWEEN_FORK_AND_RECORD = f"""
import os, signal, subprocess, sys
from bench.system import ledger
token = "t" + os.urandom(6).hex()
ledger.record({KIND!r}, "sleeper-" + token, {CLEANER!r}, pid=None, token=token,
              argv=["sleep", "60"], scratch=None)
child = subprocess.Popen(["sleep", "60"], env={{**os.environ, {OWNER_ENV!r}: token}},
                         start_new_session=True, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
print(child.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _running(pid: int) -> bool:
    """``pid`` runs (a zombie waiting for its reaper does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def own_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "ledger"
    monkeypatch.setenv("HELLOBENCH_LEDGER", str(folder))
    return folder


def test_a_child_started_before_its_pid_was_recorded_is_swept(own_ledger: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", DIES_BETWEEN_FORK_AND_RECORD],
        capture_output=True, text=True, timeout=60, env=os.environ.copy(),
    )  # fmt: skip
    assert proc.returncode == -9, proc.stderr
    pid = int(proc.stdout.split()[0])
    try:
        assert _running(pid)
        pending = [r for r in ledger.records() if r.kind == KIND]
        assert len(pending) == 1 and pending[0].details["pid"] is None
        lines = ledger.sweep()
        assert any("removed process sleeper-" in line for line in lines), lines
        assert not _running(pid)
        assert not ledger.records()
    finally:
        if _running(pid):
            psutil.Process(pid).kill()


def test_an_owned_child_carries_its_token_and_is_released(own_ledger: Path) -> None:
    owned = OwnedProcess(["sleep", "60"], name="sleeper")
    try:
        (rec,) = [r for r in ledger.records() if r.kind == KIND]
        assert rec.details["pid"] == owned.pid
        token = rec.details["token"]
        assert psutil.Process(owned.pid).environ()[OWNER_ENV] == token
        assert rec.ident == f"sleeper-{token}"
    finally:
        owned.stop()
    assert not ledger.records()


def test_a_child_that_cannot_start_leaves_no_record(own_ledger: Path) -> None:
    with pytest.raises(FileNotFoundError):
        OwnedProcess(["/nonexistent/hellobench-no-such-binary"], name="missing")
    assert not ledger.records()
