"""Render a run's results.json into one self-contained HTML page (inline SVG, no CDN).

``render_report(run_dir)`` writes reports/<run-id>/index.html under the project root (or
``out_dir/index.html``) and returns its path.  The page reads nothing but results.json;
it links to the raw files with relative paths.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from bench import question, work_root
from bench.analysis import anatomy
from bench.analysis.answer import NOT_MEASURED, answers
from bench.analysis.dose import dose_responses
from bench.analysis.effects import Effect, Exploratory, exploratory
from bench.analysis.percentiles import precisions
from bench.analysis.primary import Family, Finding
from bench.analysis.primary import families as primary_families
from bench.analysis.probe_cost import probe_costs
from bench.analysis.stats import median
from bench.analysis.summary import summarize
from bench.analysis.validity import mark, tally
from bench.driver.histogram import count_at_or_above
from bench.factors import DEFAULTS as FACTOR_DEFAULTS
from bench.host import metadata
from bench.report import figures
from bench.report.drawing import Figure, FigureBatch, FigureNote, draw_figure
from bench.report.tables import SummaryTables, column_groups, fmt_rtt, summary_tables
from bench.results.descriptions import Environment
from bench.results.metrics import TIMEOUT_RESOLUTION, fmt_us, metric
from bench.results.rows import Configuration, PhaseRow
from bench.results.run import Run
from bench.results.schema import ResultsError
from bench.system.files import write_atomic

Groups = Mapping[Configuration, list[PhaseRow]]

TEMPLATES = Path(__file__).resolve().parent / "templates"
MODES = ("pingpong", "rate", "flood")
SECTIONS = (
    ("answer", "The answer"),
    ("summary", "Summary"),
    ("latency", "Latency distributions"),
    ("load", "Throughput and latency vs offered load"),
    ("cost", "Cost per request"),
    ("claim", "The claim"),
    ("anatomy", "Where the time goes"),
    ("environment", "Environment and methodology"),
    ("raw-data", "Raw data"),
)


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Link:
    label: str
    href: str
    exists: bool


@dataclass(frozen=True)
class EnvInfo:
    name: str
    emulated: bool
    accel: str
    facts: tuple[tuple[str, str], ...]
    calibration: tuple[tuple[str, str], ...]
    fidelity: tuple[tuple[str, str], ...]


def _colors(run: Run) -> dict[str, str]:
    return figures.impl_colors(run.impl(n) for n in run.impl_order(r.impl for r in run.rows))


def _default_size(run: Run, env: str, mode: str, groups: Groups) -> int | None:
    sizes = sorted({k.size for k in groups if k.env == env and k.mode == mode})
    if not sizes:
        return None
    configured = run.config.get("default_size")
    for s in (configured, 64):
        if isinstance(s, int) and s in sizes:
            return s
    return sizes[0]


def _finite_median(values: Iterable[float | None]) -> float | None:
    """The median of the values that are numbers (None, NaN and infinities dropped)."""
    return median(v for v in values if v is not None and math.isfinite(v))


def _fraction(k: Configuration) -> float | None:
    f = k.load_fraction
    return f if f is not None and math.isfinite(f) else None


def _highest_load(keys: Sequence[Configuration]) -> tuple[list[Configuration], str]:
    """The rate-mode configurations at the highest load measured, and how it is named."""
    fractions = [f for k in keys if (f := _fraction(k)) is not None]
    if fractions:
        top = max(fractions)
        at = [k for k in keys if _fraction(k) == top]
        return at, f" at load fraction {top:g} (the highest measured)"
    rates = [r for k in keys if (r := k.offered_rps) is not None and math.isfinite(r)]
    if rates:
        top = max(rates)
        return [k for k in keys if k.offered_rps == top], f" at {top:,.0f} requests/s offered"
    return list(keys), ""


def _default_levels_first(run: Run, k: Configuration) -> tuple[Any, ...]:
    """Each impl's configurations, the one at the default factor levels first."""
    at_defaults = k.factor_levels() == FACTOR_DEFAULTS and not k.server_options
    return (run.impl(k.impl).sort_key(), not at_defaults, k.sort_key())


