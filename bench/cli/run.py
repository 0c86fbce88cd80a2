"""``bench run``: measure impls and write results/<run-id>/results.json; print the summary."""

from __future__ import annotations

import argparse
import json
import secrets
import shlex
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench import work_root
from bench.cli.host import holding_host
from bench.cli.live import display
from bench.cli.options import cpu, key_values, port, positive_float
from bench.cli.remote_options import add_server_host_arguments, server_host
from bench.driver.modes import MODES
from bench.factors import FACTORS
from bench.factors import label as factors_label
from bench.impl.registry import discover
from bench.protocol import DEFAULT_PORT
from bench.results.rows import Configuration
from bench.results.run import Run
from bench.runner.budget import BUDGETS, DEFAULT_BUDGET, defaults_text
from bench.runner.config import DESIGNS, ConfigError, RunConfig
from bench.runner.design import design_impls
from bench.runner.lifecycle import select
from bench.runner.orchestrate import run_all
from bench.runner.progress import StepLines
from bench.topology import TOPOLOGIES, TWO_HOSTS

if TYPE_CHECKING:
    from bench.analysis.summary import Summary, SummaryLine


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--impl", action="append", default=[], help="repeatable; default: all")
    p.add_argument("--mode", action="append", choices=MODES, default=[])
    p.add_argument("--size", action="append", type=int, default=[], help="bytes; repeatable")
    p.add_argument("--topology", action="append", choices=TOPOLOGIES, default=[])
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help=f"seconds per measured phase ({defaults_text('duration_s')})",
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=None,
        help=f"seconds before each phase ({defaults_text('warmup_s')})",
    )
    p.add_argument(
        "--trials",
        type=int,
        default=None,
        help="rounds; of the claim's blocks under --design standard|claim "
        f"({defaults_text('claim_trials')}), of everything under --design matrix "
        f"({defaults_text('matrix_trials')})",
    )
    p.add_argument(
        "--design",
        choices=DESIGNS,
        default=None,
        help="standard (default without --impl): the claim's ladder at every receive-CPU "
        "and idle level plus the transition dose-response, then a survey of every impl and "
        "mode; claim: the claim's blocks only; ladder: the vm ladder at both receive-CPU "
        "levels and the default idle policy; matrix (default with --impl): the product of "
        "the options",
    )
    p.add_argument(
        "--survey-trials",
        type=int,
        default=None,
        help=f"rounds of the standard survey ({defaults_text('survey_trials')})",
    )
    p.add_argument(
        "--claim-duration",
        type=positive_float,
        default=None,
        help=f"seconds per phase of the claim's blocks ({defaults_text('claim_duration_s')})",
    )
    p.add_argument(
        "--rate",
        action="append",
        type=positive_float,
        default=[],
        help="absolute offered rate (req/s) for --mode rate; repeatable",
    )
    p.add_argument(
        "--rate-fraction",
        action="append",
        type=float,
        default=[],
        help="offered rate as a fraction of the impl's measured maximum; repeatable "
        f"({defaults_text('rate_fractions')})",
    )
    p.add_argument("--outstanding", type=int, default=1, help="pingpong requests in flight")
    p.add_argument("--server-cpu", type=cpu, default=1)
    p.add_argument("--client-cpu", type=cpu, default=0)
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the schedule (impl and phase order in each round); default: drawn "
        "anew and recorded in results.json",
    )
    for f in FACTORS:  # the run factors (bench/factors.py): repeatable, each level measured
        p.add_argument(
            f.flag,
            dest=f.name,
            action="append",
            choices=f.levels,
            default=[],
            help=f"{f.help}; default {f.default}; repeatable, each level measured"
            + ("" if f.modes is None else f" (applies to --mode {', '.join(f.modes)})"),
        )
    p.add_argument("--port", type=port, default=DEFAULT_PORT)
    p.add_argument("--out", type=Path, default=work_root() / "results")
    p.add_argument(
        "--env",
        choices=("auto", "host", "vm"),
        default=None,
        help="auto (default): the host, plus a VM guest when an impl needs what the host "
        "lacks; --quick alone measures the host only",
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--quick",
        action="store_true",
        help="a look in about a minute: the host only, 3 rounds of short phases",
    )
    budget.add_argument(
        "--full",
        action="store_true",
        help="the whole experiment: the vm's claim at every idle level and with the "
        "dose-response too, the survey's whole load sweep, 1 s phases (the default spends "
        "about ten minutes)",
    )
    p.add_argument("--no-calibrate", action="store_true")
    p.add_argument(
        "--sample-cap",
        type=int,
        default=None,
        help=f"latency samples kept per phase ({defaults_text('sample_cap')})",
    )
    p.add_argument(
        "--anatomy-requests",
        type=int,
        default=None,
        help="sampled requests per anatomy pass of the claim's ladder, traced after its "
        f"rounds (0: none; {defaults_text('anatomy_requests')})",
    )
    p.add_argument(
        "--vm-timeout",
        type=positive_float,
        default=None,
        help="guest watchdog, seconds (default: from the number of phases the guest runs)",
    )
    p.add_argument("--report", action="store_true", help="render the HTML report at the end")
    add_server_host_arguments(p)
    p.add_argument("--env-name", default="host", help=argparse.SUPPRESS)
    p.add_argument("--accel", default="native", help=argparse.SUPPRESS)
    p.add_argument("--server-option", action="append", default=[], help=argparse.SUPPRESS)
    p.add_argument(
        "--server-levels",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="a server option measured at each value, e.g. extra_syscalls=0,100,200 "
        "(a dose-response); repeatable, every combination measured",
    )
    p.add_argument("--vm-fault", default=None, help=argparse.SUPPRESS)
    # a whole RunConfig as JSON (bench/runner/in_guest.py writes one for the guest)
    p.add_argument("--config", type=Path, default=None, help=argparse.SUPPRESS)
    # A guest's run prints its steps as lines for the host to render (bench/runner/progress.py)
    p.add_argument("--progress-lines", action="store_true", help=argparse.SUPPRESS)


