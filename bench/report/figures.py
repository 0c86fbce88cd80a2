"""The report's figures: matplotlib drawn to inline SVG strings (no files, no external fonts).

Each function takes plain data and returns ``<svg ...>...</svg>``.  Every figure gets its
own hash salt so that the ids matplotlib generates (clip paths, markers) never collide
when many SVGs share one HTML page.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
from hdrh.histogram import HdrHistogram
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, NullLocator

from bench.driver.histogram import recorded
from bench.results.descriptions import ImplInfo

# One hue per family (Okabe-Ito, safe for the common colour-vision deficiencies); the impls
# of a family get shades of it.
FAMILY_COLORS = {
    "user-space blocking": "#0072B2",
    "user-space busy-poll": "#56B4E9",
    "event loop and batching": "#E69F00",
    "io_uring": "#CC79A7",
    "kernel bypass": "#555555",
    "kernel module": "#D55E00",
    "eBPF": "#009E73",
}
UNKNOWN_FAMILY_COLOR = "#999999"
SHADES = (0.0, -0.35, 0.35, -0.6, 0.55)  # mix toward black (<0) or white (>0)
CPU_KINDS = ("user", "system", "softirq", "irq")
CPU_COLORS = {"user": "#4e79a7", "system": "#e15759", "softirq": "#f28e2b", "irq": "#76b7b2"}

_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.S)


def _shade(color: str, amount: float) -> str:
    rgb = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
    target = 255 if amount > 0 else 0
    mixed = [round(c + (target - c) * abs(amount)) for c in rgb]
    return "#" + "".join(f"{c:02x}" for c in mixed)


def impl_colors(impls: Iterable[ImplInfo]) -> dict[str, str]:
    """A colour for every impl: its family's hue, a different shade for each member."""
    colors: dict[str, str] = {}
    seen: dict[str, int] = {}
    for info in sorted(impls, key=ImplInfo.sort_key):
        index = seen.get(info.family, 0)
        seen[info.family] = index + 1
        base = FAMILY_COLORS.get(info.family, UNKNOWN_FAMILY_COLOR)
        colors[info.name] = _shade(base, SHADES[index % len(SHADES)])
    return colors


_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_-]")


def safe_id(name: str) -> str:
    """``name`` as an XML id fragment: letters, digits, ``_`` and ``-`` kept, anything else
    (quotes, markup from a results file's strings) replaced, and a short hash of the whole
    name appended wherever something was replaced, so that two names stay two ids."""
    cleaned = _UNSAFE_ID.sub("_", name)
    if cleaned == name:
        return name
    return f"{cleaned}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def to_svg(fig: Figure, name: str) -> str:
    """The figure as an inline SVG element (no XML prologue), ids salted by ``name`` (made
    safe for an attribute first: names are built from a results file's strings)."""
    name = safe_id(name)
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": name, "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    return _scope_ids(_PROLOGUE.sub("", buf.getvalue(), count=1).strip(), name)


_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(href="#|url\(#)([^")]+)')


def _scope_ids(svg: str, name: str) -> str:
    """Prefix every id (and every reference to one) with ``name``: unique within a page."""
    ids = set(_ID.findall(svg))
    svg = _ID.sub(lambda m: f'id="{name}-{m.group(1)}"', svg)
    return _REF.sub(
        lambda m: f"{m.group(1)}{name}-{m.group(2)}" if m.group(2) in ids else m.group(0), svg
    )


def merge_histograms(encoded: Sequence[str | None]) -> HdrHistogram | None:
    """The trials' HDR histograms added together, None when no trial has one.  The sum
    covers every trial's range at the finest precision among them (trials recorded with
    different ranges still add up)."""
    decoded = [HdrHistogram.decode(text) for text in encoded if text]
    if not decoded:
        return None
    merged = HdrHistogram(
        min(h.lowest_trackable_value for h in decoded),
        max(h.highest_trackable_value for h in decoded),
        max(h.significant_figures for h in decoded),
    )
    for h in decoded:
        merged.add(h)
    return merged


CDF_RESOLUTION = 0.002  # a point at least every 0.2 % of the requests


