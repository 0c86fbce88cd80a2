"""``bench compare --html DIR``: a comparison as one self-contained page.  The verdict comes
first (what regressed or improved, by how much, with p and the rule that judged it), then
each changed metric's per-round values on both sides (raw, and normalised to the reference
impl where that is what was judged) and, for a round-trip metric, both sides' latency
distributions; the unchanged metrics last, folded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from bench.analysis.compare import (
    DISAGREE,
    IMPROVEMENT,
    REGRESSION,
    UNCHANGED,
    Comparison,
    MetricChange,
    Samples,
    pooled_samples,
    run_samples,
)
from bench.report import figures
from bench.report.drawing import Figure, FigureBatch, FigureNote, draw_figure
from bench.results.metrics import format_value, metric
from bench.results.rows import Configuration
from bench.results.run import Run
from bench.system.files import write_atomic

TEMPLATES = Path(__file__).resolve().parent / "templates"
ORDER = {REGRESSION: 0, IMPROVEMENT: 1, DISAGREE: 2}  # then the uncounted ('too few trials')
DRAWN = frozenset(ORDER)  # the verdicts whose rounds and distributions the page draws


@dataclass(frozen=True)
class ChangeView:
    anchor: int
    change: MetricChange
    label: str
    base: str
    new: str
    rounds: Figure | FigureNote | None  # None: not drawn (a change the rule did not count)
    distribution: Figure | FigureNote | None


class _Sides:
    """Both sides' per-round samples and merged histograms, read once per metric/key."""

    def __init__(self, base_runs: Sequence[Run], new: Run, reference: str) -> None:
        self.base_runs, self.new, self.reference = base_runs, new, reference
        self._samples: dict[str, tuple[Samples, Samples]] = {}

    def samples(self, name: str) -> tuple[Samples, Samples]:
        if name not in self._samples:
            m = metric(name)
            self._samples[name] = (
                pooled_samples(self.base_runs, m, self.reference),
                run_samples(self.new, m, self.reference),
            )
        return self._samples[name]

    def histograms(self, key: Configuration) -> dict[str, object]:
        base = [r.histogram for run in self.base_runs for r in run.groups().get(key, [])]
        new = [r.histogram for r in self.new.groups().get(key, [])]
        return {"base": figures.merge_histograms(base), "new": figures.merge_histograms(new)}


def _rounds_figure(c: MetricChange, sides: _Sides, index: int) -> Figure | FigureNote:
    def draw() -> str:
        base, new = (s.get(c.key) for s in sides.samples(c.metric))
        scale, unit = (1000.0, "µs") if c.unit == "ns" else (1.0, c.unit)
        panels = [
            figures.RoundsPanel(
                f"{c.metric} ({unit}), raw",
                base.raw if base else (), new.raw if new else (), scale,
            )
        ]  # fmt: skip
        if c.normalised:
            panels.append(
                figures.RoundsPanel(
                    f"÷ {sides.reference} in the same round",
                    base.normalised if base else (), new.normalised if new else (),
                )
            )  # fmt: skip
        return figures.rounds_side_by_side(panels, f"{c.key.label()}: {c.metric}", f"cmp-{index}")

    caption = (
        "One dot per round, the bar at each side's median"
        + (f"; right, each round's value over {sides.reference}'s in that round, the ratio "
           "the rule judged." if c.normalised else "; judged on the raw values.")
    )  # fmt: skip
    return draw_figure(f"{c.key.label()} {c.metric}", caption, draw)


def _distribution(c: MetricChange, sides: _Sides, index: int) -> Figure | FigureNote | None:
    if not c.metric.startswith("rtt_"):  # the histograms hold round trips only
        return None

    def draw() -> str:
        series = sides.histograms(c.key)
        return figures.latency_cdf(
            series,  # type: ignore[arg-type]
            figures.SIDE_COLORS, f"{c.key.label()}", f"cmp-cdf-{index}",
        )  # fmt: skip

    caption = "Every round's latency histogram merged per side: the CDF and the percentile plot."
    return draw_figure(f"{c.key.label()} latency", caption, draw)


def comparison_page(comparison: Comparison, base_runs: Sequence[Run], new: Run) -> str:
    """The page's HTML."""
    sides = _Sides(base_runs, new, comparison.reference)
    changed = sorted(
        (c for c in comparison.changes if c.verdict != UNCHANGED),
        key=lambda c: (ORDER.get(c.verdict, len(ORDER)), c.key.sort_key(), c.metric),
    )
    batch = FigureBatch()
    with batch.collecting():
        views = [
            ChangeView(
                i, c, c.key.label(), format_value(c.base_median, c.unit),
                format_value(c.new_median, c.unit),
                _rounds_figure(c, sides, i) if c.verdict in DRAWN else None,
                _distribution(c, sides, i) if c.verdict in DRAWN else None,
            )
            for i, c in enumerate(changed)
        ]  # fmt: skip
    batch.start()
    batch.finish()
    unchanged = [
        (c.key.label(), c, format_value(c.base_median, c.unit), format_value(c.new_median, c.unit))
        for c in comparison.changes
        if c.verdict == UNCHANGED
    ]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("compare.html.j2").render(
        comparison=comparison,
        rule=comparison.rule.describe(),
        changed=views,
        unchanged=unchanged,
        regressed=bool(comparison.regressions),
        verdict=_verdict(comparison),
    )


def _verdict(comparison: Comparison) -> str:
    r, i = len(comparison.regressions), len(comparison.improvements)
    return (
        f"{r} regression{'s' * (r != 1)}, {i} improvement{'s' * (i != 1)} over "
        f"{len(comparison.changes)} metrics"
    )


def render_comparison(
    comparison: Comparison, base_runs: Sequence[Run], new: Run, out_dir: Path
) -> Path:
    """Write the comparison page into ``out_dir`` (created) and return its index.html."""
    out_dir.mkdir(parents=True, exist_ok=True)
    index = out_dir / "index.html"
    write_atomic(index, comparison_page(comparison, base_runs, new))
    return index
