"""Render a run's results.json into one self-contained HTML page (inline SVG, no CDN).

``render_report(run_dir)`` writes reports/<run-id>/index.html under the project root (or
``out_dir/index.html``) and returns its path.  The page reads nothing but results.json;
it links to the raw files with relative paths.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from bench import PROJECT_ROOT
from bench.analysis.answer import ANSWER_MODE, NOT_MEASURED, answers
from bench.analysis.claim import Claim, evaluate_claim, fmt_us
from bench.analysis.dose import dose_responses
from bench.analysis.effects import Effect, effects, verdicts
from bench.analysis.probe_cost import probe_costs
from bench.analysis.stats import median
from bench.analysis.summary import summarize
from bench.report import figures
from bench.report.tables import SummaryTables, column_groups, summary_tables
from bench.results.descriptions import Environment
from bench.results.metrics import metric
from bench.results.rows import Configuration, PhaseRow
from bench.results.run import Run
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
    ("environment", "Environment and methodology"),
    ("raw-data", "Raw data"),
)


FIDELITY_KEYS = (
    "our_rtt_p50_ns",
    "sockperf_rtt_p50_ns",
    "rtt_ratio",
    "rtt_ratio_ci95",
    "rtt_ratio_method",
    "rtt_within_5pct_verdict",
    "rtt_ratio_socket_matched",
    "rtt_ratio_socket_matched_ci95",
    "rtt_socket_matched_within_5pct_verdict",
    "our_send_rps",
    "sockperf_send_rps",
    "send_ratio",
)


@dataclass(frozen=True)
class Figure:
    title: str
    svg: str
    caption: str


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


def _latency_figures(run: Run, env: str, groups: Groups) -> list[Figure]:
    colors = _colors(run)
    out = []
    for mode in MODES:
        size = _default_size(run, env, mode, groups)
        if size is None:
            continue
        keys = [k for k in groups if k.env == env and k.mode == mode and k.size == size]
        note = ""
        if mode == "rate":
            top = max((k.load_fraction or 0.0) for k in keys)
            keys = [k for k in keys if (k.load_fraction or 0.0) == top]
            note = f" at load fraction {top:g} (the highest measured)"
        series: dict[str, Any] = {}
        for k in sorted(keys, key=lambda k: run.impl(k.impl).sort_key()):
            hist = figures.merge_histograms([r.histogram for r in groups[k]])
            if k.impl not in series or series[k.impl] is None:
                series[k.impl] = hist
        title = f"{env}: {mode}, {size} B{note}"
        svg = figures.latency_cdf(series, colors, title, f"cdf-{env}-{mode}")
        caption = (
            f"Latency in {env}, {mode} mode, {size}-byte requests{note}: HDR histograms of "
            "every trial merged per impl; left the CDF, right the percentile plot (latency at "
            "percentile p against 1/(1 − p), so 99 %, 99.9 % and 99.99 % are evenly spaced)."
        )
        out.append(Figure(title, svg, caption))
    return out


def _load_figure(run: Run, env: str, groups: Groups) -> Figure | None:
    curves: dict[str, list[figures.LoadPoint]] = {}
    p50_of, p99_of = metric("rtt_p50").read, metric("rtt_p99").read
    sizes = sorted({k.size for k in groups if k.env == env and k.mode == "rate"})
    if not sizes:
        return None
    size = 64 if 64 in sizes else sizes[0]
    for k, rows in groups.items():
        if k.env != env or k.mode != "rate" or k.size != size:
            continue
        offered = median(r.offered_rps or r.send_rps for r in rows)
        thr = median(r.throughput_rps for r in rows)
        if offered is None or thr is None:
            continue
        p50 = median(p50_of(r) for r in rows)
        p99 = median(p99_of(r) for r in rows)
        curves.setdefault(k.impl, []).append(
            figures.LoadPoint(
                offered,
                thr,
                None if p50 is None else p50 / 1000,
                None if p99 is None else p99 / 1000,
            )
        )
    title = f"{env}: rate mode, {size} B"
    return Figure(
        title,
        figures.load_curves(
            {i: curves[i] for i in run.impl_order(curves)},
            _colors(run),
            title,
            f"load-{env}",
        ),
        f"Open-loop rate mode in {env}: replies/s and RTT (from the scheduled send time) "
        "against the offered load; medians over trials.",
    )


def _cost_figure(run: Run, env: str, groups: Groups) -> Figure | None:
    mode = next((m for m in MODES if any(k.env == env and k.mode == m for k in groups)), None)
    if mode is None:
        return None
    size = _default_size(run, env, mode, groups)
    costs: dict[str, dict[str, float | None]] = {}
    for k, rows in groups.items():
        if k.env == env and k.mode == mode and k.size == size and k.load_fraction is None:
            costs[k.impl] = {
                kind: median(r.per_request.cpu_ns.get(kind) for r in rows)
                for kind in figures.CPU_KINDS
            }
    title = f"{env}: CPU per request, {mode}, {size} B"
    return Figure(
        title,
        figures.cost_breakdown({i: costs[i] for i in run.impl_order(costs)}, title, f"cost-{env}"),
        f"System-wide CPU time per answered request in {env} by kind (medians over trials); "
        "kernel-thread and softirq work belong to no process, hence system-wide.",
    )


def _effect_figures(
    run: Run, found: Sequence[Effect], *, default_levels_only: bool, prefix: str
) -> dict[str, Figure]:
    """Per environment, the forest of its pingpong effects on p50 RTT: all of them, or
    (for the answer) only those measured at the default levels of the other factors."""
    out = {}
    for env in run.env_names:
        here = [e for e in found if e.key.env == env and e.key.mode == ANSWER_MODE]
        if default_levels_only:
            here = [e for e in here if not e.context]
        if any(e.metric == "rtt_p50" for e in here):
            scope = "at the default levels" if default_levels_only else "at every level"
            title = f"{env}: effects on pingpong p50 RTT {scope}, measured and predicted"
            out[env] = Figure(
                title,
                figures.effects_forest(here, title, f"{prefix}-{env}"),
                "Each factor's effect: mean over rounds of the paired difference (level B "
                "minus level A) with its 95% Student-t interval (n = rounds, in the table); "
                "the diamond is what the calibration predicted from the counted syscalls and "
                "switches. Orange: the interval does not contain the prediction."
                + (" Effects at the other levels: in The claim." if default_levels_only else ""),
            )
    return out


def _claim_figures(run: Run, claim: Claim) -> dict[str, Figure]:
    out = {}
    for env in run.env_names:
        pairs = [p for p in claim.pairs if p.env == env]
        if pairs:
            title = f"{env}: savings vs baseline"
            out[env] = Figure(
                title,
                figures.claim_bars(pairs, title, f"claim-{env}"),
                "Saving (baseline minus candidate, mean over trials) split into Δsyscalls × "
                "calibrated null-syscall cost, Δcontext switches × calibrated switch cost and "
                "the rest; whiskers: the 95% interval (paired t over rounds, or bootstrap where "
                "rounds do not pair). Negative: the candidate costs more.",
            )
    return out


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


def _show(value: object) -> str:
    if value is None:
        return "— (not measured)"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_show(v)}" for k, v in value.items()) or "—"
    return str(value)


def _show_ratio_interval(ci: Any) -> str:
    if not isinstance(ci, list) or len(ci) != 2:
        return "— (fewer than two repetitions)"
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _show_ratio(part: Mapping[str, Any]) -> str:
    ratio = part.get("ratio")
    if ratio is None:
        return "— (not measured)"
    return f"{ratio:.3f} {_show_ratio_interval(part.get('ci95'))} ({part.get('method')})"


def _pm_qos(value: Any) -> str:
    if value is None:
        return "— (not readable)"
    return "no limit requested" if int(value) >= 2_000_000_000 else f"{int(value)} µs"


def _server_host_facts(env: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Two hosts: the topology, and the server host's kernel, CPU and interface."""
    there: Mapping[str, Any] = env.get("server_host") or {}
    if not there:
        return []
    nic = there.get("nic")
    link = (
        f"{nic.get('interface')}, driver {nic.get('driver')}, queues {nic.get('sysfs_queues')}"
        if isinstance(nic, Mapping)
        else _show(nic)
    )
    return [
        ("topology", f"two-hosts: the driver here, the server on {there.get('target')}"),
        ("server host kernel", _show(there.get("kernel"))),
        ("server host CPU", f"{there.get('cpu_model')} × {there.get('cpu_count')}"),
        ("server host link", f"{there.get('address')} on {link}"),
    ]