def cdf_points(hist: HdrHistogram) -> tuple[list[float], list[float]]:
    """(latency µs, fraction of requests at or below it) at the recorded values.

    Points closer than CDF_RESOLUTION in fraction to the previous one are dropped (the
    last and every one in the top 1 % are kept), which keeps the SVG small.
    """
    total = hist.get_total_count()
    xs: list[float] = []
    ys: list[float] = []
    if not total:
        return xs, ys
    steps = recorded(hist)
    last = -1.0
    for i, (value, count) in enumerate(steps):
        y = count / total
        if y - last >= CDF_RESOLUTION or y >= 0.99 or i == len(steps) - 1:
            xs.append(value / 1000.0)
            ys.append(y)
            last = y
    return xs, ys


def _subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float]) -> Any:
    """A new figure (no pyplot: no global state) and its axes."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols)


def _empty(message: str, name: str) -> str:
    fig, ax = _subplots(figsize=(6.0, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    return to_svg(fig, name)


PERCENTILE_TICKS = (50.0, 90.0, 99.0, 99.9, 99.99, 99.999)
PERCENTILE_POINTS = 160


def percentile_points(hist: HdrHistogram) -> tuple[list[float], list[float]]:
    """(1/(1 − p), latency µs at percentile p) from p = 0 up to the last percentile the
    histogram can resolve (one request in the tail: 1 − 1/count), log-spaced in 1/(1 − p),
    as HdrHistogram's percentile plots draw them."""
    total = hist.get_total_count()
    if not total:
        return [], []
    top = 1.0 / (1.0 - (1.0 - 1.0 / total)) if total > 1 else 1.0
    # one pass over the recorded values (hdrh's get_value_at_percentile walks the whole
    # counts array at every call), then each percentile as that method computes it: the
    # first value whose cumulative count reaches round(p × total), at least 1
    steps = recorded(hist)
    values = [float(v) for v, _ in steps]
    cumulative = [c for _, c in steps]
    xs: list[float] = []
    ys: list[float] = []
    for x in np.geomspace(1.0, max(top, 1.0 + 1e-9), PERCENTILE_POINTS):
        p = (1.0 - 1.0 / float(x)) * 100.0
        target = max(int(min(p, 100.0) * total / 100 + 0.5), 1)
        i = min(bisect.bisect_left(cumulative, target), len(values) - 1)
        value = values[i] if p else float(hist.get_lowest_equivalent_value(int(values[i])))
        xs.append(float(x))
        ys.append(value / 1000.0)
    return xs, ys


def _percent(x: float, _pos: int | None = None) -> str:
    p = (1.0 - 1.0 / x) * 100.0 if x > 0 else 0.0
    return f"{p:.10g}%"


def _timeout_lines(axes: Any, timeout_us: float | None, *, vertical: bool) -> None:
    """The driver's reply timeout, where the data reach it: what sits on it is lost."""
    if timeout_us is None:
        return
    style = {"color": "#a00", "linestyle": ":", "linewidth": 1.0, "label": "reply timeout (lost)"}
    if vertical:
        axes.axvline(timeout_us, **style)
    else:
        axes.axhline(timeout_us, **style)


def latency_cdf(
    series: Mapping[str, HdrHistogram | None],
    colors: Mapping[str, str],
    title: str,
    name: str,
    *,
    timeout_us: float | None = None,
) -> str:
    """The latency distribution twice, one line per impl (in the order given): the CDF on
    a log time axis, and beside it the HDR percentile plot (latency against 1/(1 − p) on
    a log scale, ticks at 50 %, 90 %, 99 %, ...), where the tail is readable.  Where some
    request reached the driver's reply timeout ``timeout_us``, a dotted line marks it."""
    drawn = {impl: h for impl, h in series.items() if h is not None and h.get_total_count()}
    if not drawn:
        return _empty(f"{title}: no latency histograms recorded", name)
    reached = timeout_us is not None and any(
        h.get_max_value() / 1000.0 >= timeout_us * 0.998 for h in drawn.values()
    )
    fig, (ax, ax_p) = _subplots(1, 2, figsize=(11.0, 3.9))
    right = 1.0
    for impl, hist in drawn.items():
        xs, ys = cdf_points(hist)
        ax.step(xs, ys, where="post", color=colors.get(impl), label=impl, linewidth=1.4)
        px, py = percentile_points(hist)
        ax_p.plot(px, py, color=colors.get(impl), label=impl, linewidth=1.4)
        right = max(right, *px)
    _timeout_lines(ax, timeout_us if reached else None, vertical=True)
    _timeout_lines(ax_p, timeout_us if reached else None, vertical=False)
    ax.set_xscale("log")
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("round-trip time (µs, log scale)")
    ax.set_ylabel("fraction of replies ≤ x")
    ax.set_title(f"{title}: CDF", fontsize="medium")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="x-small", loc="lower right")
    ax_p.set_xscale("log")
    ax_p.set_yscale("log")
    ticks = [1.0 / (1.0 - p / 100.0) for p in PERCENTILE_TICKS]
    ax_p.set_xticks(ticks)
    ax_p.xaxis.set_major_formatter(FuncFormatter(_percent))
    ax_p.xaxis.set_minor_locator(NullLocator())
    ax_p.set_xlim(1.0, max(ticks[3], right))
    ax_p.set_xlabel("percentile (1/(1 − p), log scale)")
    ax_p.set_ylabel("round-trip time (µs, log scale)")
    ax_p.set_title(f"{title}: percentiles", fontsize="medium")
    ax_p.grid(True, which="both", alpha=0.3)
    return to_svg(fig, name)


