"""What the calibration predicts an effect to be, stated before it meets the measurement.

The model prices what the counting runs counted.  A configuration costs

    request-path syscalls/req × null syscall  +  switches/req × the price of a switch

with syscalls the server's and the client's that did work (polls that returned EAGAIN are
counted apart and not priced: a spinning server's empty polls are not transitions on the
request's path), switches the whole machine's (every CPU) per request.  For RTT with
server and client on different CPUs a switch is priced at half a calibrated cross-CPU
wake-up (a blocking wait is two switches: out, and back in when woken) at the
configuration's idle policy — the calibrated median with the machine's idle states, or
with PM QoS held at 0 for ``idle=poll``; on one CPU, and for CPU time, at the calibrated
same-CPU switch.  An effect's prediction is cost(B) − cost(A).

Each price carries its calibration's standard error (the spread of its repetitions over
√n); the prediction's standard error follows from the net count of each price in the
effect (counts are averages over many requests and taken as exact).  The model has
nothing else: what it does not price (where receive processing runs, cache effects)
shows as a prediction that failed the equivalence test (bench/analysis/equivalence.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bench.results.metrics import metric
from bench.results.rows import Configuration, PhaseRow

SYSCALLS = "request_syscalls_per_req"
SWITCHES = "system_ctx_per_req"
PREDICTED_METRICS = ("rtt_p50", "cpu_ns_per_req")


@dataclass(frozen=True)
class Price:
    """One calibrated price in ns with its standard error (None: spread not recorded)."""

    key: str
    value: float
    se: float | None


@dataclass(frozen=True)
class Prediction:
    """The predicted effect in ns with its standard error, or None with the reason."""

    value: float | None
    basis: str
    se: float | None = None


def _mean(rows: Sequence[PhaseRow], name: str) -> float | None:
    read = metric(name).read
    values = [read(r) for r in rows if r.ok]
    if not values or any(v is None for v in values):
        return None
    return sum(float(v) for v in values if v is not None) / len(values)


def _number(calibration: Mapping[str, object], key: str) -> float | None:
    value = calibration.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _se(samples: object, scale: float) -> float | None:
    """Standard error of the mean of ``samples`` times ``scale``; None without two."""
    if not isinstance(samples, list):
        return None
    values = [float(v) for v in samples if isinstance(v, int | float) and math.isfinite(v)]
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return scale * math.sqrt(var / len(values))


# price key -> (where its repetitions are in calibration["details"], the samples' key,
# what one price is of one sample: a wake-up or switch is half a round trip)
_SPREAD = {
    "null_syscall_ns": ("null_syscall", "samples", 1.0),
    "context_switch_ns": ("context_switch", "same_cpu_roundtrip_ns", 0.5),
    "wakeup_ns": ("context_switch", "cross_cpu_roundtrip_ns", 0.5),
    "wakeup_median_ns": ("context_switch", "cross_cpu_roundtrip_ns", 0.5),
    "wakeup_poll_median_ns": ("context_switch", "cross_cpu_poll_roundtrip_ns", 0.5),
}


def price(calibration: Mapping[str, object], key: str, scale: float = 1.0) -> Price | None:
    """The calibrated ``key`` (times ``scale``) with its standard error, or None."""
    value = _number(calibration, key)
    if value is None:
        return None
    details = calibration.get("details")
    se = None
    if key in _SPREAD and isinstance(details, Mapping):
        part, samples, per = _SPREAD[key]
        found = details.get(part)
        if isinstance(found, Mapping):
            se = _se(found.get(samples), per * scale)
    return Price(key, value * scale, se)


def switch_price(
    calibration: Mapping[str, object], key: Configuration, name: str
) -> tuple[Price | None, str]:
    """The price of one context switch for ``name`` in configuration ``key``."""
    split = key.server_cpu is not None and key.server_cpu != key.client_cpu
    if name == "rtt_p50" and split:
        field = "wakeup_poll_median_ns" if key.idle == "poll" else "wakeup_median_ns"
        found = price(calibration, field, 0.5)
        if found is None and key.idle != "poll" and _number(calibration, "wakeup_ns"):
            field = "wakeup_ns"  # a run that recorded only the best repetition
            found = price(calibration, field, 0.5)
        if found is None:
            return None, f"calibration has no {field}"
        return found, f"half the calibrated cross-CPU wake-up ({field})"
    switch = price(calibration, "context_switch_ns")
    return switch, "the calibrated same-CPU switch" if switch else "no calibrated switch"


def predict(
    name: str,
    calibration: Mapping[str, object],
    terms: Sequence[tuple[float, Configuration, Sequence[PhaseRow]]],
) -> Prediction:
    """Σ sign × cost over ``terms`` (sign, configuration, its rows): B − A for an effect,
    the four corners for an interaction; its standard error from the prices' spreads."""
    if name not in PREDICTED_METRICS:
        return Prediction(None, f"the model does not predict {name}")
    syscall = price(calibration, "null_syscall_ns")
    if syscall is None:
        return Prediction(None, "no calibrated null syscall")
    net: dict[str, float] = {}  # price key -> net count of it in the effect
    prices = {syscall.key: syscall}
    bases: list[str] = []
    for sign, key, rows in terms:
        switch, basis = switch_price(calibration, key, name)
        if switch is None:
            return Prediction(None, basis)
        syscalls, switches = _mean(rows, SYSCALLS), _mean(rows, SWITCHES)
        if syscalls is None:
            return Prediction(
                None,
                f"{key.impl}: request-path syscalls not counted (polls that returned EAGAIN "
                "were not counted apart in this run)",
            )
        if switches is None:
            return Prediction(None, f"{key.impl}: switches per request not counted")
        prices[switch.key] = switch
        net[syscall.key] = net.get(syscall.key, 0.0) + sign * syscalls
        net[switch.key] = net.get(switch.key, 0.0) + sign * switches
        bases.append(f"switch = {basis}")
    value = sum(count * prices[k].value for k, count in net.items())
    spreads = [(count, prices[k].se) for k, count in net.items() if count != 0.0]
    if any(se is None for _, se in spreads):
        return Prediction(value, "; ".join(dict.fromkeys(bases)) + "; calibration spread "
                          "not recorded", None)  # fmt: skip
    se = math.sqrt(sum((count * (se or 0.0)) ** 2 for count, se in spreads))
    return Prediction(value, "; ".join(dict.fromkeys(bases)), se)
