"""The runner: impl manifest → server started → driver floods it while the probes record →
rows appended to results.json (rewritten atomically after every phase).

Trials are interleaved (trial 0 of every impl, then trial 1 of every impl, with the impl
order rotated each trial) so that drift of a noisy machine hits every impl alike.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench import __version__, ownership
from bench.calibrate import run_calibration
from bench.config import ConfigError, RunConfig
from bench.driver.client import DriverConfig, DriverError, run_driver
from bench.environment import collect_environment
from bench.host import capabilities
from bench.impl.api import Impl, ImplError, RunningServer, ServerConfig
from bench.impl.registry import Entry, discover
from bench.kernel_log import marked_watch
from bench.metrics.anchors import measurement_hooks_held
from bench.phase import PhaseSpec, failed_row, measure_phase
from bench.results import SCHEMA_VERSION, write_results
from bench.topology import Topology, TopologyError, open_topology

Progress = Callable[[str], None]
MAX_PROBE_S = 1.0


@dataclass
class RunState:
    """The document being built, and where it lives."""

    run_dir: Path
    document: dict[str, Any]
    failures: list[str] = field(default_factory=list)

    def add_row(self, row: dict[str, Any]) -> None:
        self.document["results"].append(row)
        if row["status"] != "ok":
            self.failures.append(
                f"{row['impl']} {row['mode']} trial {row['trial']}: {row['error']}"
            )
        self.save()

    def skip(self, impl: str, env: str, reason: str) -> None:
        self.document["skipped"].append({"impl": impl, "env": env, "reason": reason})
        self.save()

    def save(self) -> Path:
        return write_results(self.run_dir, self.document)


def new_run_id() -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def prepare_run_dir(out_root: Path, run_id: str) -> Path:
    """Create the run's folder, or raise ConfigError when ``out_root`` is not writable."""
    try:
        out_root.mkdir(parents=True, exist_ok=True)
        probe = out_root / f".hellobench-write-test-{run_id}"
        probe.write_text("")
        probe.unlink()
        run_dir = out_root / run_id
        run_dir.mkdir()
    except OSError as exc:
        raise ConfigError(f"--out {out_root}: not writable ({exc.strerror or exc})") from exc
    return run_dir


def select_impls(cfg: RunConfig, entries: dict[str, Entry]) -> list[Entry]:
    """The entries ``cfg`` asks for (all registered ones when it names none)."""
    unknown = [name for name in cfg.impls if name not in entries]
    if unknown:
        raise ConfigError(f"unknown impl {unknown[0]!r} (known: {', '.join(sorted(entries))})")
    names = cfg.impls or tuple(sorted(entries))
    return [entries[name] for name in dict.fromkeys(names)]


def new_document(cfg: RunConfig, run_id: str) -> dict[str, Any]:
    config = {
        "impls": list(cfg.impls),
        "modes": list(cfg.modes),
        "sizes": list(cfg.sizes),
        "topologies": list(cfg.topologies),
        "duration_s": cfg.duration_s,
        "warmup_s": cfg.warmup_s,
        "trials": cfg.trials,
        "rate_fractions": list(cfg.rate_fractions),
        "rates": list(cfg.rates),
        "outstanding": cfg.outstanding,
        "server_cpu": cfg.server_cpu,
        "client_cpu": cfg.client_cpu,
        "port": cfg.port,
        "env": cfg.env,
        "sample_cap": cfg.sample_cap,
        "reply_timeout_s": cfg.reply_timeout_s,
        "per_request_basis": "answered requests (replies)",
    }
    return {
        "schema": SCHEMA_VERSION,
        "run_id": run_id,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "complete": False,
        "tool": {"name": "hellobench", "version": __version__},
        "config": config,
        "environments": {},
        "results": [],
        "skipped": [],
    }


def driver_config(
    cfg: RunConfig, topo: Topology, mode: str, size: int, rate: float | None, seed: int
) -> DriverConfig:
    return DriverConfig(
        mode=mode,  # type: ignore[arg-type]
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
    )


@contextmanager
def running_server(impl: Impl, cfg: RunConfig, topo: Topology) -> Iterator[RunningServer]:
    server = impl.start(
        ServerConfig(
            addr=topo.server_addr,
            port=cfg.port,
            cpu=cfg.server_cpu,
            netns=topo.server_netns,
            interface=topo.server_interface,
            options=cfg.server_options,
        )
    )
    try:
        yield server
    finally:
        server.stop()


