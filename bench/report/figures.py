"""The report's figures: matplotlib drawn to inline SVG strings (no files, no external fonts).

Each function takes plain data and returns ``<svg ...>...</svg>``.  Every figure gets its
own hash salt so that the ids matplotlib generates (clip paths, markers) never collide
when many SVGs share one HTML page.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
from hdrh.histogram import HdrHistogram
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullLocator

from bench.analysis.claim import PairResult
from bench.analysis.effects import Effect
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
PART_COLORS = {"syscalls": "#4e79a7", "switches": "#f28e2b", "rest": "#bab0ac"}

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


def to_svg(fig: Figure, name: str) -> str:
    """The figure as an inline SVG element (no XML prologue), ids salted by ``name``."""
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
    """The trials' HDR histograms added together, None when no trial has one."""
    merged: HdrHistogram | None = None
    for text in encoded:
        if not text:
            continue
        h = HdrHistogram.decode(text)
        if merged is None:
            merged = HdrHistogram(
                h.lowest_trackable_value, h.highest_trackable_value, h.significant_figures
            )
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
    # the iterator hands out one mutable item object: copy its fields at once
    steps = [
        (item.value_iterated_to, item.total_count_to_this_value)
        for item in hist.get_recorded_iterator()
    ]
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
    xs: list[float] = []
    ys: list[float] = []
    for x in np.geomspace(1.0, max(top, 1.0 + 1e-9), PERCENTILE_POINTS):
        p = (1.0 - 1.0 / float(x)) * 100.0
        xs.append(float(x))
        ys.append(hist.get_value_at_percentile(p) / 1000.0)
    return xs, ys


def _percent(x: float, _pos: int | None = None) -> str:
    p = (1.0 - 1.0 / x) * 100.0 if x > 0 else 0.0
    return f"{p:.10g}%"


def latency_cdf(
    series: Mapping[str, HdrHistogram | None], colors: Mapping[str, str], title: str, name: str
) -> str:
    """The latency distribution twice, one line per impl (in the order given): the CDF on
    a log time axis, and beside it the HDR percentile plot (latency against 1/(1 − p) on
    a log scale, ticks at 50 %, 90 %, 99 %, ...), where the tail is readable."""
    drawn = {impl: h for impl, h in series.items() if h is not None and h.get_total_count()}
    if not drawn:
        return _empty(f"{title}: no latency histograms recorded", name)
    fig, (ax, ax_p) = _subplots(1, 2, figsize=(11.0, 3.9))
    for impl, hist in drawn.items():
        xs, ys = cdf_points(hist)
        ax.step(xs, ys, where="post", color=colors.get(impl), label=impl, linewidth=1.4)
        px, py = percentile_points(hist)
        ax_p.plot(px, py, color=colors.get(impl), label=impl, linewidth=1.4)
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
    ax_p.set_xlim(1.0, max(ticks[3], max(max(percentile_points(h)[0]) for h in drawn.values())))
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
    curves: Mapping[str, Sequence[LoadPoint]], colors: Mapping[str, str], title: str, name: str
) -> str:
    """Throughput and latency vs offered load (rate mode), one line per impl (in order)."""
    if not curves:
        return _empty(f"{title}: no rate-mode rows", name)
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
    ax_l.plot([], [], "o-", color="black", label="p50")
    ax_l.plot([], [], "s--", color="black", alpha=0.6, label="p99")
    ax_l.legend(fontsize="x-small", title="colour: impl (left)", title_fontsize="x-small")
    return to_svg(fig, name)


def cost_breakdown(costs: Mapping[str, Mapping[str, float | None]], title: str, name: str) -> str:
    """Stacked CPU µs per request by kind (user, system, softirq, irq), one bar per impl
    (in the order given)."""
    if not costs:
        return _empty(f"{title}: no CPU measurements", name)
    impls = list(costs)
    fig, ax = _subplots(figsize=(7.5, 3.8))
    bottom = [0.0] * len(impls)
    for kind in CPU_KINDS:
        heights = [(costs[i].get(kind) or 0.0) / 1000.0 for i in impls]
        ax.bar(impls, heights, bottom=bottom, color=CPU_COLORS[kind], label=kind)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set_ylabel("CPU per request (µs)")
    ax.set_title(title)
    ax.legend(fontsize="small")
    ax.tick_params(axis="x", labelrotation=20)
    ax.grid(True, axis="y", alpha=0.3)
    return to_svg(fig, name)


