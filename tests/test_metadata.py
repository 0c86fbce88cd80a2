"""The metadata key registry (bench/host/metadata.py): every key the suite writes about a
machine is registered with its type, the machine's identity is the registry's identity
keys, and values are shown through it, unknown keys raw."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from bench.host import metadata
from bench.host.description import collect_environment
from bench.host.identity import MachineKey
from bench.report.render import render_report
from bench.results.run import Run

FIXTURES = Path(__file__).parent / "fixtures" / "runs"


def test_the_environment_record_writes_only_registered_keys() -> None:
    record = collect_environment("host", "native", {"server_cpu": 1, "client_cpu": 0})
    assert metadata.ENVIRONMENT.unregistered(record) == []
    there = {**record, "nic": {"interface": "eth0"}, "target": "u@h", "address": "10.0.0.2"}
    assert metadata.SERVER_HOST.unregistered({**there, "interface": "eth0"}) == []


def test_an_unregistered_or_mistyped_key_is_named() -> None:
    record = {"kernel": "6.1", "cpu_count": "two", "gpu": "none", "emulated": 1}
    assert metadata.ENVIRONMENT.unregistered(record) == ["cpu_count: str", "gpu", "emulated: int"]


def test_the_machine_key_s_fields_are_the_registry_s_identity_keys() -> None:
    identity = tuple(k.name for k in metadata.ENVIRONMENT.values() if k.identity)
    assert tuple(f.name for f in dataclasses.fields(MachineKey)) == identity == metadata.IDENTITY
    assert metadata.ACCEL in metadata.ENVIRONMENT and not metadata.ENVIRONMENT["accel"].identity


def test_a_value_is_shown_with_its_unit_and_its_formatter() -> None:
    assert metadata.CALIBRATION["null_syscall_ns"].format(61.5) == "61.5 ns"
    assert metadata.CALIBRATION["wakeup_ns"].format(12345.6) == "12,346 ns"
    assert metadata.ENVIRONMENT["pm_qos_cpu_latency_us"].format(55) == "55 µs"
    assert metadata.ENVIRONMENT["pm_qos_cpu_latency_us"].format(2_000_000_000) == (
        "no limit requested"
    )
    assert metadata.FIDELITY["rtt_ratio_ci95"].format([0.981, 1.04]) == "[0.981, 1.040]"
    assert metadata.CALIBRATION["null_syscall_ns"].format(None) == metadata.NOT_MEASURED


def test_unknown_keys_are_shown_raw_after_the_registered_ones() -> None:
    rows = metadata.ENVIRONMENT.rows(
        {"gpu": {"model": "<b>x</b>"}, "kernel": "6.1", "mitigations": {"spectre_v2": "off"}}
    )
    assert rows == [
        ("kernel", "6.1"),
        ("mitigation: spectre_v2", "off"),
        ("gpu", "model=<b>x</b>"),
    ]


def test_a_value_of_the_wrong_shape_is_shown_not_raised() -> None:
    odd = {"cpuidle": "none", "clocksource": 3, "virtualization": [1], "pm_qos_cpu_latency_us":
           "x", "mitigations": "all", "server_host": "?", "placement": [], "nic": None}  # fmt: skip
    rows = dict(metadata.ENVIRONMENT.rows(odd))
    assert rows["cpuidle"] == "none" and rows["mitigations"] == "all"
    assert rows["PM QoS CPU latency"].startswith("— (not readable")


def test_an_old_results_file_with_unknown_keys_renders_them_escaped(tmp_path: Path) -> None:
    document = json.loads((FIXTURES / "legacy-v1" / "results.json").read_text())
    host = document["environments"]["host"]
    host["gpu<script>"] = "<script>alert(1)</script>"
    host["calibration"]["future_ns"] = {"<b>": 1.5}
    host["calibration"]["driver_fidelity"]["odd"] = ["<i>", None]
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(document))
    page = render_report(Run.load(folder), tmp_path / "out").read_text()
    assert "<script" not in page and "<b>" not in page and "<i>" not in page
    assert "<dt>gpu&lt;script&gt;</dt><dd>&lt;script&gt;alert(1)&lt;/script&gt;</dd>" in page
    assert "<dt>future_ns</dt><dd>&lt;b&gt;=1.5</dd>" in page
    assert "<dt>odd</dt>" in page
    # registered values are shown with their units
    null = host["calibration"]["null_syscall_ns"]
    assert (
        f"<dt>null syscall</dt><dd>{metadata.CALIBRATION['null_syscall_ns'].format(null)}" in page
    )
    assert "<dt>our_rtt_p50_ns</dt><dd>14,300 ns</dd>" in page


def test_the_agent_s_describe_reply_writes_only_registered_keys() -> None:
    from bench.remote.agent import Agent

    reply = json.loads(Agent("127.0.0.1").handle(json.dumps({"op": "describe"})))
    assert reply["ok"], reply
    there = {**reply["environment"], "target": "t", "address": "127.0.0.1", "interface": "lo"}
    assert metadata.SERVER_HOST.unregistered(there) == []


def test_every_recorded_environment_key_is_registered() -> None:
    """The results files kept as fixtures were written by the suite: each of their keys is
    one the registry knows, of the type it says."""
    files = sorted(Path(__file__).parent.glob("fixtures/**/results.json"))
    assert files
    for file in files:
        for name, env in json.loads(file.read_text())["environments"].items():
            where = f"{file.parent.name}/{name}"
            assert metadata.ENVIRONMENT.unregistered(env) == [], where
            calibration = env.get("calibration") or {}
            assert metadata.CALIBRATION.unregistered(calibration) == [], where
            fid = calibration.get("driver_fidelity") or {}
            assert metadata.FIDELITY.unregistered(fid) == [], where


def test_a_formatter_that_cannot_read_a_value_shows_it_raw() -> None:
    odd = {
        "cpuidle": {"states": 5},
        "clocksource": {"available": 7},
        "pm_qos_cpu_latency_us": 1e300,
    }
    rows = dict(metadata.ENVIRONMENT.rows(odd))
    assert rows["cpuidle"] == "states=5"
    assert rows["clocksource"].startswith("None (available: ")
    assert rows["PM QoS CPU latency"] == "no limit requested"
