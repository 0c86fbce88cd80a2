"""How the client waits for replies (``--client-wait``): block sleeps in the kernel, spin
busy-polls and is never woken.  Both answer alike; the count that tells them apart is the
client's context switches per request.  No timing thresholds: counts only.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bench.cli.run import _mode_label
from bench.driver.client import DriverConfig, DriverResult, driver_binary, run_driver
from bench.driver.modes import Mode
from bench.results.rows import Configuration, PhaseRow
from bench.results.run import Run
from bench.runner.config import ConfigError, RunConfig
from bench.runner.in_guest import guest_args
from bench.runner.phase import PhaseSpec
from bench.system.ports import free_udp_port
from tests.test_driver import Server

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def correct() -> Iterator[Server]:
    srv = Server("correct")
    try:
        yield srv
    finally:
        srv.stop()


def _voluntary_per_request(r: DriverResult) -> float:
    return r.client_rusage["voluntary_ctx_switches"] / max(r.requests, 1)


# ---- (a) spinning answers like blocking -------------------------------------------------


@pytest.mark.parametrize("mode", ["pingpong", "rate", "flood"])
def test_spinning_client_counts_replies_as_blocking_does(correct: Server, mode: Mode) -> None:
    extra: dict[str, Any] = {"rate_rps": 2000.0} if mode == "rate" else {}
    if mode == "flood":
        extra["batch"] = 4  # a Python server keeps up with small bursts
    r = run_driver(
        DriverConfig(mode=mode, port=correct.port, max_requests=200, duration_s=60.0,
                     warmup_s=0.05, timeout_s=1.0, wait="spin", **extra)
    )  # fmt: skip
    assert r.requests == 200
    if mode == "flood":
        # As fast as it can: a Python server may drop some; nothing else may go wrong.
        assert r.replies > 0
    else:
        assert r.replies == 200 and r.lost == 0
    assert r.lost == r.requests - r.replies
    assert r.corrupt == r.duplicates == r.reordered == r.counts["stale"] == 0
    assert r.histogram.get_total_count() == r.requests
    # It never slept: at most a stray voluntary switch, not one per request (blocking's).
    assert _voluntary_per_request(r) < 0.2


def test_spinning_short_requests_match_by_order(correct: Server) -> None:
    r = run_driver(
        DriverConfig(mode="pingpong", port=correct.port, size=6, max_requests=100,
                     duration_s=60.0, warmup_s=0.0, timeout_s=1.0, wait="spin")
    )  # fmt: skip
    assert r.requests == r.replies == 100 and r.lost == 0 and r.corrupt == 0
    assert _voluntary_per_request(r) < 0.2


def test_spinning_client_still_times_out() -> None:
    """Against a silent port every request is lost at the timeout, spin or not."""
    port = free_udp_port()
    r = run_driver(
        DriverConfig(mode="pingpong", port=port, max_requests=3, duration_s=60.0,
                     warmup_s=0.0, timeout_s=0.05, wait="spin", sample_cap=0)
    )  # fmt: skip
    assert r.requests == 3 and r.replies == 0 and r.lost == 3
    assert r.timeouts == 3
    assert r.histogram.get_total_count() == 3


def test_wait_reaches_the_client(correct: Server, tmp_path: Path) -> None:
    """The level is a C option: the client's own results say which it ran."""
    for wait in ("block", "spin"):
        out = tmp_path / f"{wait}.json"
        cfg = DriverConfig(mode="rate", port=correct.port, rate_rps=500.0, max_requests=20,
                           duration_s=5.0, warmup_s=0.0, wait=wait)  # fmt: skip
        args = cfg.arguments()
        assert ("--wait=spin" in args) == (wait == "spin")
        proc = subprocess.run(
            [str(driver_binary()), "--no-handshake", *args, f"--out={out}",
             f"--samples-out={tmp_path / 'samples'}", "--wait", wait],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert json.loads(out.read_text())["config"]["wait"] == wait


# ---- (b) the count that proves it spins ------------------------------------------------


def test_spin_is_never_woken_where_block_is(tmp_path: Path) -> None:
    """One run, both levels, against one user-space server: per request the blocking
    client is switched out about once (it sleeps for every reply), the spinning one not."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--impl", "blocking-c", "--mode", "pingpong",
         "--client-wait", "block", "--client-wait", "spin", "--duration", "0.5",
         "--trials", "1", "--no-calibrate", "--env", "host", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (results,) = tmp_path.glob("*/results.json")
    rows = {row.client_wait: row for row in Run.load(results).rows}
    assert set(rows) == {"block", "spin"}
    for row in rows.values():
        assert row.ok and row.replies > 0 and row.lost == 0
    block = rows["block"].per_request.client_ctx_switches
    spin = rows["spin"].per_request.client_ctx_switches
    assert block is not None and spin is not None
    assert block >= 0.8
    assert spin < 0.2


# ---- (c) configuration ---------------------------------------------------------------------


def test_bad_wait_is_refused_by_the_driver_config() -> None:
    with pytest.raises(ValueError):
        DriverConfig(mode="pingpong", wait="doze")
    assert "--wait=spin" in DriverConfig(mode="flood", wait="spin").arguments()
    assert not any(a.startswith("--wait") for a in DriverConfig(mode="flood").arguments())


@pytest.mark.parametrize("args", [["--wait", "doze"], ["--busy-poll", "--wait", "block"]])
def test_binary_rejects_a_bad_wait_with_status_2(args: list[str]) -> None:
    proc = subprocess.run(
        [str(driver_binary()), "--no-handshake", *args],
        capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "wait" in proc.stderr


@pytest.mark.parametrize("waits", [("doze",), ("block", "block"), ()])
def test_run_config_refuses_bad_or_repeated_levels(tmp_path: Path, waits: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError):
        RunConfig(out_root=tmp_path, levels={"client_wait": waits})


@pytest.mark.parametrize("levels", [["doze"], ["block", "block"]])
def test_cli_exits_2_on_a_bad_or_repeated_level(tmp_path: Path, levels: list[str]) -> None:
    given = [arg for level in levels for arg in ("--client-wait", level)]
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--impl", "blocking-c", "--env", "host",
         "--out", str(tmp_path), *given],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "client-wait" in proc.stderr + proc.stdout
    assert not list(tmp_path.glob("*/results.json"))


def test_levels_go_to_the_guest_and_into_the_rows(tmp_path: Path) -> None:
    cfg = RunConfig(out_root=tmp_path, levels={"client_wait": ("block", "spin")})
    args = guest_args(cfg, tmp_path / "vm")
    written = json.loads(Path(args[args.index("--config") + 1]).read_text())
    assert written["levels"]["client_wait"] == ["block", "spin"]
    spec = PhaseSpec.of(0, "userspace", env="host", topology="lo", impl="x", mode="pingpong",
                        size=64, client_wait="spin")  # fmt: skip
    row = spec.row("ok")
    blocking = replace(spec, configuration=replace(spec.configuration, client_wait="block"))
    assert spec.key != blocking.key
    assert PhaseRow.from_json(row.to_json()).client_wait == "spin"
    assert row.configuration.client_wait == "spin"
    assert "spin" in _mode_label(row.configuration)
    older = row.to_json()
    del older["client_wait"]
    assert PhaseRow.from_json(older).client_wait == "block"
    plain = Configuration(env="h", topology="lo", impl="x", mode="pingpong", size=64)
    assert plain.client_wait == "block"


def test_the_factor_levels_are_the_drivers_waits() -> None:
    from bench.driver.client import WAITS
    from bench.factors import factor

    assert set(factor("client_wait").levels) == set(WAITS)