def _timeout_ns(run: Run) -> float | None:
    """The driver's reply timeout in ns, as the run's config records it (None: not
    recorded): a request unanswered by then is in the latency record at the timeout."""
    seconds = metadata.number(run.config.get("reply_timeout_s"))
    return seconds * 1e9 if seconds is not None and seconds > 0 else None


def _lost_at_timeout(groups: Groups, timeout_ns: float | None) -> dict[Configuration, float]:
    """Per configuration whose trials all have a histogram, the percent of its requests
    recorded at the reply timeout (lost), from the histograms merged."""
    out: dict[Configuration, float] = {}
    if timeout_ns is None:
        return out
    for key, rows in groups.items():
        if not rows or any(not r.histogram for r in rows):
            continue
        try:
            merged = figures.merge_histograms([r.histogram for r in rows])
        except Exception as exc:  # an unreadable histogram: the line's loss is shown instead
            log.warning("%s: histograms not read: %s: %s", key.label(), type(exc).__name__, exc)
            continue
        if merged is not None and merged.get_total_count():
            at = count_at_or_above(merged, timeout_ns * TIMEOUT_RESOLUTION)
            out[key] = 100.0 * at / merged.get_total_count()
    return out


def _timeout_us(timeout_ns: float | None) -> float | None:
    return None if timeout_ns is None else timeout_ns / 1000.0


def _latency_figures(
    run: Run, env: str, groups: Groups, timeout_ns: float | None = None
) -> list[Figure | FigureNote]:
    colors = _colors(run)
    out: list[Figure | FigureNote] = []
    for mode in MODES:
        size = _default_size(run, env, mode, groups)
        if size is None:
            continue
        keys = [k for k in groups if k.env == env and k.mode == mode and k.size == size]
        note = ""
        if mode == "rate":
            keys, note = _highest_load(keys)
        title = f"{env}: {mode}, {size} B{note}"
        caption = (
            f"Latency in {env}, {mode} mode, {size}-byte requests{note}: HDR histograms of "
            "every trial merged per impl (at the default levels of the run factors where "
            "measured there); left the CDF, right the percentile plot (latency at "
            "percentile p against 1/(1 − p), so 99 %, 99.9 % and 99.99 % are evenly spaced)."
            + (
                " The dotted line is the driver's reply timeout: a request not answered by "
                "then is recorded at it, so what sits on it is lost requests."
                if timeout_ns is not None
                else ""
            )
        )

        def draw(keys: list[Configuration] = keys, title: str = title, mode: str = mode) -> str:
            series: dict[str, Any] = {}
            for k in sorted(keys, key=lambda k: _default_levels_first(run, k)):
                if series.get(k.impl) is None:
                    series[k.impl] = figures.merge_histograms([r.histogram for r in groups[k]])
            return figures.latency_cdf(
                series, colors, title, f"cdf-{env}-{mode}", timeout_us=_timeout_us(timeout_ns)
            )

        out.append(draw_figure(title, caption, draw))
    return out


def _load_figure(
    run: Run, env: str, groups: Groups, timeout_ns: float | None = None
) -> Figure | FigureNote | None:
    sizes = sorted({k.size for k in groups if k.env == env and k.mode == "rate"})
    if not sizes:
        return None
    size = 64 if 64 in sizes else sizes[0]
    title = f"{env}: rate mode, {size} B"

    def draw() -> str:
        curves: dict[str, list[figures.LoadPoint]] = {}
        p50_of, p99_of = metric("rtt_p50").read, metric("rtt_p99").read
        for k, rows in groups.items():
            if k.env != env or k.mode != "rate" or k.size != size:
                continue
            offered = _finite_median(r.offered_rps or r.send_rps for r in rows)
            thr = _finite_median(r.throughput_rps for r in rows)
            if offered is None or thr is None:
                continue
            p50 = _finite_median(p50_of(r) for r in rows)
            p99 = _finite_median(p99_of(r) for r in rows)
            curves.setdefault(k.impl, []).append(
                figures.LoadPoint(
                    offered,
                    thr,
                    None if p50 is None else p50 / 1000,
                    None if p99 is None else p99 / 1000,
                )
            )
        return figures.load_curves(
            {i: curves[i] for i in run.impl_order(curves)},
            _colors(run),
            title,
            f"load-{env}",
            timeout_us=_timeout_us(timeout_ns),
        )

    caption = (
        f"Open-loop rate mode in {env}: replies/s and RTT (from the scheduled send time) "
        "against the offered load; medians over trials."
    )
    if timeout_ns is not None:
        caption += " A latency on the dotted line is the driver's reply timeout: lost requests."
    return draw_figure(title, caption, draw)


