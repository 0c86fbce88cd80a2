"""The calibration records are built from typed measurements (bench/calibration): the
fidelity summary, the calibration and a cross-check write the keys results.json has always
had, every one of them registered (bench/host/metadata.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from bench.calibration import fidelity, record
from bench.calibration.crosscheck import CrossCheck
from bench.calibration.fidelity import Fidelity, FidelityUnavailable, Runs, Setup
from bench.calibration.record import Calibration
from bench.calibration.syscall import SYSCALL_ITERS
from bench.host import metadata

FIXTURE = Path(__file__).parent / "fixtures" / "runs" / "crash-negative-interval-lost-replies"


def _fidelity() -> Fidelity:
    runs = Runs()
    for rep in range(4):
        wobble = 1.0 + 0.01 * rep
        runs.our_p50.append(20_000.0 * wobble)
        runs.our_mean.append(21_000.0 * wobble)
        runs.our_min.append(9_000.0)
        runs.sp_p50.append(19_500.0 * (1.02 - 0.005 * rep))
        runs.sp_mean.append(20_500.0)
        runs.sp_min.append(8_800.0)
        runs.probe_p50.append(19_800.0 * wobble)
        runs.probe_sockperf_p50.append(19_000.0 + 100 * rep)
        runs.probe_unconnected_p50.append(19_300.0 + 50 * rep)
    runs.our_send += [400_000.0, 410_000.0]
    runs.sp_send += [240_000.0, 250_000.0]
    runs.our_send_srv += [300_000.0, 310_000.0]
    load = {"loadavg_1m": 0.5, "cpu_pressure_some_avg10": None}
    setup = Setup(duration_s=1, repetitions=2, rtt_repetitions=4)
    return Fidelity(setup, runs, ("ours_rtt: once",), load, load, {"x": "y"}, "3.7", "blocking-c")


def _recorded_fidelity_keys() -> set[str]:
    document = json.loads((FIXTURE / "results.json").read_text())
    return set(document["environments"]["host"]["calibration"]["driver_fidelity"])


def test_the_fidelity_record_keeps_its_keys_and_registers_every_one() -> None:
    made = _fidelity().record()
    assert set(made) == _recorded_fidelity_keys()
    assert metadata.FIDELITY.unregistered(made) == []
    assert set(made["runs"]) == set(json.loads((FIXTURE / "results.json").read_text())[
        "environments"]["host"]["calibration"]["driver_fidelity"]["runs"])  # fmt: skip
    missing = FidelityUnavailable("no sockperf").record()
    assert missing["available"] is False and missing["reason"] == "no sockperf"
    assert metadata.FIDELITY.unregistered(missing) == []


def test_the_summary_is_derived_from_the_repetitions() -> None:
    fid = _fidelity()
    made, runs = fid.record(), fid.runs
    paired = [a / b for a, b in zip(runs.our_p50, runs.sp_p50, strict=True)]
    assert made["rtt_ratio"] == pytest.approx(math.exp(sum(map(math.log, paired)) / 4))
    assert fid.rtt.ratio == made["rtt_ratio"] and list(fid.rtt.ci95 or ()) == made["rtt_ratio_ci95"]
    parts = fid.rtt_parts
    whole = ("driver_vs_probe", "server_vs_sockperf_server", "probe_vs_sockperf_client")
    assert math.prod(parts[n].ratio or 0.0 for n in whole) == pytest.approx(made["rtt_ratio"])
    matched = made["rtt_ratio"] / (parts["connected_vs_unconnected"].ratio or 0.0)
    assert made["rtt_ratio_socket_matched"] == pytest.approx(matched)
    assert made["send_ratio"] == fid.send_ratio == pytest.approx((400 / 240 + 410 / 250) / 2)
    assert made["rtt_within_5pct_verdict"] == fid.rtt.verdict()
    assert made["our_rtt_p50_ns"] == runs.median("our_p50")


def test_the_calibration_record_keeps_its_keys_and_registers_every_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(setup: Setup) -> Any:
        raise fidelity.FidelityError("sockperf exited")

    loops: list[tuple[int, float]] = []

    def null_syscall(iters: int) -> dict[str, float]:
        loops.append((iters, 0.0))
        return {"null_syscall_ns": 60.0}

    def context_switch(a: int, b: int, scale: float) -> dict[str, float]:
        loops.append((0, scale))
        return {"wakeup_ns": 9.0e3}

    monkeypatch.setattr(record, "measure_null_syscall", null_syscall)
    monkeypatch.setattr(record, "measure_context_switch", context_switch)
    monkeypatch.setattr(record, "compare_with_sockperf", broken)
    record.calibrate(client_cpu=0, server_cpu=1, fidelity=False, emulated=True)
    assert loops == [(int(SYSCALL_ITERS * record.EMULATED_SCALE), 0.0), (0, record.EMULATED_SCALE)]
    loops.clear()
    made = record.calibrate(client_cpu=0, server_cpu=1)
    assert loops == [(SYSCALL_ITERS, 0.0), (0, 1.0)]  # a fifth of each loop under emulation only
    assert made.null_syscall_ns == 60.0 and made.wakeup_ns == 9.0e3
    assert made.context_switch_ns is None
    assert isinstance(made.fidelity, FidelityUnavailable)
    assert made.fidelity.reason == "driver fidelity: sockperf exited" == made.errors[-1]
    written = made.record()
    document = json.loads((FIXTURE / "results.json").read_text())
    assert set(written) == set(document["environments"]["host"]["calibration"])
    assert metadata.CALIBRATION.unregistered(written) == []
    assert written["driver_fidelity"]["reason"] == made.fidelity.reason
    full = Calibration({"null_syscall_ns": 1.0}, {}, _fidelity()).record()
    assert metadata.FIDELITY.unregistered(full["driver_fidelity"]) == []


def test_a_cross_check_entry_registers_every_key() -> None:
    check = CrossCheck((50_000.0, 52_000.0, 51_000.0), (49_000.0, 50_000.0, 52_000.0),
                       (50 / 49, 52 / 50, 51 / 52))  # fmt: skip
    where = {"env": "host", "topology": "lo", "impl": "blocking-c", "rx_cpu": "client",
             "idle": "default", "size": 64}  # fmt: skip
    entry = {**where, **check.record()}
    assert metadata.CROSSCHECK.unregistered(entry) == []
    assert metadata.CROSSCHECK.unregistered({**where, "error": "no reply"}) == []
    assert entry["ratio"] == pytest.approx(50 / 49) and entry["within_tolerance"] is True
    (recorded, *_) = json.loads((FIXTURE / "results.json").read_text())["crosschecks"]
    assert set(entry) == set(recorded) and metadata.CROSSCHECK.unregistered(recorded) == []
