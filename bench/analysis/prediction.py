"""What the calibration predicts an effect to be, stated before it meets the measurement.

The model prices what the counting runs counted.  A configuration costs

    syscalls/req × null syscall  +  switches/req × the price of a switch

with syscalls the server's and the client's, switches the whole machine's (every CPU)
per request.  For RTT with server and client on different CPUs a switch is priced at
half a calibrated cross-CPU wake-up (a blocking wait is two switches: out, and back in
when woken) at the configuration's idle policy — the calibrated median with the
machine's idle states, or with PM QoS held at 0 for ``idle=poll``; on one CPU, and for
CPU time, at the calibrated same-CPU switch.  An effect's prediction is cost(B) −
cost(A), and it holds when the measured interval contains it.  The model has nothing
else: what it does not price (where receive processing runs, the syscalls a spinning
server makes while it waits, cache effects) shows as a prediction that failed, with its
miss.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bench.analysis.stats import Interval
from bench.results.metrics import metric
from bench.results.rows import Configuration, PhaseRow

SYSCALLS = "syscalls_per_req"
SWITCHES = "system_ctx_per_req"
PREDICTED_METRICS = ("rtt_p50", "cpu_ns_per_req")


@dataclass(frozen=True)
class Prediction:
    """The predicted effect in ns, or None with the reason it cannot be predicted."""

    value: float | None
    basis: str

    def held(self, measured: Interval) -> bool | None:
        return None if self.value is None else measured.contains(self.value)

    def miss(self, measured_mean: float) -> float | None:
        return None if self.value is None else measured_mean - self.value


def _mean(rows: Sequence[PhaseRow], name: str) -> float | None:
    read = metric(name).read
    values = [read(r) for r in rows if r.ok]
    if not values or any(v is None for v in values):
        return None
    return sum(float(v) for v in values if v is not None) / len(values)


def _number(calibration: Mapping[str, object], key: str) -> float | None:
    value = calibration.get(key)
    return float(value) if isinstance(value, int | float) else None


def switch_price(
    calibration: Mapping[str, object], key: Configuration, name: str
) -> tuple[float | None, str]:
    """The price of one context switch for ``name`` in configuration ``key``."""
    split = key.server_cpu is not None and key.server_cpu != key.client_cpu
    if name == "rtt_p50" and split:
        field = "wakeup_poll_median_ns" if key.idle == "poll" else "wakeup_median_ns"
        wakeup = _number(calibration, field)
        if wakeup is None and key.idle != "poll" and _number(calibration, "wakeup_ns"):
            field = "wakeup_ns"  # a run that recorded only the best repetition
            wakeup = _number(calibration, field)
        if wakeup is None:
            return None, f"calibration has no {field}"
        return wakeup / 2, f"half the calibrated cross-CPU wake-up ({field})"
    switch = _number(calibration, "context_switch_ns")
    return switch, "the calibrated same-CPU switch" if switch else "no calibrated switch"


def cost(
    rows: Sequence[PhaseRow], key: Configuration, name: str, calibration: Mapping[str, object]
) -> tuple[float | None, str]:
    """What the model says configuration ``key`` spends per request, or why it cannot."""
    syscall = _number(calibration, "null_syscall_ns")
    if syscall is None:
        return None, "no calibrated null syscall"
    switch, basis = switch_price(calibration, key, name)
    if switch is None:
        return None, basis
    syscalls, switches = _mean(rows, SYSCALLS), _mean(rows, SWITCHES)
    if syscalls is None or switches is None:
        return None, f"{key.impl}: syscalls or switches per request not counted"
    return syscalls * syscall + switches * switch, f"switch = {basis}"


def predict(
    name: str,
    calibration: Mapping[str, object],
    terms: Sequence[tuple[float, Configuration, Sequence[PhaseRow]]],
) -> Prediction:
    """Σ sign × cost over ``terms`` (sign, configuration, its rows): B − A for an effect,
    the four corners for an interaction."""
    if name not in PREDICTED_METRICS:
        return Prediction(None, f"the model does not predict {name}")
    total = 0.0
    bases: list[str] = []
    for sign, key, rows in terms:
        value, basis = cost(rows, key, name, calibration)
        if value is None:
            return Prediction(None, basis)
        total += sign * value
        bases.append(basis)
    return Prediction(total, "; ".join(dict.fromkeys(bases)))