class Runner:
    """Measures every selected impl in one environment (the one this process runs in)."""

    def __init__(self, cfg: RunConfig, state: RunState, progress: Progress) -> None:
        self.cfg = cfg
        self.state = state
        self.progress = progress
        self.env = cfg.env_name
        self.samples_dir = state.run_dir / "samples"

    def calibrate(self) -> None:
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
            self.progress(f"[{self.env}] calibrating: null syscall, context switch, sockperf")
            environment["calibration"] = run_calibration(
                client_cpu=self.cfg.client_cpu,
                server_cpu=self.cfg.server_cpu,
                quick=self.cfg.duration_s < 1.0,
            )
        else:
            environment["calibration"] = None
        self.state.document["environments"][self.env] = environment
        self.state.save()

    def usable(self, entries: list[Entry]) -> list[Impl]:
        impls: list[Impl] = []
        for entry in entries:
            if entry.impl is None or not entry.available:
                self.progress(f"[{self.env}] skip {entry.name}: {entry.unavailable}")
                self.state.skip(entry.name, self.env, entry.unavailable or "unavailable")
                continue
            try:
                entry.impl.prepare()
            except ImplError as exc:
                self.progress(f"[{self.env}] skip {entry.name}: build failed")
                self.state.skip(entry.name, self.env, f"build failed: {exc}")
                continue
            impls.append(entry.impl)
        return impls

    def measure(self, impls: list[Impl]) -> None:
        bpf = any(impl.manifest.kind == "ebpf" for impl in impls)
        with measurement_hooks_held(bpf_stats=bpf) as notes:
            for note in notes:
                self.progress(f"[{self.env}] measurement hook not held: {note}")
            self._measure_topologies(impls)

    def _measure_topologies(self, impls: list[Impl]) -> None:
        for topo_name in self.cfg.topologies:
            try:
                with open_topology(topo_name) as topo:
                    self._measure_topology(impls, topo)
            except TopologyError as exc:
                for impl in impls:
                    self.state.skip(impl.name, self.env, f"topology {topo_name}: {exc}")

    def _offered_rates(
        self, impl: Impl, topo: Topology, size: int
    ) -> list[tuple[float, float | None]]:
        """(offered rps, fraction of the measured maximum) pairs for the rate mode."""
        if self.cfg.rates:
            return [(rate, None) for rate in self.cfg.rates]
        probe = replace(
            driver_config(self.cfg, topo, "flood", size, None, seed=0),
            duration_s=min(self.cfg.duration_s, MAX_PROBE_S),
            sample_cap=0,
        )
        with running_server(impl, self.cfg, topo):
            peak = run_driver(probe).throughput_rps
        if peak <= 0:
            raise DriverError(f"{impl.name} answered nothing in the max-rate probe")
        return [(peak * f, f) for f in self.cfg.rate_fractions]

    def _plan_rates(self, impls: list[Impl], topo: Topology) -> dict[tuple[str, int], Any]:
        plans: dict[tuple[str, int], Any] = {}
        if "rate" not in self.cfg.modes:
            return plans
        for impl in impls:
            for size in self.cfg.sizes:
                try:
                    plans[impl.name, size] = self._offered_rates(impl, topo, size)
                except (DriverError, ImplError, OSError) as exc:
                    plans[impl.name, size] = f"max-rate probe failed: {exc}"
        return plans

    def _measure_topology(self, impls: list[Impl], topo: Topology) -> None:
        rate_plans = self._plan_rates(impls, topo)
        for trial in range(self.cfg.trials):
            shift = trial % len(impls) if impls else 0
            for impl in impls[shift:] + impls[:shift]:
                self._measure_impl_trial(impl, topo, trial, rate_plans)

    def _phase_specs(
        self, impl: Impl, topo: Topology, trial: int, rate_plans: dict[tuple[str, int], Any]
    ) -> Iterator[tuple[PhaseSpec, str | None]]:
        """Every phase of one impl trial, with the reason when it cannot be measured."""
        kind = impl.manifest.kind
        for size in self.cfg.sizes:
            for mode in self.cfg.modes:
                base = PhaseSpec(self.env, topo.name, impl.name, kind, mode, size, trial)
                if mode != "rate":
                    yield base, None
                    continue
                plan = rate_plans.get((impl.name, size))
                if isinstance(plan, str):
                    yield base, plan
                    continue
                for rate, fraction in plan or []:
                    yield replace(base, offered_rps=rate, load_fraction=fraction), None

    def _measure_impl_trial(
        self, impl: Impl, topo: Topology, trial: int, rate_plans: dict[tuple[str, int], Any]
    ) -> None:
        specs = list(self._phase_specs(impl, topo, trial, rate_plans))
        watch = marked_watch()
        rows: list[dict[str, Any]] = []
        try:
            with running_server(impl, self.cfg, topo) as server:
                for spec, reason in specs:
                    self.progress(f"[{self.env}/{topo.name}] trial {trial} {spec.key}")
                    if reason is not None:
                        rows.append(failed_row(spec, reason))
                        continue
                    if server.health() is not None:
                        rows.append(failed_row(spec, f"server not running: {server.health()}"))
                        continue
                    seed = 1 + trial * 1009 + len(rows)
                    dcfg = driver_config(
                        self.cfg, topo, spec.mode, spec.size, spec.offered_rps, seed
                    )
                    rows.append(measure_phase(spec, server, dcfg, self.samples_dir))
        except ImplError as exc:
            done = {r["mode"] + str(r["offered_rps"]) + str(r["size"]) for r in rows}
            for spec, _ in specs:
                if spec.mode + str(spec.offered_rps) + str(spec.size) not in done:
                    rows.append(failed_row(spec, f"server failed: {exc}"))
        problems = watch.new_problems() if watch is not None else []
        for row in rows:
            if problems:
                row["status"] = "failed"
                row["error"] = "kernel log: " + " | ".join(problems)[:2000]
            self.state.add_row(row)


def start_run(cfg: RunConfig) -> RunState:
    """Validate the selection, create the run folder and its first (incomplete) results."""
    entries = discover()
    selected = select_impls(cfg, entries)
    run_id = new_run_id()
    run_dir = prepare_run_dir(cfg.out_root, run_id)
    state = RunState(run_dir, new_document(cfg, run_id))
    state.document["config"]["impls"] = [e.name for e in selected]
    state.save()
    return state


def run_host(cfg: RunConfig, state: RunState, progress: Progress) -> None:
    """Measure, in this environment, every selected impl it can run."""
    for line in ownership.sweep():
        progress(f"cleanup: {line}")
    entries = discover()
    selected = select_impls(cfg, entries)
    runner = Runner(cfg, state, progress)
    runner.calibrate()
    impls = runner.usable(selected)
    runner.measure(impls)


def needs_vm(cfg: RunConfig) -> list[str]:
    """Selected impls the host cannot run for lack of loadable modules."""
    host = capabilities()
    entries = discover(host)
    return [
        e.name
        for e in select_impls(cfg, entries)
        if not e.available and e.manifest.requires.loadable_modules and not host.loadable_modules
    ]