def _cost_figure(run: Run, env: str, groups: Groups) -> Figure | FigureNote | None:
    here = [k for k in groups if k.env == env]
    # the first mode with a configuration at no load fraction (rate mode at a fraction is
    # a different load per impl, so its costs do not compare)
    mode = next(
        (m for m in MODES if any(k.mode == m and k.load_fraction is None for k in here)), None
    )
    if mode is None:
        return None
    size = _default_size(run, env, mode, {k: groups[k] for k in here if k.load_fraction is None})
    title = f"{env}: CPU per request, {mode}, {size} B"

    def draw() -> str:
        costs: dict[str, dict[str, float | None]] = {}
        for k in sorted(here, key=lambda k: _default_levels_first(run, k)):
            if k.mode != mode or k.size != size or k.load_fraction is not None:
                continue
            if k.impl not in costs:
                costs[k.impl] = {
                    kind: _finite_median(r.per_request.cpu_ns.get(kind) for r in groups[k])
                    for kind in figures.CPU_KINDS
                }
        ordered = {i: costs[i] for i in run.impl_order(costs)}
        return figures.cost_breakdown(ordered, title, f"cost-{env}")

    caption = (
        f"System-wide CPU time per answered request in {env} by kind (medians over trials, "
        "at the default levels of the run factors where measured there); kernel-thread and "
        "softirq work belong to no process, hence system-wide."
    )
    return draw_figure(title, caption, draw)


def _finding_point(f: Finding) -> figures.ForestPoint | None:
    """A member in µs; a dose slope drawn as what it accounts for per request (slope × the
    twin's request-path syscalls), or not drawn when those were not counted."""
    c = f.contrast
    predicted = f.prediction.value
    if c.dose:
        if f.scaled is None or f.per_request_count is None:
            return None
        value, interval = f.scaled
        k = f.per_request_count
        # drawn as B − A like the others: the twin without its request-path transitions
        return figures.ForestPoint(
            f"{c.kind}: {c.a.impl} without its {k:.2f} request-path syscalls, idle {c.idle}",
            -value / 1000.0,
            -interval.high / 1000.0,
            -interval.low / 1000.0,
            None if predicted is None else -predicted * k / 1000.0,
            None if f.test is None else f.test.outcome,
        )
    if f.mean is None or f.interval is None:
        return None
    return figures.ForestPoint(
        f"{c.kind}: {c.change}, idle {c.idle}",
        f.mean / 1000.0,
        f.interval.low / 1000.0,
        f.interval.high / 1000.0,
        None if predicted is None else predicted / 1000.0,
        None if f.test is None else f.test.outcome,
    )


def _primary_figures(fams: Mapping[str, Family]) -> dict[str, Figure | FigureNote]:
    """Per environment, the forest of its primary family (µs; a dose slope in ns)."""
    out: dict[str, Figure | FigureNote] = {}
    for env, fam in fams.items():
        if not fam.findings:
            continue
        points = [p for f in fam.findings if (p := _finding_point(f)) is not None]
        title = f"{env}: the primary contrasts, p50 RTT at rx on the server's CPU"
        caption = (
            "Each member of the primary family: the mean over rounds of the paired "
            f"difference (B − A) with its interval, {fam.adjustment}; a dose-response slope "
            "drawn as what removing the twin's request-path syscalls would save (−slope × "
            "their count). Diamond: what the calibration predicted; colour: the "
            "prediction's equivalence test (held, failed, inconclusive). Members with too "
            "few rounds are in the table, not drawn."
        )
        if not points:
            out[env] = FigureNote(title, "no member of the family has enough rounds to draw")
            continue
        xlabel = "difference in p50 RTT (µs): B − A"
        draw = functools.partial(figures.forest, points, title, f"primary-{env}", xlabel)
        out[env] = draw_figure(title, caption, draw)
    return out


