"""A server that dies in the middle of a measured phase: its row says "failed" with an error
that names the cause, and the run goes on with the next impl.

The server is killed from outside, the way a crash would look: its pid is taken from the
ledger (a per-test HELLOBENCH_LEDGER) once the driver of the phase has started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import PROJECT_ROOT
from bench.impl.api import ImplError, RunningServer, ServerConfig
from bench.impl.registry import discover
from bench.results.run import RESULTS_NAME
from bench.results.schema import validate
from bench.system.processes import ProcessIdentity
from tests.conftest import free_udp_port

ENTRIES = discover()
WAIT_S = 120.0
POLL_S = 0.02
FIRST, SECOND = "blocking-py", "blocking-c"


def _records(ledger: Path) -> list[dict[str, Any]]:
    found = []
    for path in ledger.glob("*.json"):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # being replaced right now
    return found


def _started_processes(ledger: Path) -> list[dict[str, Any]]:
    """Process records whose process exists: a record is written before its spawn
    (pid still null) so that a crash in between leaves nothing unowned."""
    return [
        r
        for r in _records(ledger)
        if r.get("kind") == "process" and r.get("details", {}).get("pid") is not None
    ]


def _argv(record: dict[str, Any]) -> str:
    return " ".join(str(a) for a in record.get("details", {}).get("argv", []))


def wait_for_phase_of(ledger: Path, server_marker: str, done: threading.Event) -> int | None:
    """The pid of the server whose argv contains ``server_marker`` once a driver runs
    against it (both in the ledger), or None if ``done`` is set first."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and not done.is_set():
        records = _started_processes(ledger)
        servers = [r for r in records if server_marker in _argv(r)]
        drivers = [r for r in records if "hello-client" in _argv(r)]
        if servers and drivers:
            return int(servers[0]["details"]["pid"])
        time.sleep(POLL_S)
    return None


def kill(pid: int) -> None:
    if ProcessIdentity.of(pid) is not None:
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "ledger"
    path.mkdir()
    monkeypatch.setenv("HELLOBENCH_LEDGER", str(path))
    yield path
    subprocess.run(
        [sys.executable, "-m", "bench", "cleanup"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "HELLOBENCH_LEDGER": str(path)},
        capture_output=True,
        timeout=60,
    )


def _needs(*names: str) -> None:
    for name in names:
        if not ENTRIES[name].available:
            pytest.skip(f"{name}: {ENTRIES[name].unavailable}")


def test_server_killed_mid_phase_fails_its_row_and_the_run_goes_on(
    tmp_path: Path, ledger: Path
) -> None:
    _needs(FIRST, SECOND)
    out = tmp_path / "out"
    argv = [
        sys.executable, "-m", "bench", "run",
        "--impl", FIRST, "--impl", SECOND,
        "--mode", "pingpong", "--duration", "3", "--warmup", "0.2", "--trials", "1",
        "--no-calibrate", "--port", str(free_udp_port()), "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "HELLOBENCH_LEDGER": str(ledger), "COLUMNS": "200"}
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as sink:
        proc = subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env, stdout=sink, stderr=sink)
    done = threading.Event()
    try:
        pid = wait_for_phase_of(ledger, f"impls/{FIRST}/", done)
        assert pid is not None, "the first impl's phase never started"
        kill(pid)
        code = proc.wait(WAIT_S)
    finally:
        done.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT_S)
    log = log_path.read_text(errors="replace")
    assert code == 1, f"a failed row must make the run exit 1, got {code}:\n{log[-3000:]}"

    (results,) = out.glob(f"*/{RESULTS_NAME}")
    document = json.loads(results.read_text())
    validate(document)
    assert document["complete"] is True
    rows = {impl: [r for r in document["results"] if r["impl"] == impl] for impl in (FIRST, SECOND)}
    assert rows[FIRST] and rows[SECOND], document["results"]
    first = rows[FIRST][0]
    assert first["status"] == "failed"
    assert "server" in first["error"], first["error"]
    assert "exited" in first["error"] or "-9" in first["error"], first["error"]
    assert all(r["status"] == "ok" for r in rows[SECOND]), rows[SECOND]
    assert rows[SECOND][0]["replies"] > 0
    assert not list(ledger.glob("*.json")), "the run left ledger records"


def test_driver_killed_mid_phase_fails_its_row_and_the_run_goes_on(
    tmp_path: Path, ledger: Path
) -> None:
    """The measuring end dies instead (the C client, killed from outside): the row fails
    naming the driver, the server is stopped as usual, the next impl is measured."""
    _needs(FIRST, SECOND)
    out = tmp_path / "out"
    argv = [
        sys.executable, "-m", "bench", "run",
        "--impl", FIRST, "--impl", SECOND,
        "--mode", "pingpong", "--duration", "3", "--warmup", "0.2", "--trials", "1",
        "--no-calibrate", "--port", str(free_udp_port()), "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "HELLOBENCH_LEDGER": str(ledger), "COLUMNS": "200"}
    with (tmp_path / "run.log").open("wb") as sink:
        proc = subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env, stdout=sink, stderr=sink)
    done = threading.Event()
    try:
        assert wait_for_phase_of(ledger, f"impls/{FIRST}/", done) is not None
        drivers = [r for r in _started_processes(ledger) if "hello-client" in _argv(r)]
        assert drivers, "no driver in the ledger"
        kill(int(drivers[0]["details"]["pid"]))
        code = proc.wait(WAIT_S)
    finally:
        done.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT_S)
    log = (tmp_path / "run.log").read_text(errors="replace")
    assert code == 1, log[-3000:]
    (results,) = out.glob(f"*/{RESULTS_NAME}")
    document = json.loads(results.read_text())
    validate(document)
    first = [r for r in document["results"] if r["impl"] == FIRST]
    second = [r for r in document["results"] if r["impl"] == SECOND]
    assert first[0]["status"] == "failed"
    assert "driver" in first[0]["error"], first[0]["error"]
    assert second and all(r["status"] == "ok" for r in second), second
    assert not list(ledger.glob("*.json")), "the run left ledger records"