def server_levels(items: list[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``KEY=V1,V2`` items as (KEY, values) pairs; a usage error for a malformed one."""
    levels: list[tuple[str, tuple[str, ...]]] = []
    for item in items:
        key, sep, values = item.partition("=")
        parts = tuple(v.strip() for v in values.split(","))
        if not sep or not key.strip() or not all(parts):
            raise ConfigError(f"--server-levels {item!r}: expected KEY=V1,V2,...")
        if key.strip() in dict(levels):
            raise ConfigError(f"--server-levels {key.strip()}: given twice")
        levels.append((key.strip(), parts))
    return tuple(levels)


def budget_of(args: argparse.Namespace) -> str:
    return "quick" if args.quick else "full" if args.full else DEFAULT_BUDGET


def config_file(path: Path, args: argparse.Namespace) -> RunConfig:
    """The RunConfig a file holds (as results.json's ``config`` records one: how a guest
    is told what to measure); only where its results go and what it is called here come
    from the arguments."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--config {path}: not readable as JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"--config {path}: not a JSON object")
    return replace(
        RunConfig.from_json(raw), out_root=args.out, env_name=args.env_name, accel=args.accel
    )


def run_config(args: argparse.Namespace) -> RunConfig:
    """The RunConfig the arguments ask for (ConfigError, a usage error, when they do not fit)."""
    if args.config is not None:
        return config_file(args.config, args)
    budget = budget_of(args)
    quick = budget == "quick"
    spend = BUDGETS[budget]
    remote = server_host(args, args.server_host)
    design = args.design or ("matrix" if args.impl or remote else "standard")
    topologies = tuple(args.topology) or ("lo",)
    if remote is not None:
        topologies = tuple(args.topology) or (TWO_HOSTS,)
    default_trials = spend.matrix_trials if design == "matrix" else spend.claim_trials
    return RunConfig(
        out_root=args.out,
        impls=tuple(args.impl),
        modes=tuple(args.mode) or spend.modes,
        sizes=tuple(args.size) or (64,),
        topologies=topologies,
        duration_s=args.duration if args.duration is not None else spend.duration_s,
        warmup_s=args.warmup if args.warmup is not None else spend.warmup_s,
        trials=args.trials if args.trials is not None else default_trials,
        design=design,
        matrix_trials=(
            args.survey_trials if args.survey_trials is not None else spend.survey_trials
        ),
        claim_duration_s=args.claim_duration or spend.claim_duration_s,
        rate_fractions=tuple(args.rate_fraction) or spend.rate_fractions,
        rates=tuple(args.rate),
        outstanding=args.outstanding,
        server_cpu=args.server_cpu,
        client_cpu=args.client_cpu,
        port=args.port,
        env=args.env or ("host" if quick or remote else "auto"),
        env_name=args.env_name,
        accel=args.accel,
        calibrate=not args.no_calibrate,
        sample_cap=args.sample_cap if args.sample_cap is not None else spend.sample_cap,
        anatomy_requests=(
            args.anatomy_requests if args.anatomy_requests is not None else spend.anatomy_requests
        ),
        server_options=key_values(args.server_option, "--server-option"),
        vm_timeout_s=args.vm_timeout,
        order_seed=args.seed if args.seed is not None else secrets.randbits(32),
        server_levels=server_levels(args.server_levels),
        levels={f.name: tuple(getattr(args, f.name)) or (f.default,) for f in FACTORS},
        budget=budget,
        command=shlex.join(["python", "-m", "bench", *getattr(args, "raw_argv", [])]),
        server_host=remote,
    )


# -- the end-of-run summary -------------------------------------------------------------

HEADERS = (
    "env", "topo", "impl", "mode", "size", "trials", "p50 µs", "p99 µs", "replies/s", "loss %",
    "sys/req srv", "sys/req cli", "ctx/req srv", "ctx/req sys", "CPU µs/req",
)  # fmt: skip


def _fmt(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "—" if value is None else f"{value / scale:,.{digits}f}"


def _mode_label(key: Configuration) -> str:
    label = key.mode
    if key.load_fraction is not None:
        label = f"{key.mode}@{key.load_fraction:g}"
    elif key.offered_rps is not None:
        label = f"{key.mode}@{key.offered_rps:.0f}/s"
    label += factors_label(key.factor_levels())
    if key.server_options:
        label += escape(f" [{key.server_options}]")
    return label


def _server_ctx(line: SummaryLine) -> str:
    """Server context switches per request; a kernel thread's, marked (kt), when it serves."""
    own = line.value("server_ctx_per_req")
    if own is not None:
        return _fmt(own, 1, 2)
    kthread = line.value("kthread_ctx_per_req")
    return "—" if kthread is None else f"{_fmt(kthread, 1, 2)} (kt)"


def summary_table(run: Run, summary: Summary) -> Table:
    table = Table(
        title=f"hellobench run {run.run_id} (RTT: merged histograms; others: medians over trials)"
    )
    for col in HEADERS:
        table.add_column(col, justify="left" if col in ("env", "topo", "impl", "mode") else "right")
    for env, lines in summary.lines.items():
        for line in lines:
            k, v = line.key, line.value
            table.add_row(
                env, k.topology, k.impl, _mode_label(k), str(k.size),
                f"{line.trials}/{line.attempted}",
                _fmt(v("rtt_p50"), 1e3, 2), _fmt(v("rtt_p99"), 1e3, 2),
                _fmt(v("throughput_rps"), 1, 0), _fmt(v("loss_pct"), 1, 2),
                _fmt(v("server_syscalls_per_req"), 1, 2), _fmt(v("client_syscalls_per_req"), 1, 2),
                _server_ctx(line), _fmt(v("system_ctx_per_req"), 1, 2),
                _fmt(v("cpu_ns_per_req"), 1e3, 2),
            )  # fmt: skip
        attempted = run.groups(ok_only=False)
        for k in summary.failed_configurations.get(env, ()):
            table.add_row(
                env, k.topology, k.impl, _mode_label(k), str(k.size),
                f"0/{len(attempted[k])}", "[red]failed[/red]", *[""] * 8,
            )  # fmt: skip
    return table


def footnotes(run: Run) -> list[str]:
    """Why some cells are empty ("—"): where no server process exists, and skipped impls."""
    notes = {r.impl: r.accounting.note for r in run.rows if r.accounting and r.accounting.note
             and not r.accounting.server_process}  # fmt: skip
    lines = [f"— {impl}: {note}" for impl, note in sorted(notes.items())]
    lines += [f"skipped {s.impl} ({s.env}): {s.reason}" for s in run.skipped]
    return lines


def run(args: argparse.Namespace, console: Console) -> int:
    cfg = run_config(args)
    select(design_impls(cfg), discover())  # an unknown impl is bad input: said before any wait
    with holding_host(args):
        if args.progress_lines:
            outcome = run_all(cfg, StepLines(), vm_fault=args.vm_fault)
        else:
            with display(console) as shown:
                outcome = run_all(cfg, shown, vm_fault=args.vm_fault)
    recording = outcome.recording
    if args.progress_lines:  # a guest: the host summarizes and answers for the whole run
        for failure in recording.failures:
            console.print(f"[red]failed: {failure}[/red]")
        console.print(f"results: {recording.run.path}")
        return outcome.status
    # the analysis (pandas, scipy) is imported here, not by a guest, where imports are slow
    from bench.analysis.answer import one_sentence
    from bench.analysis.summary import summarize
    from bench.analysis.validity import tally

    console.print(summary_table(recording.run, summarize(recording.run)))
    for line in footnotes(recording.run):
        console.print(line)
    for failure in recording.failures:
        console.print(f"[red]failed: {failure}[/red]")
    report = None
    if args.report:
        from bench.report.render import render_report  # matplotlib: only when asked for

        report = render_report(recording.run)
    console.print()
    for gates in tally(recording.run.rows):
        console.print(escape(gates.line()), highlight=False)
    console.print(f"answer: {one_sentence(recording.run)}", highlight=False)
    console.print(f"report: {report if report else '(not rendered; add --report)'}")
    console.print(f"results: {recording.run.path}")
    return outcome.status