@dataclass(frozen=True)
class LoadPoint:
    offered_rps: float
    throughput_rps: float
    p50_us: float | None
    p99_us: float | None


def _kilo(x: float, _pos: int | None = None) -> str:
    return f"{x / 1000:g}k" if abs(x) >= 1000 else f"{x:g}"


def load_curves(
    curves: Mapping[str, Sequence[LoadPoint]],
    colors: Mapping[str, str],
    title: str,
    name: str,
    *,
    timeout_us: float | None = None,
) -> str:
    """Throughput and latency vs offered load (rate mode), one line per impl (in order);
    a dotted line at the driver's reply timeout ``timeout_us`` where a latency reaches it
    (such a point is lost requests, not a latency)."""
    if not curves:
        return _empty(f"{title}: no rate-mode rows", name)
    reached = timeout_us is not None and any(
        (p.p99_us or 0.0) >= timeout_us * 0.998 for pts in curves.values() for p in pts
    )
    fig, (ax_t, ax_l) = _subplots(1, 2, figsize=(10.0, 3.8))
    for impl, points in curves.items():
        pts = sorted(points, key=lambda p: p.offered_rps)
        color = colors.get(impl)
        offered = [p.offered_rps for p in pts]
        ax_t.plot(offered, [p.throughput_rps for p in pts], "o-", color=color, label=impl)
        p50 = [(p.offered_rps, p.p50_us) for p in pts if p.p50_us is not None]
        p99 = [(p.offered_rps, p.p99_us) for p in pts if p.p99_us is not None]
        if p50:
            ax_l.plot(*zip(*p50, strict=True), "o-", color=color)
        if p99:
            ax_l.plot(*zip(*p99, strict=True), "s--", color=color, alpha=0.6)
    lim = max((p.offered_rps for pts in curves.values() for p in pts), default=1.0)
    ax_t.plot([0, lim], [0, lim], ":", color="grey", linewidth=0.8, label="replies = offered")
    for axis in (ax_t.xaxis, ax_t.yaxis, ax_l.xaxis):
        axis.set_major_formatter(FuncFormatter(_kilo))
    ax_t.set_xlabel("offered load (requests/s)")
    ax_t.set_ylabel("replies/s")
    ax_t.set_title(f"{title}: throughput")
    ax_t.legend(fontsize="x-small")
    ax_t.grid(True, alpha=0.3)
    ax_l.set_yscale("log")
    ax_l.set_xlabel("offered load (requests/s)")
    ax_l.set_ylabel("RTT (µs, log scale)")
    ax_l.set_title(f"{title}: latency (p50 solid, p99 dashed)")
    ax_l.grid(True, which="both", alpha=0.3)
    _timeout_lines(ax_l, timeout_us if reached else None, vertical=False)
    ax_l.plot([], [], "o-", color="black", label="p50")
    ax_l.plot([], [], "s--", color="black", alpha=0.6, label="p99")
    ax_l.legend(fontsize="x-small", title="colour: impl (left)", title_fontsize="x-small")
    return to_svg(fig, name)