@dataclass(frozen=True)
class PrimaryRow:
    """One member of a primary family as the table shows it (µs; a dose in ns/syscall)."""

    finding: Finding
    unit: str
    baseline: str
    other: str
    difference: str
    interval: str
    predicted: str
    test: str


def _primary_rows(fam: Family) -> list[PrimaryRow]:
    rows = []
    for f in fam.findings:
        dose = bool(f.contrast.dose)

        def show(ns: float | None, *, per_unit: bool = dose) -> str:
            if ns is None:
                return "—"
            return f"{ns:+.1f}" if per_unit else f"{ns / 1000:+.2f}"

        interval = (
            f"[{show(f.interval.low)}, {show(f.interval.high)}]"
            if f.interval is not None
            else f.note
        )
        if f.scaled is not None:
            value, iv = f.scaled
            interval += (
                f"; × {f.per_request_count:.2f} request-path syscalls = "
                f"{value / 1000:+.2f} µs [{iv.low / 1000:+.2f}, {iv.high / 1000:+.2f}]"
            )
        predicted = (
            f"{show(f.prediction.value)} ({f.prediction.basis})"
            if f.prediction.value is not None
            else f"— ({f.prediction.basis})"
        )
        test = "—" if f.test is None else f"{f.test.outcome} ({f.test.method})"
        rows.append(
            PrimaryRow(
                f,
                "ns per syscall" if dose else "µs",
                "—" if f.baseline is None else fmt_us(f.baseline),
                "—" if f.other is None else fmt_us(f.other),
                show(f.mean),
                interval,
                predicted,
                test,
            )
        )
    return rows


def _effect_point(e: Effect) -> figures.ForestPoint:
    where = ", ".join(x for x in (e.key.impl, f"{e.key.mode} {e.key.size} B", e.context) if x)
    predicted = e.prediction.value
    return figures.ForestPoint(
        f"{e.factor}: {e.change} ({where})",
        e.estimate.mean / 1000.0,
        e.estimate.interval.low / 1000.0,
        e.estimate.interval.high / 1000.0,
        None if predicted is None else predicted / 1000.0,
        e.outcome,
    )


def _exploratory_figures(run: Run, found: Exploratory) -> dict[str, Figure | FigureNote]:
    """Per environment, the forest of its exploratory pingpong effects on p50 RTT."""
    out: dict[str, Figure | FigureNote] = {}
    for env in run.env_names:
        here = [
            e for e in found.effects
            if e.key.env == env and e.key.mode == question.PRIMARY_MODE
            and e.metric == question.PRIMARY_METRIC
        ]  # fmt: skip
        if not here:
            continue
        title = f"{env}: exploratory effects on pingpong p50 RTT"
        caption = (
            "Exploratory: every other pingpong difference the run could pair, each with its "
            "own 95% paired-t interval over rounds (not adjusted: read the q-values in the "
            "table). Diamond: the calibration's prediction; colour: its equivalence test."
        )
        points = [_effect_point(e) for e in here]
        xlabel = "effect on p50 RTT (µs): B − A"
        draw = functools.partial(figures.forest, points, title, f"exploratory-{env}", xlabel)
        out[env] = draw_figure(title, caption, draw)
    return out


@dataclass(frozen=True)
class AnatomyView:
    """One group of anatomy passes as the page shows it."""

    group: anatomy.Group
    composition: Figure | FigureNote
    tail: Figure | FigureNote


