"""Every key the suite writes about a machine, registered once (pyperf's ``_metadata.py`` is
the model): its JSON type, unit, how the report shows it, whether it is part of the
machine's identity, and one line on what it means.

Four registries, one per record: :data:`ENVIRONMENT` (``environments[name]`` of
results.json, and the server host's describe reply, :data:`SERVER_HOST`),
:data:`CALIBRATION` (its ``calibration``), :data:`FIDELITY` (the calibration's
``driver_fidelity``) and :data:`CROSSCHECK` (one entry of ``crosschecks``).  A registry
formats a record for the report in its own order; a key it does not know (an older or a
newer file) is shown as it is, and :meth:`Registry.unregistered` names it for the tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Row = tuple[str, str]
NOT_MEASURED = "— (not measured)"

# JSON types, as ``json.loads`` gives them.
TEXT: tuple[type, ...] = (str,)
INT: tuple[type, ...] = (int,)
NUMBER: tuple[type, ...] = (int, float)
FLAG: tuple[type, ...] = (bool,)
LIST: tuple[type, ...] = (list,)
OBJECT: tuple[type, ...] = (dict,)


def number(value: Any) -> float | None:
    """``value`` as a finite number, None when it is not one (absent, a flag, text, NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def show(value: Any) -> str:
    """A value of no known format: numbers to four digits, objects as ``k=v`` lists."""
    if value is None:
        return NOT_MEASURED
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={show(v)}" for k, v in value.items()) or "—"
    return str(value)


def show_interval(value: Any) -> str:
    """A ratio's ``[low, high]``."""
    if not isinstance(value, list) or len(value) != 2:
        return "— (fewer than two repetitions)"
    low, high = number(value[0]), number(value[1])
    if low is None or high is None:
        return f"— (not a number: {value!r})"
    return f"[{low:.3f}, {high:.3f}]"


def show_ratio(part: Mapping[str, Any]) -> str:
    """A ratio estimate (``ratio``, ``ci95``, ``method``) on one line."""
    ratio = number(part.get("ratio"))
    if ratio is None:
        return NOT_MEASURED
    return f"{ratio:.3f} {show_interval(part.get('ci95'))} ({part.get('method')})"


def _accel(value: Any) -> str:
    return {"native": "native (no QEMU of ours)", "kvm": "kvm (our QEMU guest)",
            "tcg": "tcg (our QEMU guest, emulated)"}.get(str(value), str(value))  # fmt: skip


def _flag(value: Any) -> str:
    return "yes" if value is True else "no" if value is False else show(value)


def _pm_qos(value: Any) -> str:
    if number(value) is None:
        return f"— (not readable: {value!r})" if value is not None else "— (not readable)"
    return "no limit requested" if int(value) >= 2_000_000_000 else f"{int(value)} µs"


def _virtualization(value: Any) -> str:
    if not isinstance(value, Mapping):
        return show(value)
    evidence = "; ".join(str(e) for e in value.get("evidence") or [])
    return f"{value.get('label')}" + (f" (evidence: {evidence})" if evidence else "")


def _cpuidle(value: Any) -> str:
    if not isinstance(value, Mapping):
        return show(value)
    states = ", ".join(
        f"{s.get('name')} ({s.get('latency_us')} µs{', disabled' if s.get('disabled') else ''})"
        for s in value.get("states") or []
        if isinstance(s, Mapping)
    )
    return f"driver {value.get('driver')}, governor {value.get('governor')}; {states}"


def _clocksource(value: Any) -> str:
    if not isinstance(value, Mapping):
        return show(value)
    available = value.get("available")
    names = ", ".join(str(a) for a in available) if isinstance(available, list) else ""
    return f"{value.get('current')} (available: {names})"


def _mitigations(value: Any) -> list[Row]:
    if not isinstance(value, Mapping):
        return [("mitigations", show(value))]
    return [(f"mitigation: {k}", str(v)) for k, v in sorted(value.items())]


def _nic(nic: Any) -> str:
    if isinstance(nic, Mapping):
        return (
            f"{nic.get('interface')}, driver {nic.get('driver')}, queues {nic.get('sysfs_queues')}"
        )
    return show(nic)


def _server_host(there: Any) -> list[Row]:
    if not isinstance(there, Mapping) or not there:
        return []
    return [
        ("topology", f"two-hosts: the driver here, the server on {there.get('target')}"),
        ("server host kernel", show(there.get("kernel"))),
        ("server host CPU", f"{there.get('cpu_model')} × {there.get('cpu_count')}"),
        ("server host link", f"{there.get('address')} on {_nic(there.get('nic'))}"),
    ]


def _ratio_parts(parts: Any) -> list[Row]:
    if not isinstance(parts, Mapping):
        return []
    return [
        (f"rtt ratio, {name.replace('_', ' ')}", show_ratio(part))
        for name, part in parts.items()
        if isinstance(part, Mapping)
    ]


@dataclass(frozen=True)
class Key:
    """One metadata key.  ``formatter`` shows its value in one cell (default: the number
    with ``unit``); ``rows`` shows it as rows of their own instead; a ``hidden`` key (a
    nested record, raw samples) stays in results.json only."""

    name: str
    types: tuple[type, ...]
    description: str
    unit: str = ""
    label: str = ""
    formatter: Callable[[Any], str] | None = None
    rows: Callable[[Any], Sequence[Row]] | None = None
    identity: bool = False
    hidden: bool = False

    @property
    def title(self) -> str:
        return self.label or self.name

    def accepts(self, value: Any) -> bool:
        """None (not measured) or a value of the key's type (an int is a number, a bool
        is not)."""
        if value is None:
            return True
        if isinstance(value, bool) and bool not in self.types:
            return False
        return isinstance(value, self.types)

    def format(self, value: Any) -> str:
        if value is None:
            return NOT_MEASURED
        if isinstance(value, bool):
            return _flag(value)
        if self.formatter is not None:
            return self.formatter(value)
        if self.unit and number(value) is not None:
            amount = float(value)
            digits = f"{amount:,.0f}" if abs(amount) >= 100 else f"{amount:,.4g}"
            return f"{digits} {self.unit}"
        return show(value)

    def show(self, value: Any) -> list[Row]:
        """The report's rows for ``value``; a value its formatter cannot read (a file
        written otherwise) is shown as it is."""
        try:
            if self.rows is not None:
                return list(self.rows(value))
            return [(self.title, self.format(value))]
        except (TypeError, ValueError, AttributeError, KeyError, OverflowError):
            return [(self.title, show(value))]


class Registry(Mapping[str, Key]):
    """The keys of one record, in the order the report shows them."""

    def __init__(self, record: str, keys: Sequence[Key]) -> None:
        self.record = record
        self._keys = {k.name: k for k in keys}
        if len(self._keys) != len(keys):
            raise ValueError(f"{record}: a key is registered twice")

    def __getitem__(self, name: str) -> Key:
        return self._keys[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def unregistered(self, record: Mapping[str, Any]) -> list[str]:
        """The keys of ``record`` this registry does not know, or whose value is not of the
        key's type (``"name: type"``)."""
        found = []
        for name, value in record.items():
            key = self._keys.get(name)
            if key is None:
                found.append(name)
            elif not key.accepts(value):
                found.append(f"{name}: {type(value).__name__}")
        return found

    def rows(self, record: Mapping[str, Any]) -> list[Row]:
        """The report's rows: every registered key present, shown through the registry,
        then the keys it does not know, raw (the page escapes them)."""
        out: list[Row] = []
        for key in self._keys.values():
            if key.name in record and not key.hidden:
                out += key.show(record[key.name])
        return out + self.unknown_rows(record)

    def unknown_rows(self, record: Mapping[str, Any]) -> list[Row]:
        """The keys of ``record`` this registry does not know, shown as they are."""
        return [(str(name), show(value)) for name, value in record.items() if name not in self]

    def has_hidden(self, record: Mapping[str, Any]) -> bool:
        return any(name in record and key.hidden for name, key in self._keys.items())


def _k(name: str, types: tuple[type, ...], description: str, **how: Any) -> Key:
    return Key(name, types, description, **how)


ENVIRONMENT = Registry("environment", [
    _k("name", TEXT, "the environment's name in the run (host, vm, ...)", hidden=True),
    _k("hostname", TEXT, "the machine's host name", identity=True),
    _k("cpu_model", TEXT, "CPU model name from /proc/cpuinfo", label="CPU", identity=True),
    _k("cpu_count", INT, "CPUs online", label="CPUs", identity=True),
    _k("kernel", TEXT, "kernel release (uname -r)", identity=True),
    _k("kernel_version", TEXT, "kernel build (uname -v)", label="kernel build"),
    _k("accel", TEXT, "how the suite ran the environment: native | kvm | tcg",
       label="acceleration", formatter=_accel),
    _k("emulated", FLAG, "every instruction emulated (TCG)", formatter=_flag),
    _k("virtualization", OBJECT, "what the kernel runs on, with the evidence",
       formatter=_virtualization),
    _k("topology", TEXT, "two-hosts when the server ran on another machine", hidden=True),
    _k("server_host", OBJECT, "the server host's description (two hosts)", rows=_server_host),
    _k("python", TEXT, "Python version", label="Python"),
    _k("python_implementation", TEXT, "Python implementation", label="Python implementation"),
    _k("placement", OBJECT, "CPU placement of server and client"),
    _k("cpu_governor", TEXT, "cpufreq scaling governor of cpu0", label="CPU governor"),
    _k("cpuidle", OBJECT, "cpuidle driver, governor and cpu0's states", formatter=_cpuidle),
    _k("pm_qos_cpu_latency_us", INT, "PM QoS CPU latency limit in force",
       unit="µs", label="PM QoS CPU latency", formatter=_pm_qos),
    _k("clocksource", OBJECT, "current and available clocksources", formatter=_clocksource),
    _k("boot_params", TEXT, "kernel command line", label="boot parameters"),
    _k("mitigations", OBJECT, "CPU vulnerability mitigations", rows=_mitigations),
    _k("nic", (dict, str), "the interface carrying the traffic, or why not known",
       label="link", formatter=_nic),
    _k("calibration", OBJECT, "the calibration record (its own registry)", hidden=True),
])  # fmt: skip

# The remote agent's describe reply: an environment with its interface, as the run records
# it under ``server_host`` with the address it reached and the SSH target.
SERVER_HOST = Registry("server host", [
    *ENVIRONMENT.values(),
    _k("target", TEXT, "the SSH target of the server host"),
    _k("address", TEXT, "the server host's address the driver sends to"),
    _k("interface", TEXT, "the server host's interface holding that address"),
])  # fmt: skip

CALIBRATION = Registry("calibration", [
    _k("null_syscall_ns", NUMBER, "a null syscall, best repetition", unit="ns",
       label="null syscall"),
    _k("context_switch_ns", NUMBER, "a same-CPU context switch, best repetition", unit="ns",
       label="context switch"),
    _k("wakeup_ns", NUMBER, "a cross-CPU wake-up, best repetition", unit="ns",
       label="wake-up"),
    _k("wakeup_median_ns", NUMBER, "a cross-CPU wake-up, median repetition", unit="ns",
       hidden=True),
    _k("wakeup_poll_median_ns", NUMBER, "a cross-CPU wake-up with the idle CPU polling, "
       "median repetition", unit="ns", hidden=True),
    _k("driver_fidelity", OBJECT, "the driver against sockperf (its own registry)",
       hidden=True),
    _k("details", OBJECT, "each measurement's samples and method", hidden=True),
    _k("errors", LIST, "what could not be measured, and why", hidden=True),
])  # fmt: skip

_RATIO = "ours / sockperf"
FIDELITY = Registry("driver fidelity", [
    _k("our_rtt_p50_ns", NUMBER, "our pingpong p50 RTT, median over repetitions", unit="ns"),
    _k("sockperf_rtt_p50_ns", NUMBER, "sockperf ping-pong p50 RTT (doubled half RTT)",
       unit="ns"),
    _k("rtt_ratio", NUMBER, f"p50 RTT {_RATIO}: geometric mean of paired ratios"),
    _k("rtt_ratio_ci95", LIST, "its 95 % interval", formatter=show_interval),
    _k("rtt_ratio_method", TEXT, "how the ratio and interval were computed"),
    _k("rtt_within_5pct_verdict", TEXT, "within 5 %: shown | not refuted | refuted"),
    _k("rtt_ratio_socket_matched", NUMBER, f"p50 RTT {_RATIO} with the socket choice matched"),
    _k("rtt_ratio_socket_matched_ci95", LIST, "its 95 % interval", formatter=show_interval),
    _k("rtt_socket_matched_within_5pct_verdict", TEXT, "within 5 %, socket matched"),
    _k("our_send_rps", NUMBER, "our flood, requests sent per second to a sink", unit="/s"),
    _k("sockperf_send_rps", NUMBER, "sockperf throughput, messages per second to a sink",
       unit="/s"),
    _k("send_ratio", NUMBER, f"send capacity {_RATIO}, median of paired ratios"),
    _k("available", FLAG, "whether the comparison was made"),
    _k("reason", TEXT, "why it was not made"),
    _k("rtt_ratio_median", NUMBER, f"p50 RTT {_RATIO}, median of paired ratios"),
    _k("rtt_ratio_parts", OBJECT, "the RTT ratio split into factors, each a ratio estimate",
       rows=_ratio_parts),
    _k("probe_unconnected_rtt_p50_ns", NUMBER, "the probe (unconnected) against sockperf "
       "server", unit="ns"),
    _k("probe_rtt_p50_ns", NUMBER, "the probe against the fidelity server", unit="ns"),
    _k("probe_sockperf_rtt_p50_ns", NUMBER, "the probe against sockperf server", unit="ns"),
    _k("our_rtt_mean_ns", NUMBER, "our pingpong mean RTT", unit="ns"),
    _k("sockperf_rtt_mean_ns", NUMBER, "sockperf mean RTT", unit="ns"),
    _k("rtt_mean_ratio", NUMBER, f"mean RTT {_RATIO}, ratio of medians"),
    _k("our_rtt_min_ns", NUMBER, "our pingpong minimum RTT", unit="ns"),
    _k("sockperf_rtt_min_ns", NUMBER, "sockperf minimum RTT", unit="ns"),
    _k("rtt_ratio_of_medians", NUMBER, f"p50 RTT {_RATIO}, ratio of medians"),
    _k("send_ratio_of_medians", NUMBER, f"send capacity {_RATIO}, ratio of medians"),
    _k("rtt_mean_ratio_paired", NUMBER, f"mean RTT {_RATIO}, median of paired ratios"),
    _k("our_send_rps_vs_server", NUMBER, "our flood against the fidelity server", unit="/s"),
    _k("rtt_within_5pct", FLAG, "the RTT ratio's estimate within 5 %"),
    _k("send_at_least_sockperf", FLAG, "send ratio >= 1"),
    _k("sockperf_version", TEXT, "sockperf --version"),
    _k("server_impl", TEXT, "the impl holding the fidelity-server role"),
    _k("size", INT, "datagram size", unit="B"),
    _k("duration_s", NUMBER, "seconds per send-capacity run", unit="s"),
    _k("repetitions", INT, "send-capacity repetitions"),
    _k("rtt_duration_s", NUMBER, "seconds per RTT timing", unit="s"),
    _k("rtt_repetitions", INT, "RTT rotations"),
    _k("client_cpu", INT, "the client's CPU"),
    _k("server_cpu", INT, "the server's CPU"),
    _k("runs", OBJECT, "per-repetition values of every timing", hidden=True),
    _k("failures", LIST, "timings that failed and were retried", hidden=True),
    _k("machine_load", OBJECT, "load average and CPU pressure before and after", hidden=True),
    _k("modes_compared", OBJECT, "what each comparison sets side by side", hidden=True),
    _k("commands", OBJECT, "the command of every tool", hidden=True),
])  # fmt: skip

CROSSCHECK = Registry("cross-check", [
    _k("env", TEXT, "the environment"),
    _k("topology", TEXT, "the topology"),
    _k("impl", TEXT, "the server checked against"),
    _k("rx_cpu", TEXT, "the receive-CPU level"),
    _k("idle", TEXT, "the idle level"),
    _k("size", INT, "datagram size", unit="B"),
    _k("error", TEXT, "why the check failed"),
    _k("ours_p50_ns", NUMBER, "our pingpong p50 RTT, median of repetitions", unit="ns"),
    _k("probe_p50_ns", NUMBER, "the independent client's p50 RTT", unit="ns"),
    _k("ratio", NUMBER, "ours / the probe's p50, median of paired ratios"),
    _k("ratios", LIST, "the paired ratios", hidden=True),
    _k("within_tolerance", FLAG, "the ratio within the tolerance of 1", formatter=_flag),
    _k("tolerance", NUMBER, "the tolerance"),
    _k("method", TEXT, "how the check was made"),
])  # fmt: skip

IDENTITY: tuple[str, ...] = tuple(k.name for k in ENVIRONMENT.values() if k.identity)
ACCEL = ENVIRONMENT["accel"].name
