"""hello-client's options come from one table (bench/native/hc_options.c) that parses argv,
prints the usage text and prints the limits (``--limits``) that DriverConfig checks
against, so no limit is kept twice."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from bench.driver import client
from bench.driver.client import (
    LIMITS_SCHEMA,
    SOURCES,
    ClientLimits,
    DriverConfig,
    client_limits,
    driver_binary,
    read_limits,
)
from bench.native.build import NATIVE_DIR

OPTIONS_C = NATIVE_DIR / "hc_options.c"
TABLE_ENTRY = re.compile(r'\[OPT_\w+\] = \{ "([a-z-]+)", (OPT_[A-Z]+)')
LIMITED_KINDS = {"OPT_UINT", "OPT_REAL", "OPT_CHOICE"}
UINT64_MAX = 2**64 - 1


def table() -> dict[str, str]:
    """The option table: long name -> kind, in table order."""
    entries = TABLE_ENTRY.findall(OPTIONS_C.read_text())
    assert len(entries) >= 20, "the option table was not found in hc_options.c"
    return dict(entries)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(driver_binary()), *args],
        capture_output=True,
        text=True,
        timeout=10,
        stdin=subprocess.DEVNULL,
    )


def _limits_json() -> dict[str, object]:
    proc = _run("--limits")
    assert proc.returncode == 0, proc.stderr
    raw = json.loads(proc.stdout)
    assert isinstance(raw, dict)
    return raw


def test_the_client_is_built_from_all_its_parts() -> None:
    names = {path.name for path in SOURCES}
    assert "hello_client.c" in names
    for part in ("hc_options.c", "hc_modes.c", "hc_histogram.c", "hc_results.c"):
        assert part in names


def test_limits_list_every_limited_option_of_the_table() -> None:
    raw = _limits_json()
    assert raw["schema"] == LIMITS_SCHEMA
    options = raw["options"]
    assert isinstance(options, dict)
    assert list(options) == [name for name, kind in table().items() if kind in LIMITED_KINDS]
    assert options["mode"] == {"choices": ["pingpong", "rate", "flood"]}
    assert options["wait"] == {"choices": ["block", "spin"]}
    assert options["arrivals"] == {"choices": ["uniform", "poisson"]}
    assert options["port"] == {"min": 1, "max": 65535}


def test_usage_lists_every_option_of_the_table() -> None:
    proc = _run("--help")
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: hello-client ")
    listed = re.findall(r"--([a-z-]+)", proc.stdout)
    assert listed == list(table())


def test_every_limit_printed_is_the_one_enforced() -> None:
    options = _limits_json()["options"]
    assert isinstance(options, dict)
    for name, limit in options.items():
        if "choices" in limit:
            proc = _run("--no-handshake", f"--{name}=no-such-choice")
            assert proc.returncode == 2 and f"bad {name}" in proc.stderr, (name, proc.stderr)
            continue
        high = limit["max"]
        if isinstance(high, int) and high == UINT64_MAX:
            over = str(UINT64_MAX + 1)
        elif isinstance(high, int):
            over = str(high + 1)
        else:
            over = repr(float(high) * 1.5)
        proc = _run("--no-handshake", f"--{name}={over}")
        assert proc.returncode == 2, (name, over, proc.stderr)
        assert f"bad {name}" in proc.stderr, (name, proc.stderr)


def test_driver_config_takes_its_limits_from_the_binary() -> None:
    limits = client_limits()
    options = _limits_json()["options"]
    assert isinstance(options, dict)
    assert limits == ClientLimits(
        max_duration_s=float(options["duration"]["max"]),
        max_rate_rps=float(options["rate"]["max"]),
        max_outstanding=options["outstanding"]["max"],
        max_batch=options["batch"]["max"],
        max_sample_cap=options["sample-cap"]["max"],
        max_ordered_cap=options["ordered-cap"]["max"],
    )
    DriverConfig(mode="flood", batch=limits.max_batch, sample_cap=limits.max_sample_cap)
    DriverConfig(mode="pingpong", outstanding=limits.max_outstanding)
    DriverConfig(mode="rate", rate_rps=limits.max_rate_rps, duration_s=limits.max_duration_s)
    with pytest.raises(ValueError, match=re.escape(f"batch must be 1..{limits.max_batch}")):
        DriverConfig(mode="flood", batch=limits.max_batch + 1)
    most = limits.max_outstanding
    with pytest.raises(ValueError, match=re.escape(f"outstanding must be 1..{most}")):
        DriverConfig(mode="pingpong", outstanding=limits.max_outstanding + 1)
    cap = limits.max_sample_cap
    with pytest.raises(ValueError, match=re.escape(f"sample_cap must be 0..{cap}")):
        DriverConfig(mode="pingpong", sample_cap=limits.max_sample_cap + 1)
    with pytest.raises(ValueError, match="duration_s must be > 0 and <= 86400"):
        DriverConfig(mode="pingpong", duration_s=limits.max_duration_s * 2)
    with pytest.raises(ValueError, match=r"rate_rps <= 1e\+09"):
        DriverConfig(mode="rate", rate_rps=limits.max_rate_rps * 2)


def test_driver_config_follows_a_changed_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    small = ClientLimits(
        max_duration_s=10.0,
        max_rate_rps=100.0,
        max_outstanding=4,
        max_batch=8,
        max_sample_cap=20000,
        max_ordered_cap=1 << 20,
    )
    monkeypatch.setattr(client, "client_limits", lambda: small)
    DriverConfig(mode="flood", batch=8)
    with pytest.raises(ValueError, match=re.escape("batch must be 1..8, not 9")):
        DriverConfig(mode="flood", batch=9)
    with pytest.raises(ValueError, match=re.escape("outstanding must be 1..4")):
        DriverConfig(mode="pingpong", outstanding=5, batch=8)
    with pytest.raises(ValueError, match="rate_rps <= 100"):
        DriverConfig(mode="rate", rate_rps=101.0, batch=8)
    with pytest.raises(ValueError, match="duration_s must be > 0 and <= 10"):
        DriverConfig(mode="pingpong", duration_s=11.0, batch=8)
    with pytest.raises(ValueError, match="warmup_s"):
        DriverConfig(mode="pingpong", warmup_s=11.0, batch=8)
    with pytest.raises(ValueError, match=re.escape("sample_cap must be 0..20000")):
        DriverConfig(mode="pingpong", sample_cap=20001, batch=8)


def test_limits_are_read_once_per_binary() -> None:
    binary = driver_binary()
    first = read_limits(binary)
    hits = read_limits.cache_info().hits
    assert read_limits(binary) is first
    assert read_limits.cache_info().hits == hits + 1


@pytest.mark.parametrize(
    "raw",
    [
        {"schema": "other/1", "options": {}},
        {"schema": LIMITS_SCHEMA, "options": {}},
        {
            "schema": LIMITS_SCHEMA,
            "options": {
                "duration": {"max": 1},
                "warmup": {"max": 2},
                "timeout": {"max": 1},
                "rate": {"max": 1},
                "outstanding": {"max": 1},
                "batch": {"max": 1},
                "sample-cap": {"max": 1},
            },
        },
    ],
)
def test_a_document_that_is_not_the_limits_is_refused(raw: dict[str, object]) -> None:
    with pytest.raises((ValueError, KeyError)):
        ClientLimits.from_json(raw)


def test_the_table_is_the_only_place_of_the_limits() -> None:
    others = [p for p in SOURCES if p.name != "hc_options.c"]
    for path in others:
        text = Path(path).read_text()
        for name in ("MAX_DURATION_S", "MAX_RATE", "MAX_OUTSTANDING", "MAX_BATCH"):
            assert not re.search(rf"#define\s+{name}\b", text), f"{path.name} defines {name}"
