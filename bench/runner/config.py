"""What a run measures: the validated configuration behind ``python -m bench run``."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import factors
from bench.driver.modes import MODES, Mode
from bench.errors import UsageError
from bench.factors import Levels
from bench.protocol import DEFAULT_PORT, MAX_REQUEST, MIN_REQUEST
from bench.remote.ssh import ServerHost
from bench.results.codec import CodecError, record_from_json, record_to_json
from bench.runner.budget import BUDGETS, DEFAULT_BUDGET, FULL_RATE_FRACTIONS
from bench.system.cpus import cpu_problem
from bench.topology import TOPOLOGIES, TWO_HOSTS

DESIGNS = ("standard", "claim", "ladder", "matrix")  # runner/design.py


class ConfigError(UsageError):
    """A run configuration that cannot be measured; the message names the problem."""


@dataclass(frozen=True)
class RunConfig:
    out_root: Path
    impls: tuple[str, ...] = ()
    modes: tuple[Mode, ...] = MODES
    sizes: tuple[int, ...] = (64,)
    topologies: tuple[str, ...] = ("lo",)
    duration_s: float = 1.0
    warmup_s: float = 0.2
    trials: int = 5
    rate_fractions: tuple[float, ...] = FULL_RATE_FRACTIONS
    rates: tuple[float, ...] = ()
    outstanding: int = 1
    server_cpu: int | None = 1
    client_cpu: int | None = 0
    port: int = DEFAULT_PORT
    env: str = "auto"
    env_name: str = "host"
    accel: str = "native"
    calibrate: bool = True
    sample_cap: int = 10000
    reply_timeout_s: float = 0.2
    server_options: dict[str, str] = field(default_factory=dict)
    # server options measured at several values, each combination a level (KEY -> values)
    server_levels: tuple[tuple[str, tuple[str, ...]], ...] = ()
    order_seed: int = 0  # the schedule's seed: order of impls and phases in each round
    # the run factors' levels to measure, by factor name (bench/factors.py)
    levels: Levels = field(default_factory=factors.default_levels)
    vm_timeout_s: float | None = None  # the guest watchdog; None: from the design's size
    design: str = "matrix"  # runner/design.py: standard | claim | ladder | matrix
    matrix_trials: int = 3  # rounds of the standard design's survey
    claim_duration_s: float = 0.5  # seconds per phase of the claim's blocks
    budget: str = DEFAULT_BUDGET  # a key of BUDGETS
    anatomy_requests: int = 0  # sampled requests per anatomy pass of the claim (0: none)
    command: str = ""  # the command line that asked for the run, as recorded
    server_host: ServerHost | None = None  # the server on another host (topology two-hosts)

    def __post_init__(self) -> None:
        # every factor named (the default where not chosen), each as a tuple
        chosen = {**factors.default_levels(), **{k: tuple(v) for k, v in self.levels.items()}}
        object.__setattr__(self, "levels", chosen)
        check(self)

    def to_json(self) -> dict[str, Any]:
        """Every field as JSON (what results.json's ``config`` holds and a guest reads)."""
        return record_to_json(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> RunConfig:
        """The RunConfig ``to_json`` wrote (ConfigError naming a field that does not fit;
        keys that are not fields, such as a results file's derived facts, are ignored)."""
        try:
            return record_from_json(cls, raw)
        except CodecError as exc:
            raise ConfigError(f"config: {exc}") from None

    def levels_of(self, name: str) -> tuple[str, ...]:
        """The levels of the run factor ``name`` this run measures."""
        return self.levels[name]


def server_level_combinations(cfg: RunConfig) -> list[dict[str, str]]:
    """Every combination of the run's server levels ([{}] without levels)."""
    return level_combinations(cfg.server_levels)


def level_combinations(levels: tuple[tuple[str, tuple[str, ...]], ...]) -> list[dict[str, str]]:
    """Every combination of ``levels`` (KEY -> values pairs; [{}] without levels)."""
    keys = [key for key, _ in levels]
    combos = itertools.product(*(values for _, values in levels))
    return [dict(zip(keys, combo, strict=True)) for combo in combos]


def canonical_options(options: dict[str, str]) -> str:
    """How a row names its server levels: "k=v" pairs sorted by key, comma-joined."""
    return ",".join(f"{k}={options[k]}" for k in sorted(options))


def check(cfg: RunConfig) -> None:
    """Raise ConfigError naming the first problem in ``cfg``."""
    for size in cfg.sizes:
        if not MIN_REQUEST <= size <= MAX_REQUEST:
            raise ConfigError(f"--size {size}: must be {MIN_REQUEST}..{MAX_REQUEST} bytes")
    for mode in cfg.modes:
        if mode not in MODES:
            raise ConfigError(f"--mode {mode}: must be one of {', '.join(MODES)}")
    if cfg.server_host is not None:
        _check_two_hosts(cfg)
    for topo in cfg.topologies:
        if topo not in TOPOLOGIES and not (topo == TWO_HOSTS and cfg.server_host is not None):
            raise ConfigError(f"--topology {topo}: must be one of {', '.join(TOPOLOGIES)}")
    if not cfg.duration_s > 0:
        raise ConfigError(f"--duration {cfg.duration_s}: must be a positive number of seconds")
    if cfg.warmup_s < 0:
        raise ConfigError(f"--warmup {cfg.warmup_s}: must not be negative")
    if cfg.trials < 1:
        raise ConfigError(f"--trials {cfg.trials}: must be at least 1")
    problem = factors.levels_problem(cfg.levels)
    if problem is not None:
        raise ConfigError(problem)
    if cfg.budget not in BUDGETS:
        raise ConfigError(f"budget {cfg.budget}: must be one of {', '.join(BUDGETS)}")
    if cfg.design not in DESIGNS:
        raise ConfigError(f"--design {cfg.design}: must be one of {', '.join(DESIGNS)}")
    if cfg.matrix_trials < 1:
        raise ConfigError(f"--survey-trials {cfg.matrix_trials}: must be at least 1")
    if not cfg.claim_duration_s > 0:
        raise ConfigError(f"--claim-duration {cfg.claim_duration_s}: must be positive")
    if cfg.design != "matrix" and cfg.server_cpu is None:
        raise ConfigError(f"--design {cfg.design} measures --rx-cpu server: give --server-cpu")
    if not 0 < cfg.port < 65536:
        raise ConfigError(f"--port {cfg.port}: must be 1..65535")
    if cfg.outstanding < 1:
        raise ConfigError(f"--outstanding {cfg.outstanding}: must be at least 1")
    if any(not 0 < f <= 1.5 for f in cfg.rate_fractions):
        raise ConfigError("--rate-fraction values must be in (0, 1.5]")
    if any(r <= 0 for r in cfg.rates):
        raise ConfigError("--rate values must be positive requests per second")
    if cfg.anatomy_requests < 0:
        raise ConfigError("--anatomy-requests must not be negative (0: no anatomy pass)")
    if cfg.sample_cap < 0:
        raise ConfigError("--sample-cap must not be negative")
    _check_cpus(cfg)
    if "server" in cfg.levels_of("rx_cpu") and cfg.server_cpu is None:
        raise ConfigError(
            "--rx-cpu server steers receive processing to the server CPU: give --server-cpu"
        )
    for key, values in cfg.server_levels:
        if not values or len(set(values)) != len(values):
            raise ConfigError(f"--server-levels {key}: give distinct values, comma-separated")
        if key in cfg.server_options:
            raise ConfigError(f"--server-levels {key}: also given as --server-option")
    if cfg.server_levels and "rate" in cfg.modes and not cfg.rates:
        raise ConfigError(
            "--server-levels with --mode rate needs absolute --rate values (a fraction of "
            "capacity would name a different rate at every level)"
        )
    if cfg.env not in ("auto", "host", "vm"):
        raise ConfigError(f"--env {cfg.env}: must be auto, host or vm")
    if "rate" in cfg.modes or "flood" in cfg.modes:
        small = [s for s in cfg.sizes if s < 24]
        if small:
            raise ConfigError(
                f"--size {small[0]}: rate and flood modes need at least 24 bytes "
                "(the driver header with sequence number); use --mode pingpong for smaller"
            )


def _check_cpus(cfg: RunConfig) -> None:
    """--server-cpu and --client-cpu among this machine's allowed CPUs, where they pin here:
    not in a guest (--env vm pins inside it) nor the server on --server-host."""
    if cfg.env == "vm":
        return
    pinned = [("--client-cpu", cfg.client_cpu)]
    if cfg.server_host is None:
        pinned.insert(0, ("--server-cpu", cfg.server_cpu))
    for flag, number in pinned:
        problem = None if number is None else cpu_problem(flag, number)
        if problem is not None:
            raise ConfigError(problem)


def _check_two_hosts(cfg: RunConfig) -> None:
    if cfg.topologies != (TWO_HOSTS,):
        raise ConfigError("--server-host sets the topology (two-hosts): drop --topology")
    if cfg.env == "vm":
        raise ConfigError("--server-host with --env vm: the guest cannot reach the server host")
    if cfg.design != "matrix":
        raise ConfigError(
            f"--server-host with --design {cfg.design}: its receive-CPU levels steer the "
            "server's queues, which are the server host's (use --design matrix)"
        )
    if "server" in cfg.levels_of("rx_cpu"):
        raise ConfigError("--server-host with --rx-cpu server: the server host's receive "
                          "queues are not steered from here")  # fmt: skip