def claim_bars(pairs: Sequence[PairResult], title: str, name: str) -> str:
    """Savings per pair split into syscalls, context switches and rest (RTT and CPU)."""
    if not pairs:
        return _empty(f"{title}: no pairs to compare", name)
    labels = [
        f"{p.candidate}\nvs {p.baseline}" + ("" if p.default_levels else f"\n{p.levels}")
        for p in pairs
    ]
    fig, axes = _subplots(1, 2, figsize=(11.0, 4.2))
    for ax, which in zip(axes, ("RTT p50", "CPU per request"), strict=True):
        pos_bottom = [0.0] * len(pairs)
        neg_bottom = [0.0] * len(pairs)
        for part in ("syscalls", "switches", "rest"):
            values: list[float] = []
            for p in pairs:
                parts = p.rtt_parts if which == "RTT p50" else p.cpu_parts
                est = p.rtt if which == "RTT p50" else p.cpu
                if est is None:
                    values.append(0.0)
                elif parts is None or not parts.available:
                    values.append(est.saving / 1000.0 if part == "rest" else 0.0)
                else:
                    ns = {
                        "syscalls": parts.syscall_part,
                        "switches": parts.ctx_part,
                        "rest": parts.rest,
                    }[part]
                    values.append(ns / 1000.0)
            bottoms = [
                pb if v >= 0 else nb
                for v, pb, nb in zip(values, pos_bottom, neg_bottom, strict=True)
            ]
            ax.bar(
                range(len(pairs)),
                values,
                bottom=bottoms,
                color=PART_COLORS[part],
                label={
                    "syscalls": "Δsyscalls × null syscall",
                    "switches": "Δswitches × switch cost",
                    "rest": "rest",
                }[part],
            )
            pos_bottom = [b + max(v, 0.0) for b, v in zip(pos_bottom, values, strict=True)]
            neg_bottom = [b + min(v, 0.0) for b, v in zip(neg_bottom, values, strict=True)]
        for i, p in enumerate(pairs):
            est = p.rtt if which == "RTT p50" else p.cpu
            if est is not None:
                lo, hi = est.ci.low / 1000.0, est.ci.high / 1000.0
                ax.errorbar(
                    i,
                    est.saving / 1000.0,
                    yerr=[[est.saving / 1000.0 - lo], [hi - est.saving / 1000.0]],
                    fmt="k.",
                    capsize=4,
                )
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(pairs)), labels, fontsize="x-small")
        ax.set_ylabel(f"saving in {which} (µs)")
        ax.set_title(f"{title}: {which}")
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].legend(fontsize="x-small")
    return to_svg(fig, name)


def effects_forest(effects: Sequence[Effect], title: str, name: str) -> str:
    """Each effect on p50 RTT as its mean with the 95% interval (whiskers), and what the
    calibration predicted (a diamond; absent where nothing was predicted)."""
    rtt = [e for e in effects if e.metric == "rtt_p50"]
    if not rtt:
        return _empty(f"{title}: no effect on p50 RTT measured", name)
    sizes = len({(e.key.mode, e.key.size) for e in rtt}) > 1

    def where(e: Effect) -> str:
        parts = [e.key.impl, *([f"{e.key.mode} {e.key.size} B"] if sizes else [])]
        return ", ".join([*parts, *([e.context] if e.context else [])])

    labels = [f"{e.factor}: {e.change}  ({where(e)})" for e in rtt]
    fig, ax = _subplots(figsize=(9.5, 0.9 + 0.42 * len(rtt)))
    for i, e in enumerate(rtt):
        mean, iv = e.estimate.mean / 1000.0, e.estimate.interval
        held = e.held
        color = "#0072B2" if held is not False else "#D55E00"
        ax.errorbar(
            mean, i, xerr=[[mean - iv.low / 1000.0], [iv.high / 1000.0 - mean]],
            fmt="o", color=color, capsize=3, markersize=5,
        )  # fmt: skip
        if e.prediction.value is not None:
            ax.plot(e.prediction.value / 1000.0, i, "D", color="#555555", markersize=5,
                    markerfacecolor="none")  # fmt: skip
    ax.plot([], [], "o", color="#0072B2", label="measured (prediction held or none)")
    ax.plot([], [], "o", color="#D55E00", label="measured (prediction failed)")
    ax.plot([], [], "D", color="#555555", markerfacecolor="none", label="predicted")
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(rtt)), labels, fontsize="x-small")
    ax.invert_yaxis()
    ax.set_xlabel("effect on p50 RTT (µs): level B − level A")
    ax.set_title(title)
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize="x-small", loc="best")
    return to_svg(fig, name)
