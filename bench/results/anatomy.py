"""One anatomy pass as results.json keeps it (``anatomy``, schema hellobench/6): where the
sampled round trips of one configuration spent their time, stage by stage, beside the
probe-free round trip measured right before the traced one (bench/anatomy/measure.py).

Per-request stages are summarised here (p50, p90, p99, mean per stage; the tail and median
compositions); nanoseconds throughout, None where there was nothing to summarise."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.results.codec import OMIT_NONE, JsonRecord


def finite(value: object) -> float | None:
    """A JSON-safe number: NaN, infinities and non-numbers become None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class Quantiles(JsonRecord):
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    mean: float | None = None

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Quantiles:
        return cls(*(finite(raw.get(k)) for k in ("p50", "p90", "p99", "mean")))


@dataclass(frozen=True)
class StageRecord(JsonRecord):
    name: str
    ns: Quantiles
    missing: int = 0  # sampled requests in which this stage's milestone was not seen


@dataclass(frozen=True)
class ProgramCost(JsonRecord):
    name: str
    run_cnt: int
    run_time_ns: int


@dataclass(frozen=True)
class AnatomyRecord(JsonRecord):
    env: str
    topology: str
    impl: str
    levels: dict[str, str]  # the run factors' levels it was traced at (rx_cpu, idle)
    size: int
    error: str | None = field(default=None, metadata=OMIT_NONE)
    every: int = 0  # 1 request in ``every`` sampled
    server_in_user_space: bool = True
    handler_hooked: bool = False
    handler_note: str = ""
    untraced: Quantiles = Quantiles()  # the driver's RTT, untraced, right before
    traced_driver: Quantiles = Quantiles()  # the driver's RTT while tracing
    traced_rtt: Quantiles = Quantiles()  # client send entry -> receive exit, sampled
    stages: tuple[StageRecord, ...] = ()
    tail: dict[str, float | None] = field(default_factory=dict)  # mean ns, slowest 1 %
    median: dict[str, float | None] = field(default_factory=dict)  # mean ns, 45th-55th pct
    tail_count: int = 0
    median_count: int = 0
    sampled: int = 0  # complete sampled requests
    incomplete: int = 0
    traced_requests: int = 0  # requests the driver sent while tracing
    rx_on_server_cpu: float | None = None  # share of sampled requests
    rx_on_client_cpu: float | None = None
    programs: tuple[ProgramCost, ...] = ()
    loader: dict[str, int] = field(default_factory=dict)
    model: str = ""  # the server model the stages follow (bench/anatomy/stages.py)
    hooks: dict[str, str] = field(default_factory=dict)  # the loader's choice per hook
    notes: str = ""  # hooks the kernel did not offer, and what was used instead

    @property
    def ok(self) -> bool:
        return self.error is None and self.sampled > 0

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages)

    def stage(self, name: str) -> StageRecord | None:
        return next((s for s in self.stages if s.name == name), None)

    @property
    def bpf_ns_per_request(self) -> float | None:
        """The anatomy programs' run time per request the driver sent while tracing."""
        if not self.programs or not self.traced_requests:
            return None
        return sum(p.run_time_ns for p in self.programs) / self.traced_requests

    @property
    def tracing_cost(self) -> float | None:
        """Traced ÷ untraced p50 round trip, both as the driver measured them."""
        traced, untraced = self.traced_driver.p50, self.untraced.p50
        if traced is None or not untraced:
            return None
        return traced / untraced
