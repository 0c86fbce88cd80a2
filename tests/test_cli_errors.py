"""Bad input to ``python -m bench``: exit status 2, one line on stderr naming the problem,
and nothing partial written (no run folder, no report, no server started)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import PROJECT_ROOT

FIXTURE_RUN = PROJECT_ROOT / "tests" / "fixtures" / "runs" / "fixture-base"
TIMEOUT_S = 120


def bench(args: list[str], ledger: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HELLOBENCH_LEDGER": str(ledger), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def assert_usage_error(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    """Exit status 2 and exactly one non-empty stderr line that contains ``words``."""
    line = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert line, "stderr is empty"
    assert len(line.splitlines()) == 1, f"more than one line on stderr:\n{proc.stderr}"
    for word in words:
        assert word in line, f"{word!r} not named in {line!r}"
    return line


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    path = tmp_path / "ledger"
    path.mkdir()
    return path


# -- run ------------------------------------------------------------------------------

RUN_CASES = {
    "size-5": (["--size", "5"], ["--size", "5"]),
    "size-1473": (["--size", "1473"], ["--size", "1473"]),
    "size-10-flood": (["--size", "10", "--mode", "flood"], ["--size", "10"]),
    "duration-0": (["--duration", "0"], ["--duration"]),
    "duration-negative": (["--duration", "-1"], ["--duration"]),
    "trials-0": (["--trials", "0"], ["--trials"]),
    "port-0": (["--port", "0"], ["--port", "0"]),
    "port-70000": (["--port", "70000"], ["--port", "70000"]),
    "unknown-impl": (["--impl", "no-such-impl"], ["unknown impl", "no-such-impl", "blocking-c"]),
    "unknown-mode": (["--mode", "warp"], ["--mode", "warp"]),
    "unknown-topology": (["--topology", "wan"], ["--topology", "wan"]),
    "outstanding-0": (["--outstanding", "0"], ["--outstanding"]),
    "rate-negative": (["--mode", "rate", "--rate", "-5"], ["--rate"]),
    "rate-fraction-2": (["--mode", "rate", "--rate-fraction", "2"], ["--rate-fraction"]),
    "sample-cap-negative": (["--sample-cap", "-1"], ["--sample-cap"]),
    "size-not-a-number": (["--size", "big"], ["--size", "big"]),
}


@pytest.mark.parametrize("case", sorted(RUN_CASES))
def test_run_bad_input(case: str, tmp_path: Path, ledger: Path) -> None:
    args, words = RUN_CASES[case]
    out = tmp_path / "out"
    out.mkdir()
    base = [] if "--impl" in args else ["--impl", "blocking-c"]
    proc = bench(["run", *base, *args, "--no-calibrate", "--out", str(out)], ledger)
    assert_usage_error(proc, *words)
    assert list(out.iterdir()) == [], "a run folder was created"
    assert list(ledger.glob("*.json")) == [], "something was started"


@pytest.mark.parametrize("case", ["unknown-impl", "size-5", "trials-0"])
def test_run_bad_input_creates_no_out_folder(case: str, tmp_path: Path, ledger: Path) -> None:
    args, words = RUN_CASES[case]
    out = tmp_path / "not-yet" / "results"
    base = [] if "--impl" in args else ["--impl", "blocking-c"]
    proc = bench(["run", *base, *args, "--no-calibrate", "--out", str(out)], ledger)
    assert_usage_error(proc, *words)
    assert not (tmp_path / "not-yet").exists()


@pytest.mark.parametrize("flag", ["--server-cpu", "--client-cpu"])
def test_run_cpu_not_allowed(flag: str, tmp_path: Path, ledger: Path) -> None:
    """A CPU this process may not run on is a usage error naming it and the allowed set,
    found before any server starts (not a pinning failure in a child)."""
    allowed = sorted(os.sched_getaffinity(0))
    out = tmp_path / "out"
    out.mkdir()
    args = ["run", "--impl", "blocking-c", flag, "4096", "--mode", "pingpong"]
    proc = bench([*args, "--duration", "0.1", "--trials", "1", "--out", str(out)], ledger)
    assert_usage_error(proc, flag, "4096", ", ".join(str(c) for c in allowed))
    assert list(out.iterdir()) == [], "a run folder was created"
    assert list(ledger.glob("*.json")) == []


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_run_unwritable_out(where: str, tmp_path: Path, ledger: Path) -> None:
    if where == "under-a-file":
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder\n")
        out = blocker / "results"
    else:
        out = Path("/proc/hellobench-no-such-dir")
    before = sorted(tmp_path.iterdir())
    proc = bench(["run", "--impl", "blocking-c", "--no-calibrate", "--out", str(out)], ledger)
    assert_usage_error(proc, "--out", str(out))
    assert sorted(tmp_path.iterdir()) == before
    assert not out.exists()
    assert list(ledger.glob("*.json")) == []


# -- report and compare ---------------------------------------------------------------


def _corrupt_run(tmp_path: Path) -> Path:
    run = tmp_path / "corrupt-run"
    run.mkdir()
    (run / "results.json").write_text('{"schema": "hellobench/1", "run_id": "x", "resu')
    return run


def _other_schema_run(tmp_path: Path) -> Path:
    run = tmp_path / "schema-99"
    run.mkdir()
    document = json.loads((FIXTURE_RUN / "results.json").read_text())
    document["schema"] = "hellobench/99"
    (run / "results.json").write_text(json.dumps(document))
    return run


@pytest.mark.parametrize("which", ["corrupt", "schema-99", "missing"])
def test_report_bad_run(which: str, tmp_path: Path, ledger: Path) -> None:
    if which == "corrupt":
        run, words = _corrupt_run(tmp_path), ["results.json"]
    elif which == "schema-99":
        run, words = _other_schema_run(tmp_path), ["hellobench/99"]
    else:
        run, words = tmp_path / "no-such-run", ["no-such-run"]
    report_out = tmp_path / "report"
    proc = bench(["report", str(run), "--out", str(report_out)], ledger)
    assert_usage_error(proc, *words)
    assert not report_out.exists(), "a partial report was written"


@pytest.mark.parametrize("side", ["base", "new"])
def test_compare_corrupt_file(side: str, tmp_path: Path, ledger: Path) -> None:
    corrupt = _corrupt_run(tmp_path) / "results.json"
    good = FIXTURE_RUN / "results.json"
    base, new = (corrupt, good) if side == "base" else (good, corrupt)
    proc = bench(["compare", str(base), str(new)], ledger)
    assert_usage_error(proc, str(corrupt))


# -- serve and fuzz -------------------------------------------------------------------


def test_serve_unknown_impl(ledger: Path) -> None:
    proc = bench(["serve", "no-such-impl"], ledger)
    assert_usage_error(proc, "unknown impl", "no-such-impl")


@pytest.mark.parametrize("addr", ["10.1.2.3", "0.0.0.0", "::"])
def test_serve_non_loopback_needs_consent(addr: str, ledger: Path) -> None:
    # Refused before any server starts: the address is never bound.
    proc = bench(["serve", "blocking-c", "--addr", addr, "--port", "9"], ledger)
    assert_usage_error(proc, addr, "--allow-non-loopback")
    assert list(ledger.glob("*.json")) == []


def test_serve_bad_address(ledger: Path) -> None:
    proc = bench(["serve", "blocking-c", "--addr", "not-an-ip"], ledger)
    assert_usage_error(proc, "not-an-ip")


def test_fuzz_unknown_impl(ledger: Path) -> None:
    proc = bench(["fuzz", "--impl", "no-such-impl", "--count", "10"], ledger)
    line = assert_usage_error(proc, "no-such-impl", "blocking-c")
    assert line.startswith("error: unknown impl 'no-such-impl' (known: ")
    assert proc.stdout == ""


@pytest.mark.parametrize("count", ["0", "-5", "100000000000"])
def test_fuzz_bad_count(count: str, ledger: Path) -> None:
    proc = bench(["fuzz", "--impl", "blocking-c", "--count", count], ledger)
    assert_usage_error(proc, "--count")


def test_unknown_command(ledger: Path) -> None:
    proc = bench(["frobnicate"], ledger)
    assert_usage_error(proc, "frobnicate")


# -- impl manifests -------------------------------------------------------------------

BAD_MANIFESTS = {
    "not-toml": ('name = "broken\nkind = ', ["manifest.toml"]),
    "unknown-key": (
        'name = "broken"\nkind = "userspace"\nfamily = "user-space blocking"\n'
        'language = "c"\nsummary = "x"\nflavour = "mint"\n',
        ["manifest.toml", "flavour"],
    ),
    "unknown-kind": (
        'name = "broken"\nkind = "hypervisor"\nfamily = "user-space blocking"\n'
        'language = "c"\nsummary = "x"\n',
        ["manifest.toml", "hypervisor"],
    ),
    "unknown-family": (
        'name = "broken"\nkind = "userspace"\nfamily = "carrier pigeon"\n'
        'language = "c"\nsummary = "x"\n',
        ["manifest.toml", "carrier pigeon"],
    ),
    "missing-summary": (
        'name = "broken"\nkind = "userspace"\nfamily = "user-space blocking"\nlanguage = "c"\n',
        ["manifest.toml", "summary"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
@pytest.mark.parametrize("command", [["list"], ["run", "--impl", "broken", "--out", "OUT"]])
def test_bad_manifest_is_one_line_and_exit_2(
    case: str, command: list[str], tmp_path: Path, ledger: Path
) -> None:
    text, words = BAD_MANIFESTS[case]
    impls = tmp_path / "impls"
    (impls / "broken").mkdir(parents=True)
    (impls / "broken" / "manifest.toml").write_text(text)
    out = tmp_path / "out"
    args = [str(out) if a == "OUT" else a for a in command]
    env = {**os.environ, "HELLOBENCH_LEDGER": str(ledger), "HELLOBENCH_IMPLS": str(impls)}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert "Traceback" not in proc.stderr
    assert_usage_error(proc, *words)
    assert not out.exists()
