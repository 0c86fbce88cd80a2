"""Phase conditions: receive steering (RPS) and the PM QoS idle limit are set for a phase,
undone after it, and undone after a SIGKILL too (RPS by ``bench cleanup`` from the ledger,
PM QoS by the kernel when the holder's descriptor closes).  A run measures every level
and records it in every row."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import PROJECT_ROOT
from bench.results.run import Run
from bench.runner.config import ConfigError, RunConfig
from bench.system import ledger
from bench.system.pm_qos import DEVICE, cpu_latency_held
from bench.system.rps import cpu_mask, read_masks, steered
from bench.topology import open_topology

LO_QUEUE = Path("/sys/class/net/lo/queues/rx-0/rps_cpus")
TIMEOUT_S = 120

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="sets RPS and PM QoS: needs root")
needs_two_cpus = pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two CPUs")


def _pm_qos_us() -> int:
    fd = os.open(DEVICE, os.O_RDONLY)
    try:
        value: int = struct.unpack("<i", os.read(fd, 4))[0]
        return value
    finally:
        os.close(fd)


@pytest.fixture
def own_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "ledger"
    folder.mkdir()
    monkeypatch.setenv("HELLOBENCH_LEDGER", str(folder))
    yield folder


def test_cpu_masks() -> None:
    assert (cpu_mask(None), cpu_mask(0), cpu_mask(1), cpu_mask(5)) == ("0", "1", "2", "20")


@needs_root
@needs_two_cpus
def test_lo_is_steered_for_the_body_and_restored(own_ledger: Path) -> None:
    before = LO_QUEUE.read_text().strip()
    with steered(None, "lo", 1):
        assert int(LO_QUEUE.read_text().strip().replace(",", ""), 16) == 0b10
        assert [r.kind for r in ledger.records()] == ["rps"]  # recorded before the write
    assert LO_QUEUE.read_text().strip() == before
    assert ledger.records() == []


@needs_root
@needs_two_cpus
def test_steering_is_restored_when_the_body_fails(own_ledger: Path) -> None:
    before = LO_QUEUE.read_text().strip()
    with pytest.raises(RuntimeError), steered(None, "lo", 1):
        raise RuntimeError("phase failed")
    assert LO_QUEUE.read_text().strip() == before


@needs_root
@needs_two_cpus
def test_the_server_end_of_veth_is_steered_inside_its_namespace(own_ledger: Path) -> None:
    with open_topology("veth") as topo:
        queues = read_masks(topo.server_netns, topo.server_interface)
        assert queues and all(int(m, 16) == 0 for m in queues.values())
        with steered(topo.server_netns, topo.server_interface, 1):
            inside = read_masks(topo.server_netns, topo.server_interface)
            assert all(int(m.replace(",", ""), 16) == 0b10 for m in inside.values())
        assert read_masks(topo.server_netns, topo.server_interface) == queues
    assert LO_QUEUE.read_text().strip().replace(",", "").strip("0") == ""  # lo untouched


@needs_root
def test_pm_qos_is_held_for_the_body_only() -> None:
    before = _pm_qos_us()
    with cpu_latency_held(0):
        assert _pm_qos_us() == 0
    assert _pm_qos_us() == before


def _holder(ledger_dir: Path) -> subprocess.Popen[str]:
    code = (
        "import sys, time\n"
        "from bench.system.pm_qos import cpu_latency_held\n"
        "from bench.system.rps import steered\n"
        "with steered(None, 'lo', 1), cpu_latency_held(0):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(60)\n"
    )
    env = {**os.environ, "HELLOBENCH_LEDGER": str(ledger_dir)}
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env, cwd=PROJECT_ROOT
    )


@needs_root
@needs_two_cpus
def test_a_killed_holder_leaves_nothing_after_cleanup(own_ledger: Path) -> None:
    rps_before, qos_before = LO_QUEUE.read_text().strip(), _pm_qos_us()
    proc = _holder(own_ledger)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        assert _pm_qos_us() == 0 and LO_QUEUE.read_text().strip() != rps_before
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _pm_qos_us() == qos_before  # the kernel dropped the request with the descriptor
    assert LO_QUEUE.read_text().strip() != rps_before  # RPS outlives its setter...
    env = {**os.environ, "HELLOBENCH_LEDGER": str(own_ledger)}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "cleanup"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr
    assert "removed rps host-lo" in done.stdout + done.stderr
    assert LO_QUEUE.read_text().strip() == rps_before  # ...until cleanup restores it
    assert list(own_ledger.glob("*.json")) == []


def test_levels_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--rx-cpu sideways"):
        RunConfig(out_root=tmp_path, levels={"rx_cpu": ("sideways",)})
    with pytest.raises(ConfigError, match="--idle deep"):
        RunConfig(out_root=tmp_path, levels={"idle": ("deep",)})
    with pytest.raises(ConfigError, match="--server-cpu"):
        RunConfig(out_root=tmp_path, levels={"rx_cpu": ("server",)}, server_cpu=None)
    with pytest.raises(ConfigError, match="repeat"):
        RunConfig(out_root=tmp_path, levels={"idle": ("poll", "poll")})


@needs_root
@needs_two_cpus
def test_a_run_measures_every_level_and_steering_moves_the_reply(tmp_path: Path) -> None:
    """ebpf-xdp on lo: without RPS the reply is built inside the client's own send, so the
    client never sleeps (≈0 switches per request); steered to the server CPU, the client
    waits for it and is woken (≥1 per request).  Counts, not times."""
    env = {**os.environ, "HELLOBENCH_LEDGER": str(tmp_path / "ledger")}
    (tmp_path / "ledger").mkdir()
    argv = [sys.executable, "-m", "bench", "run", "--impl", "ebpf-xdp", "--mode", "pingpong"]
    argv += ["--duration", "0.5", "--warmup", "0.1", "--trials", "1", "--no-calibrate"]
    argv += ["--env", "host", "--rx-cpu", "client", "--rx-cpu", "server"]
    argv += ["--idle", "default", "--idle", "poll", "--out", str(tmp_path / "out")]
    proc = subprocess.run(
        argv,
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S * 3,
    )
    if proc.returncode != 0 and "skip ebpf-xdp" in proc.stdout + proc.stderr:
        pytest.skip("ebpf-xdp cannot run here")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = Run.load(tmp_path / "out")
    levels = {(r.rx_cpu, r.idle): r for r in run.rows}
    assert set(levels) == {(rx, i) for rx in ("client", "server") for i in ("default", "poll")}
    assert all(r.ok for r in levels.values()), [r.error for r in levels.values()]
    written = json.loads((run.run_dir / "results.json").read_text())["results"]
    assert {(w["rx_cpu"], w["idle"]) for w in written} == set(levels)
    inline = levels["client", "default"].per_request.client_ctx_switches
    steered_ = levels["server", "default"].per_request.client_ctx_switches
    assert inline is not None and steered_ is not None
    assert inline < 0.2 and steered_ > 0.8, (inline, steered_)
    assert LO_QUEUE.read_text().strip().replace(",", "").strip("0") == ""  # RPS off again