def _anatomy_views(run: Run) -> list[AnatomyView]:
    views = []
    for i, g in enumerate(anatomy.groups(run)):
        traced = [p for p in g.passes if p.record.ok]

        def draw_composition(
            g: anatomy.Group = g, traced: list[anatomy.Pass] = traced, i: int = i
        ) -> str:
            bars = [(f"{p.record.impl} ({p.record.median_count} median requests)",
                     p.composition) for p in traced]  # fmt: skip
            return figures.stage_bars(
                bars, f"Where the time goes: {g.title}", f"anatomy-{i}",
                "mean of each stage over the median requests (45th-55th percentile), traced",
            )  # fmt: skip

        def draw_tail(g: anatomy.Group = g, traced: list[anatomy.Pass] = traced, i: int = i) -> str:
            bars: list[tuple[str, Mapping[str, float]]] = []
            for p in traced:
                r = p.record
                tail = {n: v for n in r.stage_names if (v := r.tail.get(n)) is not None}
                bars.append((f"{r.impl}: median ({r.median_count})", p.composition))
                bars.append((f"{r.impl}: slowest 1 % ({r.tail_count})", tail))
            return figures.stage_bars(
                bars, f"The tail's anatomy: {g.title}", f"anatomy-tail-{i}",
                "mean of each stage over the slowest 1 % of sampled requests beside the median",
            )  # fmt: skip

        views.append(
            AnatomyView(
                g,
                draw_figure(f"anatomy {g.title}", "Stages in path order, fixed colours; the "
                            "number at a bar's end is its sum, the median requests' mean "
                            "traced RTT.", draw_composition),
                draw_figure(f"tail anatomy {g.title}", "Which stage makes the tail: the "
                            "slowest 1 % of sampled requests beside the median ones.",
                            draw_tail),
            )
        )  # fmt: skip
    return views


def _caveat(environment: Environment) -> str:
    """One line on what the environment's numbers are worth."""
    name, label = environment.name, environment.label()
    if environment.accel is None:
        return f"{name}: the run does not describe this environment."
    if environment.accel == "tcg" or environment.emulated:
        return (
            f"{name} is {label}: every instruction is emulated, so its microseconds are not "
            "those of hardware; compare its impls with each other only."
        )
    return (
        f"{name} is {label}: hypervisor wake-ups and neighbours move the numbers between "
        "runs; compare within this run only."
    )


@dataclass(frozen=True)
class CrossCheck:
    """One cross-check of the driver against an independent client, as the page shows it."""

    env: str
    impl: str
    topology: str
    rx_cpu: str
    idle: str
    error: str | None
    ours: str
    independent: str
    ratio: float | None
    within: str
    method: str


def _crosschecks(run: Run, timeout_ns: float | None) -> list[CrossCheck]:
    """The run's cross-checks (``crosschecks``: records the runner wrote, read leniently)."""
    raw = run.extra.get("crosschecks")
    out = []
    for c in raw if isinstance(raw, list) else []:
        if not isinstance(c, Mapping):
            continue
        ratio = metadata.number(c.get("ratio"))
        within = c.get("within_tolerance")
        error = c.get("error")
        out.append(
            CrossCheck(
                env=str(c.get("env")),
                impl=str(c.get("impl", "?")),
                topology=str(c.get("topology", "?")),
                rx_cpu=str(c.get("rx_cpu", "?")),
                idle=str(c.get("idle", "?")),
                error=None if error is None else str(error),
                ours=fmt_rtt(metadata.number(c.get("ours_p50_ns")), timeout_ns),
                independent=fmt_rtt(metadata.number(c.get("probe_p50_ns")), timeout_ns),
                ratio=ratio,
                within="—" if within is None else ("yes" if within else "no"),
                method=str(c.get("method") or ""),
            )
        )
    return out


def _env_info(environment: Environment) -> EnvInfo:
    """The environment's facts, calibration and driver fidelity, each shown through its
    registry (bench/host/metadata.py); keys it does not know are shown as they are."""
    name, env = environment.name, environment.record
    if not env:
        missing = (("description", "— results.json does not describe this environment"),)
        return EnvInfo(name, False, "unknown", missing, (), ())
    facts = [("machine", environment.label()), *metadata.ENVIRONMENT.rows(env)]
    cal = env.get("calibration")
    cal = cal if isinstance(cal, Mapping) else {}
    calibration = [
        (
            key.title,
            "— (not calibrated)" if cal.get(key.name) is None else key.format(cal[key.name]),
        )
        for key in metadata.CALIBRATION.values()
        if not key.hidden
    ] + metadata.CALIBRATION.unknown_rows(cal)
    fid = cal.get("driver_fidelity")
    fid = fid if isinstance(fid, Mapping) else {}
    fidelity = metadata.FIDELITY.rows(fid)
    if metadata.FIDELITY.has_hidden(fid):
        fidelity.append(("per-repetition values", "in results.json"))
    return EnvInfo(
        name,
        environment.emulated,
        str(env.get(metadata.ACCEL)),
        tuple(facts),
        tuple(calibration),
        tuple(fidelity),
    )