def cost_breakdown(costs: Mapping[str, Mapping[str, float | None]], title: str, name: str) -> str:
    """Stacked CPU µs per request by kind (user, system, softirq, irq), one bar per impl
    (in the order given)."""
    if not costs:
        return _empty(f"{title}: no CPU measurements", name)
    measured = [i for i in costs if any(v is not None for v in costs[i].values())]
    if not measured:
        return _empty(f"{title}: CPU per request not measured", name)
    # an impl whose CPU was not measured gets a labelled gap, never a bar of zero
    impls = [i if i in measured else f"{i}\n(not measured)" for i in costs]
    fig, ax = _subplots(figsize=(7.5, 3.8))
    bottom = [0.0] * len(impls)
    for kind in CPU_KINDS:
        heights = [(costs[i].get(kind) or 0.0) / 1000.0 for i in costs]
        ax.bar(impls, heights, bottom=bottom, color=CPU_COLORS[kind], label=kind)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set_ylabel("CPU per request (µs)")
    ax.set_title(title)
    ax.legend(fontsize="small")
    ax.tick_params(axis="x", labelrotation=20)
    ax.grid(True, axis="y", alpha=0.3)
    return to_svg(fig, name)


@dataclass(frozen=True)
class ForestPoint:
    """One estimate of a forest plot, in µs: its mean and interval, what was predicted and
    the prediction's equivalence outcome (None: nothing predicted)."""

    label: str
    mean: float
    low: float
    high: float
    predicted: float | None = None
    outcome: str | None = None


OUTCOME_COLORS = {"held": "#0072B2", "failed": "#D55E00", "inconclusive": "#999999"}


def forest(points: Sequence[ForestPoint], title: str, name: str, xlabel: str) -> str:
    """Each estimate as its mean with its interval (whiskers), and what the calibration
    predicted (a diamond), coloured by the prediction's equivalence outcome.  Points that
    are not finite are left out and said so in the title."""
    shown = [
        p for p in points
        if all(np.isfinite(v) for v in (p.mean, p.low, p.high)) and p.low <= p.high
    ]  # fmt: skip
    if not shown:
        return _empty(f"{title}: no estimate to draw", name)
    dropped = len(points) - len(shown)
    if dropped:
        title += f" ({dropped} without a finite interval not drawn)"
    fig, ax = _subplots(figsize=(9.5, 0.9 + 0.42 * len(shown)))
    for i, p in enumerate(shown):
        color = OUTCOME_COLORS.get(p.outcome or "", "#333333")
        lo, hi = min(p.low, p.mean), max(p.high, p.mean)
        ax.errorbar(p.mean, i, xerr=[[p.mean - lo], [hi - p.mean]], fmt="o", color=color,
                    capsize=3, markersize=5)  # fmt: skip
        if p.predicted is not None and np.isfinite(p.predicted):
            ax.plot(p.predicted, i, "D", color="#555555", markersize=5, markerfacecolor="none")
    for outcome, color in OUTCOME_COLORS.items():
        ax.plot([], [], "o", color=color, label=f"measured (prediction {outcome})")
    ax.plot([], [], "o", color="#333333", label="measured (nothing predicted)")
    ax.plot([], [], "D", color="#555555", markerfacecolor="none", label="predicted")
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(shown)), [p.label for p in shown], fontsize="x-small")
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize="x-small", loc="best")
    return to_svg(fig, name)


# the anatomy's stages, each in one colour wherever it is drawn (path order); a stage not
# listed takes a grey of its own
STAGE_COLORS = {
    "client send": "#4e79a7",
    "stack to server socket": "#a0cbe8",
    "stack to handler": "#a0cbe8",
    "stack to receive processing": "#a0cbe8",
    "server socket queue": "#bab0ac",
    "server wake-up": "#e15759",
    "server receive": "#f28e2b",
    "server user space": "#59a14f",
    "in-kernel handler": "#59a14f",
    "receive, handler and way back": "#8cd17d",
    "server send": "#ffbe7d",
    "stack to client socket": "#86bcb6",
    "client socket queue": "#d7b5a6",
    "client wake-up": "#ff9d9a",
    "client receive": "#9d7660",
}
EXTRA_STAGE_GREYS = ("#666666", "#888888", "#aaaaaa", "#cccccc", "#444444")


