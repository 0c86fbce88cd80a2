"""What a CI job shows of the guard: a markdown summary of the comparison (for a job summary
page) and the guard run's medians in github-action-benchmark's "customSmallerIsBetter" and
"customBiggerIsBetter" formats (a list of ``{name, unit, value, range, extra}``), so that a
workflow can chart them over commits."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.analysis.compare import UNCHANGED, Comparison
from bench.analysis.stats import median
from bench.results.metrics import format_value, metric
from bench.results.run import Run

SMALLER_NAME = "benchmark-smaller-is-better.json"
BIGGER_NAME = "benchmark-bigger-is-better.json"
SUMMARY_NAME = "summary.md"

_SCALE = {"ns": (1e-3, "us")}  # github-action-benchmark charts read better in µs


def _p(p: float | None) -> str:
    return "–" if p is None else f"{p:.4f}"


def markdown_summary(comparison: Comparison | None, run: Run, *, status: str) -> str:
    """The guard's outcome in GitHub-flavoured markdown: the verdict, then every compared
    metric with both ratios, p and the smallest p these rounds allow, then the notes."""
    lines = [f"## hellobench regression guard: {status}", ""]
    lines.append(f"Run `{run.run_id}`.")
    if comparison is None:
        return "\n".join([*lines, "", "No comparison was made.", ""])
    lines += [
        f"Base `{comparison.base}`. {comparison.summary()}.",
        "",
        "| impl | mode | metric | base | new | raw | judged | p | min p | rounds | verdict |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in comparison.changes:
        verdict = c.verdict if c.verdict == UNCHANGED else f"**{c.verdict}**"
        lines.append(
            f"| {c.key.impl} | {c.key.mode} | {c.metric} | {format_value(c.base_median, c.unit)} | "
            f"{format_value(c.new_median, c.unit)} | {c.raw_ratio:.2f}x | {c.ratio:.2f}x "
            f"({c.judged}) | {_p(c.p_value)} | {c.min_p:.2g} | {c.n_base}/{c.n_new} | "
            f"{verdict} |"
        )
    lines += ["", *(f"- {note}" for note in comparison.notes), ""]
    return "\n".join(lines)


def benchmark_entries(run: Run, metrics: Sequence[str]) -> tuple[list[dict[str, Any]], ...]:
    """(smaller is better, bigger is better): the median over rounds of every configuration
    and metric, with the rounds' range."""
    from bench.results.frame import trial_values  # pandas: imported when used

    smaller: list[dict[str, Any]] = []
    bigger: list[dict[str, Any]] = []
    for name in metrics:
        m = metric(name)
        scale, unit = _SCALE.get(m.unit, (1.0, m.unit))
        for key, values in sorted(trial_values(run.rows, name).items(),
                                  key=lambda kv: kv[0].sort_key()):  # fmt: skip
            if not values:
                continue
            ordered = sorted(v * scale for v in values)
            mid = median(ordered)
            entry = {
                "name": f"{key.label()} {name}",
                "unit": unit,
                "value": mid,
                "range": f"{ordered[0]:.4g}..{ordered[-1]:.4g}",
                "extra": f"median of {len(ordered)} rounds; run {run.run_id}",
            }
            (smaller if m.higher_is_worse else bigger).append(entry)
    return smaller, bigger


def write_ci_outputs(
    folder: Path, comparison: Comparison | None, run: Run, metrics: Sequence[str], *, status: str
) -> list[Path]:
    """Write the summary and both benchmark files into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    smaller, bigger = benchmark_entries(run, metrics)
    written = []
    for name, entries in ((SMALLER_NAME, smaller), (BIGGER_NAME, bigger)):
        path = folder / name
        path.write_text(json.dumps(entries, indent=1) + "\n", encoding="utf-8")
        written.append(path)
    summary = folder / SUMMARY_NAME
    summary.write_text(markdown_summary(comparison, run, status=status), encoding="utf-8")
    written.append(summary)
    return written