def _rel(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target.resolve(), start.resolve())).as_posix()


def _raw_links(run: Run, out_dir: Path) -> tuple[Link, list[Link]]:
    path = run.run_dir / "results.json"
    results = Link("results.json", _rel(path, out_dir), path.exists())
    files = sorted({r.samples.file for r in run.rows if r.samples is not None and r.samples.file})
    samples = [Link(f, _rel(run.run_dir / f, out_dir), (run.run_dir / f).exists()) for f in files]
    return results, samples


def _durations(durations: Sequence[float]) -> str:
    if not durations:
        return "—"
    if len(durations) <= 3:
        return ", ".join(f"{d:.3g} s" for d in durations)
    return f"{durations[0]:.3g} to {durations[-1]:.3g} s ({len(durations)} distinct)"


def _run_facts(run: Run) -> list[tuple[str, str]]:
    ok = [r for r in run.rows if r.ok]
    durations = sorted({r.duration_s for r in ok})
    trials = sorted({len(v) for v in run.groups().values()})
    cfg = run.config
    facts = [
        ("run id", run.run_id),
        ("created", run.created),
        ("complete", "yes" if run.complete else "NO — interrupted or still running"),
        ("rows", f"{len(run.rows)} ({len(ok)} ok, {len(run.rows) - len(ok)} failed)"),
        ("trials per configuration", ", ".join(map(str, trials)) or "—"),
        ("measured phase durations", _durations(durations)),
    ]
    for key in (
        "warmup_s",
        "sizes",
        "topologies",
        "rate_fractions",
        "load_fractions",
        "outstanding",
        "per_request_basis",
        "levels",
        "rx_cpus",  # rx_cpus, idles, client_waits: how files before the factor registry said it
        "idles",
        "client_waits",
        "server_levels",
        "order",
        "order_seed",
    ):
        if key == "levels" and isinstance(cfg.get(key), Mapping):
            chosen = cfg[key].items()
            facts.append((key, "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in chosen)))
        elif key in cfg:
            facts.append((key, metadata.show(cfg[key])))
    if run.tool:
        facts.append(("tool", metadata.show(run.tool)))
    migrated = run.extra.get("migrated")
    if isinstance(migrated, Mapping):
        facts.append(("read from", f"{migrated.get('from')}: {migrated.get('note')}"))
    return facts


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["us"] = fmt_us
    env.filters["num"] = lambda x: repr(float(x))
    env.globals["zip"] = zip
    env.globals["us"] = _us_or_dash
    env.globals["pct"] = _pct_or_dash
    return env


def _finite(x: object) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return None
    return float(x)


def _us_or_dash(ns: object) -> str:
    value = _finite(ns)
    return "—" if value is None else fmt_us(value)


def _pct_or_dash(share: object) -> str:
    value = _finite(share)
    return "—" if value is None else f"{100.0 * value:.0f} %"


def _timing_note(run: Run) -> str:
    counts = Counter(r.timing for r in run.rows)
    shown = {
        "probe-free": "probe-free",
        "hooks-held": "timed with the hooks held (under TCG switching them wedges vCPUs)",
        "probed": "timed with the probes on (written before timing and counting were split)",
    }
    return "; ".join(f"{n} row(s) {shown.get(t, t)}" for t, n in sorted(counts.items())) or "—"


def _reproduce(run: Run) -> dict[str, str]:
    """The command that made the run (with its seed), and the suite's version and commit."""
    command = str(run.config.get("command") or "")
    seed = run.config.get("order_seed")
    if command and seed is not None and "--seed" not in command:
        command += f" --seed {seed}"
    tool = run.tool or {}
    return {
        "command": command or "not recorded (a run made before commands were recorded)",
        "version": str(tool.get("version") or "?"),
        "commit": str(tool.get("commit") or "not recorded"),
    }


def build_page(run: Run, out_dir: Path) -> str:
    """The report's HTML for ``run`` as it will sit in ``out_dir``."""
    groups = run.groups()
    timeout_ns = _timeout_ns(run)
    envs = list(run.env_names)
    batch = FigureBatch()
    try:
        # the figures are queued, then drawn by workers while the tables are computed
        with batch.collecting():
            latency = {e: _latency_figures(run, e, groups, timeout_ns) for e in envs}
            load = {e: _load_figure(run, e, groups, timeout_ns) for e in envs}
            cost = {e: _cost_figure(run, e, groups) for e in envs}
            anatomy_views = _anatomy_views(run)
        batch.start()
        fams = primary_families(run)
        found = exploratory(run, fams)
        with batch.collecting():
            primary_figures = _primary_figures(fams)
            exploratory_figures = _exploratory_figures(run, found)
        batch.start()
        context = _page_context(run, out_dir, groups, fams, found, timeout_ns)
    finally:
        batch.finish()
    context |= {
        "latency": latency,
        "load": load,
        "cost": cost,
        "exploratory_figures": exploratory_figures,
        "anatomy": anatomy_views,
    }
    for i, (env, said, why_empty, caveat, _) in enumerate(context["answers"]):
        context["answers"][i] = (env, said, why_empty, caveat, primary_figures.get(env))
    return _environment().get_template("index.html.j2").render(**context)


def _page_context(
    run: Run,
    out_dir: Path,
    groups: Groups,
    fams: Mapping[str, Family],
    found: Exploratory,
    timeout_ns: float | None,
) -> dict[str, Any]:
    """Everything on the page but its figures."""
    families = {name: info.family for name, info in run.impls.items()}
    summary: SummaryTables = summary_tables(
        summarize(run),
        families,
        timeout_ns=timeout_ns,
        lost_pct=_lost_at_timeout(groups, timeout_ns),
    )
    envs = list(run.env_names)
    results_link, sample_links = _raw_links(run, out_dir)
    said = answers(run, fams)
    return {
        "run": run,
        "sections": SECTIONS,
        "synthetic": run.config.get("note") if run.config.get("synthetic") else None,
        "summary": summary,
        "column_groups": column_groups,
        "rtt": lambda ns: fmt_rtt(ns, timeout_ns),
        "question": question.statement(),
        "families": fams,
        "primary_rows": {env: _primary_rows(fam) for env, fam in fams.items()},
        "envs": [_env_info(run.environment(n)) for n in envs],
        "run_facts": _run_facts(run),
        "probe_costs": probe_costs(run),
        "doses": dose_responses(run),
        "exploratory": found,
        "answers": [
            (env, said.get(env), fams[env].why_empty, _caveat(run.environment(env)), None)
            for env in envs
        ],
        "not_measured": NOT_MEASURED,
        "reproduce": _reproduce(run),
        "crosschecks": _crosschecks(run, timeout_ns),
        "validity": tally(run.rows),
        "marks": {key: mark(rows) for key, rows in groups.items()},
        "precisions": precisions(groups, timeout_ns),
        "anatomy_skipped": anatomy.skipped(run),
        "anatomy_not_traced": anatomy.NOT_TRACED,
        "timing_note": _timing_note(run),
        "results_link": results_link,
        "sample_links": sample_links,
    }


def render_report(run: Run, out_dir: Path | None = None) -> Path:
    """Write ``run``'s report and return the index.html path (default folder:
    reports/<run-id> under the checkout, or under the current folder for an installed
    tool)."""
    if out_dir is not None:
        out = Path(out_dir)
    else:
        reports = (work_root() / "reports").resolve()
        out = (reports / run.run_id).resolve()
        if out.parent != reports:
            raise ResultsError(f"run id {run.run_id!r} would write outside {reports}")
    out.mkdir(parents=True, exist_ok=True)
    index = out / "index.html"
    write_atomic(index, build_page(run, out))
    return index