def _env_info(environment: Environment) -> EnvInfo:
    name, env = environment.name, environment.record
    if not env:
        missing = (("description", "— results.json does not describe this environment"),)
        return EnvInfo(name, False, "unknown", missing, (), ())
    facts = [
        ("kernel", _show(env.get("kernel"))),
        ("CPU", f"{env.get('cpu_model')} × {env.get('cpu_count')}"),
        ("machine", environment.label()),
        ("acceleration", f"{env.get('accel')}" + (" (emulated)" if env.get("emulated") else "")),
        ("Python", _show(env.get("python"))),
        ("placement", _show(env.get("placement") or None)),
    ]
    evidence = (env.get("virtualization") or {}).get("evidence") or []
    if evidence:
        facts.append(("virtualization evidence", "; ".join(str(e) for e in evidence)))
    facts += _server_host_facts(env)
    idle: Mapping[str, Any] = env.get("cpuidle") or {}
    if idle:
        states = ", ".join(
            f"{s.get('name')} ({s.get('latency_us')} µs{', disabled' if s.get('disabled') else ''})"
            for s in idle.get("states") or []
        )
        facts.append(
            ("cpuidle", f"driver {idle.get('driver')}, governor {idle.get('governor')}; {states}")
        )
    if "pm_qos_cpu_latency_us" in env:
        facts.append(("PM QoS CPU latency", _pm_qos(env.get("pm_qos_cpu_latency_us"))))
    clock: Mapping[str, Any] = env.get("clocksource") or {}
    if clock:
        facts.append(
            (
                "clocksource",
                f"{clock.get('current')} (available: {', '.join(clock.get('available') or [])})",
            )
        )
    for vuln, state in sorted((env.get("mitigations") or {}).items()):
        facts.append((f"mitigation: {vuln}", str(state)))
    cal = env.get("calibration") or {}
    calibration = [
        (label, "— (not calibrated)" if cal.get(key) is None else f"{cal[key]:,.0f} ns")
        for key, label in (
            ("null_syscall_ns", "null syscall"),
            ("context_switch_ns", "context switch"),
            ("wakeup_ns", "wake-up"),
        )
    ]
    fid: Mapping[str, Any] = cal.get("driver_fidelity") or {}
    first = [k for k in FIDELITY_KEYS if k in fid]
    fidelity = [
        (k, _show_ratio_interval(fid[k]) if k.endswith("_ci95") else _show(fid[k]))
        for k in first + [k for k in fid if k not in first]
        if k.endswith("_ci95") or not isinstance(fid[k], Mapping | list)
    ]
    parts: Mapping[str, Any] = fid.get("rtt_ratio_parts") or {}
    fidelity += [
        (f"rtt ratio, {name.replace('_', ' ')}", _show_ratio(part))
        for name, part in parts.items()
        if isinstance(part, Mapping)
    ]
    if any(isinstance(v, Mapping | list) for v in fid.values()):
        fidelity.append(("per-repetition values", "in results.json"))
    return EnvInfo(
        name,
        bool(env.get("emulated")),
        str(env.get("accel")),
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
        "rx_cpus",
        "idles",
        "client_waits",
        "server_levels",
        "order",
        "order_seed",
    ):
        if key in cfg:
            facts.append((key, _show(cfg[key])))
    if run.tool:
        facts.append(("tool", _show(run.tool)))
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
    return env


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
    families = {name: info.family for name, info in run.impls.items()}
    summary: SummaryTables = summary_tables(summarize(run), families)
    claim = evaluate_claim(run)
    envs = list(run.env_names)
    results_link, sample_links = _raw_links(run, out_dir)
    found_effects = effects(run)
    effect_figures = _effect_figures(
        run, found_effects, default_levels_only=False, prefix="effects"
    )
    answer_figures = _effect_figures(
        run, found_effects, default_levels_only=True, prefix="answer-effects"
    )
    said = answers(run, found_effects)
    context = {
        "run": run,
        "sections": SECTIONS,
        "synthetic": run.config.get("note") if run.config.get("synthetic") else None,
        "summary": summary,
        "column_groups": column_groups,
        "latency": {e: _latency_figures(run, e, groups) for e in envs},
        "load": {e: _load_figure(run, e, groups) for e in envs},
        "cost": {e: _cost_figure(run, e, groups) for e in envs},
        "claim": claim,
        "claim_figures": _claim_figures(run, claim),
        "envs": [_env_info(run.environment(n)) for n in envs],
        "run_facts": _run_facts(run),
        "probe_costs": probe_costs(run),
        "doses": dose_responses(run),
        "effects": found_effects,
        "effect_verdicts": verdicts(run, found_effects),
        "effect_figures": effect_figures,
        "answers": [
            (env, said.get(env), _caveat(run.environment(env)), answer_figures.get(env))
            for env in envs
            if env in said or env in answer_figures
        ],
        "not_measured": NOT_MEASURED,
        "reproduce": _reproduce(run),
        "crosschecks": list(run.extra.get("crosschecks") or []),
        "timing_note": _timing_note(run),
        "results_link": results_link,
        "sample_links": sample_links,
    }
    return _environment().get_template("index.html.j2").render(**context)


def render_report(run: Run, out_dir: Path | None = None) -> Path:
    """Write ``run``'s report and return the index.html path (default folder:
    reports/<run-id> under the project)."""
    out = Path(out_dir) if out_dir is not None else PROJECT_ROOT / "reports" / run.run_id
    out.mkdir(parents=True, exist_ok=True)
    index = out / "index.html"
    write_atomic(index, build_page(run, out))
    return index
