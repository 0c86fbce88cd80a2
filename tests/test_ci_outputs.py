"""What the guard leaves for a CI job: the markdown summary and github-action-benchmark's
customSmallerIsBetter / customBiggerIsBetter files, written from a real comparison."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from bench.analysis.compare import compare_loaded
from bench.report.ci import (
    BIGGER_NAME,
    SMALLER_NAME,
    SUMMARY_NAME,
    benchmark_entries,
    markdown_summary,
    write_ci_outputs,
)
from bench.results.frame import trial_values
from bench.results.run import Run

FIXTURES = Path(__file__).resolve().parent / "fixtures"
BASE = FIXTURES / "runs" / "fixture-base"
METRICS = ("rtt_p50", "throughput_rps", "server_syscalls_per_req")


def test_files_have_the_action_format_and_the_medians(tmp_path: Path) -> None:
    run = Run.load(BASE)
    comparison = compare_loaded(run, run)
    written = write_ci_outputs(tmp_path, comparison, run, METRICS, status="passed")
    assert {p.name for p in written} == {SMALLER_NAME, BIGGER_NAME, SUMMARY_NAME}
    smaller = json.loads((tmp_path / SMALLER_NAME).read_text())
    bigger = json.loads((tmp_path / BIGGER_NAME).read_text())
    for entry in smaller + bigger:
        assert set(entry) == {"name", "unit", "value", "range", "extra"}
        assert isinstance(entry["value"], float)
    # times (in µs) and counts are smaller-is-better, throughput bigger-is-better
    assert {e["name"].rsplit(" ", 1)[1] for e in smaller} == {"rtt_p50", "server_syscalls_per_req"}
    assert {e["name"].rsplit(" ", 1)[1] for e in bigger} == {"throughput_rps"}
    rtt = trial_values(run.rows, "rtt_p50")
    key = next(k for k in rtt if k.impl == "blocking-c")
    entry = next(e for e in smaller if e["name"] == f"{key.label()} rtt_p50")
    assert entry["unit"] == "us"
    assert entry["value"] == statistics.median(rtt[key]) / 1000
    assert f"{len(rtt[key])} rounds" in entry["extra"]


def test_every_configuration_and_metric_has_one_entry() -> None:
    run = Run.load(BASE)
    smaller, bigger = benchmark_entries(run, METRICS)
    names = [e["name"] for e in smaller + bigger]
    assert len(names) == len(set(names))
    measured = [(k, m) for m in METRICS for k, v in trial_values(run.rows, m).items() if v]
    assert len(names) == len(measured)


def test_summary_names_the_verdict_every_metric_and_the_minimum_p() -> None:
    run = Run.load(BASE)
    comparison = compare_loaded(run, run)
    text = markdown_summary(comparison, run, status="passed")
    assert text.startswith("## hellobench regression guard: passed")
    assert "| min p |" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + len(comparison.changes)  # the header, then one per change
    assert "**regression**" not in text


def test_summary_without_a_comparison_says_so() -> None:
    run = Run.load(BASE)
    text = markdown_summary(None, run, status="FAILED")
    assert "regression guard: FAILED" in text and "No comparison was made." in text