def stage_colors(names: Iterable[str]) -> dict[str, str]:
    colors: dict[str, str] = {}
    extra = 0
    for name in names:
        if name in colors:
            continue
        if name in STAGE_COLORS:
            colors[name] = STAGE_COLORS[name]
        else:
            colors[name] = EXTRA_STAGE_GREYS[extra % len(EXTRA_STAGE_GREYS)]
            extra += 1
    return colors


def stage_bars(
    bars: Sequence[tuple[str, Mapping[str, float]]], title: str, name: str, note: str = ""
) -> str:
    """One horizontal bar per (label, {stage: ns}), its stages stacked in path order and
    coloured by stage name; µs on the x axis.  ``note`` goes under the title."""
    drawn = [(label, parts) for label, parts in bars if parts]
    if not drawn:
        return _empty(f"{title}: no traced request to draw", name)
    order: list[str] = []
    for _, parts in drawn:
        order += [s for s in parts if s not in order]
    colors = stage_colors(order)
    fig, ax = _subplots(figsize=(9.5, 1.4 + 0.42 * len(drawn)))
    # each bar's stages in its own path order; then one bar call per stage across the bars
    # that have it (each call costs an artist)
    spans: dict[str, list[tuple[int, float, float]]] = {stage: [] for stage in order}
    for i, (_, parts) in enumerate(drawn):
        left = 0.0
        for stage, ns in parts.items():
            width = max(ns, 0.0) / 1000.0
            spans[stage].append((i, left, width))
            left += width
        ax.text(left, i, f" {left:.1f}", va="center", fontsize="x-small")
    for stage, at in spans.items():
        rows, lefts, widths = zip(*at, strict=True)
        ax.barh(rows, widths, left=lefts, color=colors[stage], edgecolor="white", linewidth=0.4)
    ax.set_yticks(range(len(drawn)), [label for label, _ in drawn], fontsize="x-small")
    ax.invert_yaxis()
    ax.set_xlabel("µs per request (stages in path order)")
    ax.set_title(title + (f"\n{note}" if note else ""), fontsize="small")
    ax.grid(True, axis="x", alpha=0.3)
    handles = [Patch(facecolor=colors[stage], label=stage) for stage in order]
    ax.legend(handles=handles, fontsize="xx-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return to_svg(fig, name)  # saved to its tight bounding box: labels and legend included


@dataclass(frozen=True)
class RoundsPanel:
    """One panel of a comparison: each side's per-round values of one quantity."""

    ylabel: str
    base: Sequence[float]
    new: Sequence[float]
    scale: float = 1.0  # values are divided by it for display (ns -> µs: 1000)


SIDE_COLORS = {"base": "#7f7f7f", "new": "#d62728"}


def rounds_side_by_side(panels: Sequence[RoundsPanel], title: str, name: str) -> str:
    """Each panel: the base's rounds and the new run's side by side, one dot per round
    (spread sideways so that equal values stay visible), a bar at each side's median."""
    drawn = [p for p in panels if p.base or p.new]
    if not drawn:
        return _empty(f"{title}: no per-round values", name)
    fig, axes = _subplots(1, len(drawn), figsize=(4.2 * len(drawn) + 1.0, 3.3))
    for ax, panel in zip(np.atleast_1d(axes), drawn, strict=True):
        for x, side in enumerate(("base", "new")):
            values = np.asarray(getattr(panel, side), dtype=float) / panel.scale
            if not values.size:
                continue
            spread = np.linspace(-0.12, 0.12, values.size) if values.size > 1 else np.zeros(1)
            ax.plot(x + spread, values, "o", color=SIDE_COLORS[side], alpha=0.8, markersize=5)
            median = float(np.median(values))
            ax.hlines(median, x - 0.25, x + 0.25, color=SIDE_COLORS[side], linewidth=2.0)
        ax.set_xticks([0, 1], [f"base ({len(panel.base)} rounds)", f"new ({len(panel.new)})"])
        ax.set_xlim(-0.6, 1.6)
        ax.set_ylabel(panel.ylabel)
        ax.grid(True, axis="y", alpha=0.3)
    fig.subplots_adjust(wspace=0.45)
    fig.suptitle(title, fontsize="medium")
    return to_svg(fig, name)
