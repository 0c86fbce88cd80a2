"""Per stage p50, p90, p99 and mean over the sampled requests, and the tail anatomy: the
mean stage composition of the slowest 1 % of requests beside that of the median ones
(those ranked between the 45th and 55th percentile of the traced round trip); and what each
anatomy program costs per request of the traced run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bench.anatomy.stages import RequestAnatomy

TAIL_FRACTION = 0.01
MEDIAN_BAND = (0.45, 0.55)


@dataclass(frozen=True)
class Distribution:
    """Nanoseconds."""

    p50: float
    p90: float
    p99: float
    mean: float

    @classmethod
    def of(cls, values: Sequence[int]) -> Distribution:
        a = np.asarray(values, dtype=np.float64)
        if a.size == 0:
            return cls(float("nan"), float("nan"), float("nan"), float("nan"))
        p50, p90, p99 = np.percentile(a, [50, 90, 99])
        return cls(float(p50), float(p90), float(p99), float(a.mean()))


@dataclass(frozen=True)
class StageSummary:
    name: str
    ns: Distribution
    missing: int  # requests where this stage's milestone was not seen


@dataclass(frozen=True)
class TailAnatomy:
    """Mean ns per stage of the slowest requests and of the median ones."""

    tail_count: int
    median_count: int
    tail: dict[str, float]
    median: dict[str, float]


def stage_summaries(requests: Sequence[RequestAnatomy], names: Sequence[str]) -> list[StageSummary]:
    return [
        StageSummary(
            name,
            Distribution.of([r.stages[name] for r in requests]),
            sum(name in r.missing for r in requests),
        )
        for name in names
    ]


def _means(requests: Sequence[RequestAnatomy], names: Sequence[str]) -> dict[str, float]:
    if not requests:
        return {name: float("nan") for name in names}
    return {name: float(np.mean([r.stages[name] for r in requests])) for name in names}


def tail_anatomy(requests: Sequence[RequestAnatomy], names: Sequence[str]) -> TailAnatomy:
    ranked = sorted(requests, key=lambda r: r.rtt_ns)
    n = len(ranked)
    tail = ranked[n - max(1, round(n * TAIL_FRACTION)) :] if n else []
    lo, hi = (int(n * f) for f in MEDIAN_BAND)
    median = ranked[lo : max(hi, lo + 1)] if n else []
    return TailAnatomy(len(tail), len(median), _means(tail, names), _means(median, names))


def share_on(requests: Sequence[RequestAnatomy], field: str, cpu: int) -> float:
    """The fraction of requests whose ``field`` (rx_cpu, server_cpu) is ``cpu``."""
    if not requests:
        return float("nan")
    return float(sum(getattr(r, field) == cpu for r in requests) / len(requests))


def cost_per_request(run_time_ns: Mapping[str, int], requests: int) -> dict[str, float]:
    """Each program's run time (ns) per request of the traced run, the costliest first.
    Every request pays it, sampled or not: the hooks run on every event they are attached
    to, and only inside a sampled request's window do they write anything."""
    per = {
        name: ns / requests if requests > 0 else float("nan") for name, ns in run_time_ns.items()
    }
    return dict(sorted(per.items(), key=lambda item: -item[1]))
