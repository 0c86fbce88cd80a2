"""One command at a time changes the host: a second run waits for the first, and the two
leave RPS masks and lo's sysctls exactly as they found them.

The runs conflict on purpose: the first steers lo's receive processing to CPU 1, the
second to CPU 0, and both serve afxdp-c, which holds lo's route_localnet and accept_local
at 1.  Interleaved, the second would save the first's values as "previous" and put them
back after the first had restored the originals.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from bench import PROJECT_ROOT
from bench.system import host_lock, rps, sysctl
from bench.system.cpus import allowed_cpus
from bench.system.ports import free_udp_port

WAIT_S = 300.0
POLL_S = 0.05
LO_SYSCTLS = ("net.ipv4.conf.lo.route_localnet", "net.ipv4.conf.lo.accept_local")

# holds the lock until its stdin closes; says "held" once it has it
HOLDER = """
import sys
from bench.system import host_lock
with host_lock.held("python -m bench holder-for-a-test", lambda line: None):
    print("held", flush=True)
    sys.stdin.read()
"""


def _state() -> tuple[dict[str, str], dict[str, str]]:
    return rps.read_masks(None, "lo"), {key: sysctl.read(None, key) for key in LO_SYSCTLS}


def test_a_second_holder_waits_and_names_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HELLOBENCH_LEDGER", str(tmp_path / "ledger"))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], cwd=PROJECT_ROOT, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    said: list[str] = []
    got = threading.Event()

    def second() -> None:
        with host_lock.held("second", said.append):
            got.set()

    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        waiter = threading.Thread(target=second, daemon=True)
        waiter.start()
        deadline = time.monotonic() + WAIT_S
        while not said and time.monotonic() < deadline:
            time.sleep(POLL_S)
        assert said == [
            f"waiting for pid {holder.pid} (python -m bench holder-for-a-test) to finish: "
            "one command at a time changes this host's settings"
        ]
        assert not got.is_set()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(WAIT_S)
    waiter.join(WAIT_S)
    assert got.is_set()


def test_a_dead_holder_releases_the_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELLOBENCH_LEDGER", str(tmp_path / "ledger"))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], cwd=PROJECT_ROOT, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    holder.kill()
    holder.wait(WAIT_S)
    said: list[str] = []
    with host_lock.held("after", said.append):
        pass
    assert said == []


def _run(tmp_path: Path, name: str, server_cpu: int, client_cpu: int) -> subprocess.Popen[str]:
    argv = [
        sys.executable, "-m", "bench", "run", "--impl", "afxdp-c", "--mode", "pingpong",
        "--rx-cpu", "server", "--server-cpu", str(server_cpu), "--client-cpu", str(client_cpu),
        "--duration", "1", "--warmup", "0.05", "--trials", "1", "--no-calibrate", "--env", "host",
        "--port", str(free_udp_port()), "--out", str(tmp_path / name),
    ]  # fmt: skip
    env = {**os.environ, "HELLOBENCH_LEDGER": str(tmp_path / "ledger"), "COLUMNS": "200"}
    return subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


@pytest.mark.slow
def test_two_runs_at_once_leave_rps_and_sysctls_as_they_found_them(tmp_path: Path) -> None:
    if not {0, 1} <= set(allowed_cpus()):
        pytest.skip("needs CPUs 0 and 1")
    before = _state()
    first = _run(tmp_path, "first", server_cpu=1, client_cpu=0)
    second: subprocess.Popen[str] | None = None
    try:
        deadline = time.monotonic() + WAIT_S
        steering = tmp_path / "ledger" / "rps--host-lo.json"
        while not steering.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(POLL_S)
        assert steering.exists(), "the first run never steered lo"
        # the first run is stopped while it holds the lock, so the second cannot find it
        # finished however slowly it starts; it goes on once the second says it waits
        os.kill(first.pid, signal.SIGSTOP)
        try:
            second = _run(tmp_path, "second", server_cpu=0, client_cpu=1)
            assert second.stderr is not None
            said = _first_line_with(second.stderr, "waiting for ")
        finally:
            os.kill(first.pid, signal.SIGCONT)
        out1, err1 = first.communicate(timeout=WAIT_S)
        out2, err2 = second.communicate(timeout=WAIT_S)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(WAIT_S)
    assert first.returncode == 0, out1[-2000:] + err1[-2000:]
    assert second.returncode == 0, out2[-2000:] + said + err2[-2000:]
    assert said.startswith(f"waiting for pid {first.pid} "), said + err2[-2000:]
    assert _state() == before


def _first_line_with(stream: IO[str], text: str) -> str:
    """Lines read up to and including the first that contains ``text`` (all, at EOF)."""
    lines: list[str] = []
    for line in stream:
        lines.append(line)
        if text in line:
            return line + "".join(lines[:-1])
    return "".join(lines)
