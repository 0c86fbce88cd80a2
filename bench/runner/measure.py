"""Measuring in one environment (the one this process runs in): impl manifest → server
started → driver floods it while the probes record → rows saved to results.json after
every phase.

Trials are rounds: round 0 measures every impl once, then round 1, and so on, so that drift
of a noisy machine hits every impl alike.  Within a round the impls come in a random order,
and within an impl's turn its phases too, drawn from the run's recorded seed (``order``):
the same seed gives the same schedule.  Each
phase runs under its factor levels (receive steering, idle policy: runner/conditions.py,
set just before it and undone just after; how the client waits: a driver option).
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from typing import Any

from bench.calibration.crosscheck import crosscheck
from bench.calibration.fidelity import unavailable as fidelity_unavailable
from bench.calibration.record import run_calibration
from bench.driver.client import DriverConfig, DriverError, run_driver
from bench.driver.modes import Mode
from bench.errors import HellobenchError
from bench.factors import DEFAULTS, driver_options, for_mode
from bench.factors import label as factors_label
from bench.host.description import collect_environment
from bench.host.kernel_log import marked_watch
from bench.impl.api import Impl, ImplError, ServerConfig
from bench.impl.registry import Entry, discover
from bench.metrics.anchors import measurement_hooks_held
from bench.results.rows import PhaseRow
from bench.runner.anatomy import trace_ladder, why_not_traced
from bench.runner.budget import BUDGETS
from bench.runner.conditions import phase_conditions
from bench.runner.config import RunConfig, canonical_options, level_combinations
from bench.runner.design import Block, blocks, design_impls
from bench.runner.lifecycle import prepare, running_server, select
from bench.runner.phase import PhaseSpec, failed_row, measure_phase
from bench.runner.progress import Progress, Step
from bench.runner.recording import Recording
from bench.runner.validity import retry_budget, retry_reason
from bench.system import ledger
from bench.topology import Topology, TopologyError, open_topology

MAX_PROBE_S = 1.0
RatePlan = list[tuple[float, float | None]] | str  # (offered rps, fraction) pairs, or why none
PlanKey = tuple[str, int, tuple[tuple[str, str], ...]]  # impl, size, the probe's factor levels
HOOKS_HELD_UNDER_TCG = "under TCG the hooks stay on for the whole run (switching them wedges vCPUs)"


def driver_config(
    cfg: RunConfig,
    topo: Topology,
    mode: Mode,
    size: int,
    rate: float | None,
    seed: int,
    settings: Mapping[str, str] = DEFAULTS,
) -> DriverConfig:
    """The driver's configuration for a phase of ``mode`` at the factor levels
    ``settings`` (the driver factors become its options: bench/factors.py)."""
    options: dict[str, Any] = driver_options(settings, mode)
    return DriverConfig(
        mode=mode,
        addr=topo.server_addr,
        port=cfg.port,
        size=size,
        duration_s=cfg.duration_s,
        warmup_s=cfg.warmup_s,
        outstanding=cfg.outstanding if mode == "pingpong" else 1,
        rate_rps=rate,
        timeout_s=cfg.reply_timeout_s,
        cpu=cfg.client_cpu,
        netns=topo.client_netns,
        sample_cap=cfg.sample_cap,
        seed=seed,
        **options,
    )


def server_config(
    cfg: RunConfig, topo: Topology, level: dict[str, str] | None = None
) -> ServerConfig:
    return topo.server_config(cfg.port, cfg.server_cpu, {**cfg.server_options, **(level or {})})


class Runner:
    """Measures every selected impl in the environment ``cfg.env_name`` names."""

    def __init__(self, cfg: RunConfig, recording: Recording, progress: Progress) -> None:
        self.cfg = cfg
        self.recording = recording
        self.progress = progress
        self.env = cfg.env_name
        self.samples_dir = recording.run_dir / "samples"
        self.hooks_held: str | None = None
        self.done = 0  # phases measured so far in this environment
        self.total: int | None = None  # phases planned in this environment
        self.rounds: int | None = None
        self.retry_round: int | None = None  # the round the re-run budget is of
        self.retries_left = 0

    def describe(self) -> None:
        """Record the environment, with its calibration unless the run said not to."""
        environment = collect_environment(
            self.env,
            self.cfg.accel,
            {
                "server_cpu": self.cfg.server_cpu,
                "client_cpu": self.cfg.client_cpu,
                "policy": "server and client pinned to different CPUs",
            },
        )
        if self.cfg.calibrate:
            self.progress.step(
                Step(self.env, "calibrate", "calibrating: null syscall, wake-ups, sockperf")
            )
            self.progress(f"[{self.env}] calibrating: null syscall, context switch, sockperf")
            emulated_default = self.cfg.accel == "tcg" and self.cfg.budget != "full"
            environment["calibration"] = run_calibration(
                client_cpu=self.cfg.client_cpu,
                server_cpu=self.cfg.server_cpu,
                quick=self.cfg.budget == "quick",
                fidelity=not emulated_default,
                rtt_repetitions=BUDGETS[self.cfg.budget].fidelity_rtt_repetitions,
                emulated=self.cfg.accel == "tcg",
            )
            if emulated_default:
                environment["calibration"]["driver_fidelity"] = fidelity_unavailable(
                    "not measured under TCG unless --full: the driver is checked against "
                    "sockperf on the host, and under emulation it takes minutes"
                )
        else:
            environment["calibration"] = None
        self.recording.run.environments[self.env] = environment
        self.recording.save()

    def usable(self, entries: list[Entry]) -> list[Impl]:
        """The impls that can run here, built; the others are skipped with their reason."""
        impls: list[Impl] = []
        for entry in entries:
            ready = prepare(entry)
            if ready.impl is None:
                shown = "build failed" if ready.build_failed else ready.reason
                self.progress(f"[{self.env}] skip {entry.name}: {shown}")
                self.recording.skip(entry.name, self.env, ready.reason or "unavailable")
                continue
            impls.append(ready.impl)
        return impls

    def measure(self, impls: list[Impl], opened: Sequence[Topology] = ()) -> None:
        """Every impl, trial and topology.  Timed runs are probe-free: the measurement hooks
        are switched on for each counting run only — except under TCG, where switching
        them (a static-key text patch on every vCPU) has wedged a vCPU: there they stay on
        for the whole run and every row says it was timed with them held.  ``opened``:
        topologies the caller set up (two hosts), measured instead of the configured ones."""
        bpf = any(impl.manifest.kind == "ebpf" for impl in impls)
        self.hooks_held = HOOKS_HELD_UNDER_TCG if self.cfg.accel == "tcg" else None
        held: AbstractContextManager[list[str]] = (
            measurement_hooks_held(bpf_stats=bpf) if self.hooks_held else nullcontext([])
        )
        with held as notes:
            for note in notes:
                self.progress(f"[{self.env}] measurement hook not held: {note}")
            for topo in opened:  # set up by the caller (two hosts)
                self._measure_topology(impls, topo)
            for topo_name in () if opened else self.cfg.topologies:
                try:
                    with open_topology(topo_name) as topo:
                        self._measure_topology(impls, topo)
                except TopologyError as exc:
                    for impl in impls:
                        self.recording.skip(impl.name, self.env, f"topology {topo_name}: {exc}")

    def _offered_rates(
        self, impl: Impl, topo: Topology, size: int, settings: Mapping[str, str]
    ) -> RatePlan:
        """(offered rps, fraction of the measured maximum) pairs for the rate mode; the
        maximum is probed under the same conditions as the phases that use it."""
        if self.cfg.rates:
            return [(rate, None) for rate in self.cfg.rates]
        probe = replace(
            driver_config(self.cfg, topo, "flood", size, None, seed=0, settings=settings),
            duration_s=min(self.cfg.duration_s, MAX_PROBE_S),
            sample_cap=0,
        )
        with (
            running_server(impl, server_config(self.cfg, topo)),
            phase_conditions(topo, settings, self.cfg.server_cpu),
        ):
            peak = run_driver(probe).throughput_rps
        if peak <= 0:
            raise DriverError(f"{impl.name} answered nothing in the max-rate probe")
        return [(peak * f, f) for f in self.cfg.rate_fractions]

    def _plan_rates(
        self, impls: list[Impl], topo: Topology, schedule: list[Block]
    ) -> dict[PlanKey, RatePlan]:
        plans: dict[PlanKey, RatePlan] = {}
        for block in (b for b in schedule if "rate" in b.modes):
            for impl in (i for i in impls if block.covers(i.name)):
                for size, settings in itertools.product(block.sizes, block.settings("rate")):
                    key = _plan_key(impl.name, size, settings)
                    if key in plans:
                        continue
                    try:
                        plans[key] = self._offered_rates(
                            impl, topo, size, for_mode(settings, "flood")
                        )
                    except (DriverError, HellobenchError, OSError) as exc:
                        plans[key] = f"max-rate probe failed: {exc}"
        return plans

    def _measure_topology(self, impls: list[Impl], topo: Topology) -> None:
        schedule = blocks(self.cfg)
        rate_plans = self._plan_rates(impls, topo, schedule)
        salt = f"{self.env}/{topo.name}"
        turns = [(impl, level) for impl in impls for level in _levels(impl.name, schedule)]
        rounds = max(block.rounds for block in schedule)
        orders = round_orders(len(turns), rounds, self.cfg.order_seed, salt)
        plan = [
            (trial, turns[position], list(self._phase_specs(*turns[position], topo, trial,
                                                            rate_plans, schedule)))
            for trial, order in enumerate(orders)
            for position in order
        ]  # fmt: skip
        self.total = (self.total or 0) + sum(len(specs) for _, _, specs in plan)
        self.rounds = rounds
        per_round = Counter(trial for trial, _, specs in plan for _ in specs)
        for trial, (impl, level), specs in plan:
            if self.retry_round != trial:
                self.retry_round, self.retries_left = trial, retry_budget(per_round[trial])
            if specs:
                turn_salt = f"{salt}/{impl.name}/{canonical_options(level)}"
                self._measure_impl_trial(impl, topo, trial, specs, turn_salt, level)
        for block in (b for b in schedule if b.name == "claim"):
            skip = self._crosscheck_skipped()
            if skip:
                self.progress(f"[{self.env}] cross-checks skipped: {skip}")
                self.recording.run.extra.setdefault("crosschecks_skipped", {})[self.env] = skip
                continue
            self._crosscheck([i for i in impls if block.covers(i.name)], topo, block)
        self._trace_anatomy(impls, topo, schedule)

    def _trace_anatomy(self, impls: list[Impl], topo: Topology, schedule: list[Block]) -> None:
        """The claim's ladder traced once per level (runner/anatomy.py), after its rounds."""
        claim = next((b for b in schedule if b.name == "claim"), None)
        if claim is None or not self.cfg.anatomy_requests:
            return
        reason = why_not_traced()
        if reason is not None:
            self.progress(f"[{self.env}] anatomy not traced: {reason}")
            self.recording.run.extra.setdefault("anatomy_skipped", {})[self.env] = reason
            return
        self.progress.step(
            Step(self.env, "anatomy", "anatomy: stages of sampled round trips, traced",
                 done=self.done, total=self.total)
        )  # fmt: skip
        size = claim.sizes[0]

        def driver(settings: Mapping[str, str]) -> DriverConfig:
            base = driver_config(self.cfg, topo, "pingpong", size, None, seed=11, settings=settings)
            return replace(base, duration_s=self.cfg.claim_duration_s, outstanding=1)

        records = trace_ladder(
            [i for i in impls if claim.covers(i.name)],
            topo,
            claim.settings("pingpong"),
            env=self.env,
            driver=driver,
            server=lambda: server_config(self.cfg, topo),
            server_cpu=self.cfg.server_cpu,
            sampled=self.cfg.anatomy_requests,
            samples_dir=self.samples_dir,
            progress=self.progress,
            accel=self.cfg.accel,
        )
        self.recording.run.anatomy.extend(records)
        self.recording.save()

    def _crosscheck_skipped(self) -> str | None:
        if self.cfg.budget == "quick":
            return "--quick"
        if self.cfg.accel == "tcg" and self.cfg.budget != "full":
            return "under TCG unless --full (the host cross-checks the driver)"
        return None

    def _crosscheck(self, impls: list[Impl], topo: Topology, block: Block) -> None:
        """Each claim impl at each receive-CPU level, the driver against an independent
        client (bench/calibration/crosscheck.py); recorded under ``crosschecks``."""
        checks = self.recording.run.extra.setdefault("crosschecks", [])
        first = block.settings("pingpong")[0]
        for impl in impls:
            for rx_cpu in block.levels_of("rx_cpu"):
                settings = {**first, "rx_cpu": rx_cpu}
                where = {"env": self.env, "topology": topo.name, "impl": impl.name,
                         "rx_cpu": rx_cpu, "idle": settings["idle"],
                         "size": block.sizes[0]}  # fmt: skip
                self.progress(f"[{self.env}/{topo.name}] cross-check {impl.name} rx@{rx_cpu}")
                self.progress.step(
                    Step(self.env, "crosscheck", f"cross-check rx@{rx_cpu}", impl.name,
                         "pingpong", done=self.done, total=self.total)
                )  # fmt: skip
                dcfg = driver_config(
                    self.cfg, topo, "pingpong", block.sizes[0], None, seed=7, settings=settings
                )
                try:
                    with (
                        running_server(impl, server_config(self.cfg, topo)),
                        phase_conditions(topo, settings, self.cfg.server_cpu),
                    ):
                        checks.append({**where, **crosscheck(dcfg)})
                except (HellobenchError, OSError) as exc:
                    checks.append({**where, "error": str(exc)})
                self.recording.save()

    def _phase_specs(
        self,
        impl: Impl,
        level: dict[str, str],
        topo: Topology,
        trial: int,
        rate_plans: dict[PlanKey, RatePlan],
        schedule: list[Block],
    ) -> Iterator[tuple[PhaseSpec, str | None, float]]:
        """Every phase of one impl turn in round ``trial``, each once (with the longest
        duration of the blocks naming it), with the reason when it cannot be measured."""
        cfg = self.cfg
        durations: dict[tuple[int, Mode, tuple[tuple[str, str], ...]], float] = {}
        for block in schedule:
            if trial >= block.rounds or not block.covers(impl.name):
                continue
            if level not in level_combinations(block.server_levels):
                continue
            for size, mode in itertools.product(block.sizes, block.modes):
                for chosen in block.settings(mode):
                    phase = (size, mode, tuple(chosen.items()))
                    durations[phase] = max(durations.get(phase, 0.0), block.duration_s)
        for (size, mode, levels), duration in durations.items():
            settings: dict[str, Any] = dict(levels)  # Configuration's factor fields
            base = PhaseSpec.of(
                trial,
                impl.manifest.kind,
                env=self.env,
                topology=topo.name,
                impl=impl.name,
                mode=mode,
                size=size,
                outstanding=cfg.outstanding if mode == "pingpong" else None,
                server_cpu=cfg.server_cpu,
                client_cpu=cfg.client_cpu,
                server_options=canonical_options(level),
                **settings,
            )
            if mode != "rate":
                yield base, None, duration
                continue
            plan = rate_plans.get(_plan_key(impl.name, size, settings))
            if isinstance(plan, str):
                yield base, plan, duration
                continue
            for rate, fraction in plan or []:
                yield base.at_load(rate, fraction), None, duration

    def _measure_impl_trial(
        self,
        impl: Impl,
        topo: Topology,
        trial: int,
        specs: list[tuple[PhaseSpec, str | None, float]],
        salt: str,
        level: dict[str, str],
    ) -> None:
        (phase_order,) = round_orders(len(specs), 1, self.cfg.order_seed, f"{salt}/{trial}")
        specs = [specs[i] for i in phase_order]
        watch = marked_watch()
        rows: dict[int, PhaseRow] = {}  # by the spec's position in ``specs``
        try:
            with running_server(impl, server_config(self.cfg, topo, level)) as server:
                for index, (spec, reason, duration) in enumerate(specs):
                    self.progress.step(self._phase_step(spec, trial))
                    self.done += 1
                    if reason is not None:
                        rows[index] = failed_row(spec, reason)
                        continue
                    if server.health() is not None:
                        rows[index] = failed_row(spec, f"server not running: {server.health()}")
                        continue
                    seed = 1 + trial * 1009 + len(rows)
                    dcfg = replace(
                        driver_config(
                            self.cfg, topo, spec.mode, spec.size, spec.offered_rps, seed,
                            settings=spec.factor_levels(),
                        ),
                        duration_s=duration,
                    )  # fmt: skip
                    try:
                        with phase_conditions(topo, spec.factor_levels(), self.cfg.server_cpu):
                            rows[index] = measure_phase(
                                spec, server, dcfg, self.samples_dir, self.hooks_held
                            )
                            why = retry_reason(rows[index])
                            if why is not None and self.retries_left > 0:
                                self.retries_left -= 1
                                self.progress(f"[{self.env}] re-run {spec.key}: {why}")
                                again = measure_phase(
                                    spec, server, dcfg, self.samples_dir, self.hooks_held
                                )
                                rows[index] = replace(again, retried=why)
                    except ImplError:
                        raise
                    except HellobenchError as exc:
                        rows[index] = failed_row(spec, f"phase conditions: {exc}")
        except ImplError as exc:
            for index, (spec, _, _) in enumerate(specs):
                if index not in rows:
                    rows[index] = failed_row(spec, f"server failed: {exc}")
        problems = watch.new_problems() if watch is not None else []
        for row in rows.values():
            if problems:
                error = "kernel log: " + " | ".join(problems)[:2000]
                row = replace(row, status="failed", error=error)
            self.recording.add_row(row)

    def _phase_step(self, spec: PhaseSpec, trial: int) -> Step:
        return Step(
            self.env, "phase", spec.key, spec.configuration.impl, spec_mode_label(spec), trial + 1,
            self.rounds, self.done, self.total,
        )  # fmt: skip


