"""A whole ``bench run``: the host environment, then (when asked or needed) the vm
environment, merged into one results.json."""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench import __version__
from bench.errors import EXIT_FAILED, EXIT_OK
from bench.host.capabilities import capabilities
from bench.impl.registry import discover
from bench.results.descriptions import ImplInfo
from bench.results.provenance import suite_commit
from bench.results.run import Run
from bench.runner.config import ConfigError, RunConfig
from bench.runner.design import blocks, design_impls
from bench.runner.in_guest import run_vm
from bench.runner.lifecycle import select
from bench.runner.measure import measure_here
from bench.runner.progress import Progress, Step
from bench.runner.recording import Recording
from bench.runner.two_hosts import measure_two_hosts


@dataclass(frozen=True)
class RunOutcome:
    recording: Recording

    @property
    def status(self) -> int:
        return EXIT_FAILED if self.recording.failures else EXIT_OK


def run_document_config(cfg: RunConfig) -> dict[str, object]:
    """results.json's ``config``: the RunConfig's own JSON (RunConfig.from_json reads it
    back) and the facts derived from it."""
    return {
        **cfg.to_json(),
        "per_request_basis": "answered requests (replies)",
        "order": "rounds = trials; impls and each impl's phases in a seeded random order",
        "blocks": [block.describe() for block in blocks(cfg)],
    }


def start_run(cfg: RunConfig) -> Recording:
    """Validate the selection, create the run folder and its first (incomplete) results."""
    selected = select(design_impls(cfg), discover())
    tool = {"name": "hellobench", "version": __version__, "commit": suite_commit()}
    run = Run.new(run_document_config(cfg), tool)
    run.config["impls"] = [e.name for e in selected]
    run.impls = {e.name: ImplInfo.of(e.manifest) for e in selected}
    try:
        cfg.out_root.mkdir(parents=True, exist_ok=True)
        probe = cfg.out_root / f".hellobench-write-test-{run.run_id}"
        probe.write_text("")
        probe.unlink()
        run_dir = cfg.out_root / run.run_id
        run_dir.mkdir()
    except OSError as exc:
        raise ConfigError(f"--out {cfg.out_root}: not writable ({exc.strerror or exc})") from exc
    recording = Recording(run, run_dir)
    recording.save()
    return recording


def needs_vm(cfg: RunConfig) -> list[str]:
    """Selected impls the host cannot run for lack of loadable modules."""
    host = capabilities()
    return [
        e.name
        for e in select(design_impls(cfg), discover(host))
        if not e.available and e.manifest.requires.loadable_modules and not host.loadable_modules
    ]


def run_all(cfg: RunConfig, progress: Progress, *, vm_fault: str | None = None) -> RunOutcome:
    """Measure ``cfg`` here and, where needed or asked, in a guest; the run is saved after
    every phase and marked complete at the end (an interrupt leaves it incomplete)."""
    started = time.monotonic()
    recording = start_run(cfg)
    progress(f"run {recording.run.run_id} → {recording.run_dir}")
    try:
        if cfg.server_host is not None:
            measure_two_hosts(cfg, recording, progress)
        elif cfg.env in ("auto", "host"):
            measure_here(cfg, recording, progress)
        missing = needs_vm(cfg) if cfg.env == "auto" and cfg.server_host is None else []
        if cfg.env == "vm" or missing:
            if missing:
                progress(f"[vm] needed for: {', '.join(missing)}")
            run_vm(cfg, recording, progress, vm_fault)
        recording.run.complete = True
        recording.run.extra["wall_s"] = round(time.monotonic() - started, 1)
        recording.save()
        progress.step(Step("run", "finish", f"measured in {recording.run.extra['wall_s']} s"))
    except KeyboardInterrupt:
        recording.save()
        progress(f"interrupted: partial results (marked incomplete) in {recording.run_dir}")
        raise
    return RunOutcome(recording)