def test_measure_phase_with_a_server_killed_by_another_thread(tmp_path: Path, ledger: Path) -> None:
    """The runner's building block alone: bench.runner.phase.measure_phase against a server whose
    process is killed while the driver runs."""
    _needs(FIRST)
    from bench.driver.client import DriverConfig
    from bench.runner.phase import PhaseSpec, measure_phase

    impl = ENTRIES[FIRST].impl
    assert impl is not None
    port = free_udp_port()
    server = impl.start(ServerConfig(port=port))
    done = threading.Event()
    server_pid = server.accounting().pids[0]

    def killer() -> None:
        if wait_for_phase_of(ledger, f"--port {port}", done) is not None:
            kill(server_pid)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        spec = PhaseSpec.of(
            0, "userspace", env="host", topology="lo", impl=FIRST, mode="pingpong", size=64
        )
        dcfg = DriverConfig(
            mode="pingpong", addr="127.0.0.1", port=port, size=64, duration_s=2.0, warmup_s=0.2,
            timeout_s=0.2, sample_cap=100, seed=1,
        )  # fmt: skip
        row = measure_phase(spec, server, dcfg, tmp_path / "samples")
    finally:
        done.set()
        thread.join(WAIT_S)
        server.stop()
    assert row.status == "failed" and row.error is not None
    assert "server" in row.error, row.error
    assert "exited" in row.error or "-9" in row.error, row.error
    assert ProcessIdentity.of(server_pid) is None


def test_port_taken_fails_the_rows_with_the_cause(tmp_path: Path, ledger: Path) -> None:
    """A server that cannot start (its port is taken): failed rows that say why, exit 1,
    a complete results file, nothing left in the ledger."""
    _needs(SECOND)
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        port = squatter.getsockname()[1]
        out = tmp_path / "out"
        proc = subprocess.run(
            [
                sys.executable, "-m", "bench", "run", "--impl", SECOND, "--mode", "pingpong",
                "--duration", "0.5", "--trials", "1", "--no-calibrate",
                "--port", str(port), "--out", str(out),
            ],
            cwd=PROJECT_ROOT,
            env={**os.environ, "HELLOBENCH_LEDGER": str(ledger), "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=WAIT_S,
        )  # fmt: skip
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    (results,) = out.glob(f"*/{RESULTS_NAME}")
    document = json.loads(results.read_text())
    validate(document)
    assert document["complete"] is True
    rows = document["results"]
    assert rows and all(r["status"] == "failed" for r in rows)
    assert all("Address already in use" in r["error"] or "bind" in r["error"] for r in rows)
    assert not list(ledger.glob("*.json"))


def _stop_quietly(server: RunningServer) -> None:
    with contextlib.suppress(ImplError):
        server.stop()


@pytest.mark.root
@pytest.mark.bpf
@pytest.mark.parametrize("impl_name", ["ebpf-xdp", "ebpf-tc"])
def test_ebpf_program_detached_mid_phase(impl_name: str, tmp_path: Path, ledger: Path) -> None:
    """An eBPF reflector removed from its interface by someone else while the driver runs:
    the row fails and names the detachment.  Done in a veth namespace of the test's own, so
    that nothing on this host's loopback is touched."""
    if impl_name not in ENTRIES:
        pytest.skip(f"{impl_name} not registered")
    _needs(impl_name)
    from bench.driver.client import DriverConfig
    from bench.runner.phase import PhaseSpec, measure_phase
    from bench.topology import TopologyError, open_topology

    impl = ENTRIES[impl_name].impl
    assert impl is not None
    impl.prepare()
    port = free_udp_port()
    with contextlib.ExitStack() as stack:
        try:
            topo = stack.enter_context(open_topology("veth"))
        except TopologyError as exc:
            pytest.skip(f"veth topology: {exc}")
        server = impl.start(topo.server_config(port))
        stack.callback(_stop_quietly, server)
        assert server.health() is None
        ns, dev = topo.server_netns, topo.server_interface
        assert ns is not None
        # a bpf_link (XDP, tcx) is detached through the link; a netlink tc filter by tc
        link_id = int(getattr(getattr(server, "attachment", None), "link_id", 0))
        if link_id:
            detach = ["bpftool", "link", "detach", "id", str(link_id)]
        elif impl_name == "ebpf-xdp":
            detach = ["ip", "netns", "exec", ns, "ip", "link", "set", "dev", dev, "xdp", "off"]
        else:
            detach = ["ip", "netns", "exec", ns, "tc", "filter", "del", "dev", dev, "ingress"]
        done = threading.Event()

        def saboteur() -> None:
            if wait_for_phase_of(ledger, "hello-client", done) is not None:
                subprocess.run(detach, capture_output=True, timeout=30)

        thread = threading.Thread(target=saboteur)
        thread.start()
        try:
            spec = PhaseSpec.of(
                0, "ebpf", env="host", topology="veth", impl=impl_name, mode="pingpong", size=64
            )
            dcfg = DriverConfig(
                mode="pingpong", addr=topo.server_addr, port=port, size=64, duration_s=2.0,
                warmup_s=0.2, timeout_s=0.2, sample_cap=100, seed=1, netns=topo.client_netns,
            )  # fmt: skip
            row = measure_phase(spec, server, dcfg, tmp_path / "samples")
        finally:
            done.set()
            thread.join(WAIT_S)
    assert row.status == "failed" and row.error is not None
    assert "no longer attached" in row.error, row.error