def spec_mode_label(spec: PhaseSpec) -> str:
    """The mode with what sets the phase apart: load, factor levels, server level."""
    c = spec.configuration
    label: str = c.mode
    if c.load_fraction is not None:
        label += f"@{c.load_fraction:g}"
    label += factors_label(c.factor_levels())
    if c.server_options:
        label += f" [{c.server_options}]"
    return label


def _plan_key(impl: str, size: int, settings: Mapping[str, str]) -> PlanKey:
    """A rate plan's key: the max-rate probe (a flood) runs at the settings that apply to it."""
    return (impl, size, tuple(for_mode(settings, "flood").items()))


def _levels(impl: str, schedule: list[Block]) -> list[dict[str, str]]:
    """The server levels the blocks covering ``impl`` measure it at, each once."""
    found: dict[str, dict[str, str]] = {}
    for block in (b for b in schedule if b.covers(impl)):
        for level in level_combinations(block.server_levels):
            found.setdefault(canonical_options(level), level)
    return list(found.values())


def round_orders(count: int, rounds: int, seed: int, salt: str) -> list[list[int]]:
    """For each round, a permutation of range(count) drawn from ``seed`` and ``salt``."""
    rng = random.Random(f"{seed}:{salt}")
    orders = []
    for _ in range(rounds):
        order = list(range(count))
        rng.shuffle(order)
        orders.append(order)
    return orders


def measure_here(cfg: RunConfig, recording: Recording, progress: Progress) -> None:
    """Measure, in this environment, every selected impl it can run."""
    for line in ledger.sweep():
        progress(f"cleanup: {line}")
    selected = select(design_impls(cfg), discover())
    runner = Runner(cfg, recording, progress)
    runner.describe()
    runner.measure(runner.usable(selected))
