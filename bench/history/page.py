"""The trend page: the history's series over time, one self-contained HTML file.

``render_trends(frame, out_dir)`` takes the values of ``HistoryStore.series`` and writes
``out_dir/index.html``: per metric and impl a figure of the per-run median over the runs in
time order (ticks: date, time and short commit), one line per machine and kernel and
configuration, the change points marked on it and listed in a table below it.  Figures are
PNG drawn with matplotlib's Agg canvas, inlined as base64: the page loads nothing else.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from bench.history.trends import ChangePoint, Series, series_of
from bench.results.metrics import BY_NAME
from bench.system.files import write_atomic

if TYPE_CHECKING:
    import pandas as pd

TEMPLATES = Path(__file__).resolve().parent / "templates"
PAGE_NAME = "index.html"
MAX_TICKS = 10  # tick labels on the time axis, at most
MAX_LEGEND = 12  # lines named in a figure's legend, at most
LOG_RANGE = 20.0  # a figure whose values span more than this factor gets a log scale
COLORS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#555555",
          "#F0E442")  # fmt: skip


@dataclass(frozen=True)
class RunTick:
    """A run on the time axis: its position, id, date and short commit."""

    position: int
    run_id: str
    created: str
    commit: str

    @property
    def label(self) -> str:
        """Date, time to the minute (UTC), and the short commit when the run has one."""
        when = f"{self.created[:10]}\n{self.created[11:16]}"
        return f"{when}\n{self.commit}" if self.commit else when


@dataclass(frozen=True)
class ChangeRow:
    """A change point as the page lists it."""

    line: str
    change: ChangePoint
    unit: str
    scale: float

    def fmt(self, value: float) -> str:
        return f"{value / self.scale:.4g}"


@dataclass(frozen=True)
class Panel:
    """One figure of the page: a metric of an impl on every machine and configuration."""

    metric: str
    title: str
    impl: str
    image: str  # base64 PNG
    lines: int
    changes: list[ChangeRow]


def display_unit(metric: str) -> tuple[str, float, str]:
    """Display unit, divisor and label of a metric (ns are shown as µs)."""
    known = BY_NAME.get(metric)
    if known is None:
        return "", 1.0, metric
    if known.unit == "ns":
        return "µs", 1000.0, known.label
    return known.unit, 1.0, known.label


def _line_name(series: Series) -> str:
    """Machine and kernel, then the configuration without the impl (the figure's)."""
    config = series.configuration.replace(f"/{series.impl} ", " ", 1)
    return f"{series.machine.label()} — {config}"


def run_ticks(frame: pd.DataFrame) -> list[RunTick]:
    """Every run of the frame in time order, numbered."""
    runs = frame[["created", "run_id", "git_commit"]].drop_duplicates(["run_id"])
    runs = runs.sort_values(["created", "run_id"], kind="stable")
    return [
        RunTick(i, str(run_id), str(created), commit[:7] if isinstance(commit, str) else "")
        for i, (created, run_id, commit) in enumerate(
            zip(runs["created"], runs["run_id"], runs["git_commit"], strict=True)
        )
    ]


def _figure(
    lines: Sequence[tuple[Series, list[ChangePoint]]],
    ticks: Sequence[RunTick],
    scale: float,
    ylabel: str,
) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    position = {t.run_id: t.position for t in ticks}
    fig = Figure(figsize=(9.0, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    shown_values: list[float] = []
    for i, (series, changes) in enumerate(lines):
        color = COLORS[i % len(COLORS)]
        xs = [position[p.run_id] for p in series.points]
        ys = [p.value / scale for p in series.points]
        label = _line_name(series) if i < MAX_LEGEND else None
        style = ("-", "-.", ":")[i // len(COLORS) % 3]
        ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.2, color=color, linestyle=style,
                label=label)  # fmt: skip
        shown_values += ys
        for change in changes:
            x = position[change.run_id]
            ax.axvline(x - 0.5, color=color, linestyle="--", linewidth=0.9, alpha=0.8)
            ax.plot([x], [change.after / scale], marker="v", markersize=8, color=color)
    step = max(1, -(-len(ticks) // MAX_TICKS))
    shown = list(ticks)[::step]
    ax.set_xticks([t.position for t in shown], [t.label for t in shown], fontsize=7)
    ax.set_xlim(-0.5, max(len(ticks) - 0.5, 0.5))
    if shown_values and min(shown_values) > 0 and max(shown_values) > LOG_RANGE * min(shown_values):
        ax.set_yscale("log")  # lines an order of magnitude apart: each stays readable
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(True, alpha=0.3)
    if lines:
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def panels(all_series: Sequence[Series], ticks: Sequence[RunTick]) -> list[Panel]:
    """The page's figures, per metric (in the registry's order) and impl."""
    by_panel: dict[tuple[str, str], list[tuple[Series, list[ChangePoint]]]] = {}
    for series in all_series:
        by_panel.setdefault((series.metric, series.impl), []).append((series, series.changes()))
    order = {name: i for i, name in enumerate(BY_NAME)}
    found = []
    for (metric, impl), lines in sorted(
        by_panel.items(), key=lambda kv: (order.get(kv[0][0], len(order)), kv[0])
    ):
        unit, scale, label = display_unit(metric)
        ylabel = f"{label} ({unit})" if unit else label
        rows = [ChangeRow(_line_name(s), c, unit, scale) for s, changes in lines for c in changes]
        image = _figure(lines, ticks, scale, ylabel)
        found.append(Panel(metric, ylabel, impl, image, len(lines), rows))
    return found


def render_trends(frame: pd.DataFrame, out_dir: Path) -> Path:
    """Write the trend page of ``frame`` (values of ``HistoryStore.series``) to
    ``out_dir/index.html`` and return its path; an empty frame gives a page saying the
    history is empty."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    all_series = series_of(frame)
    ticks = run_ticks(frame)
    html = env.get_template("trends.html.j2").render(
        runs=ticks,
        panels=panels(all_series, ticks),
        machines=sorted({s.machine.describe() for s in all_series}),
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / PAGE_NAME
    write_atomic(path, html)
    return path
