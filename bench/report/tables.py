"""The summary tables: medians over trials per configuration, nulls shown as "—" with a note.

A value that was not measured (null in results.json: an eBPF impl has no server process,
so no server syscalls) is never shown as 0: the cell reads "—" and points to a footnote
taken from the rows' ``accounting.note``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bench.analysis.summary import Failure, Summary, SummaryLine
from bench.results.metrics import at_timeout, fmt_us
from bench.results.rows import Configuration

NOT_MEASURED = "not measured in this run"


def fmt_lost(lost_pct: float | None) -> str:
    """A percentile that fell on the timeout, with the share of requests lost there."""
    if lost_pct is None or lost_pct != lost_pct:
        return "≥ timeout (lost)"
    return f"≥ timeout (lost {_fmt_pct(lost_pct)} %)"


def fmt_rtt(
    ns: float | None, timeout_ns: float | None = None, lost_pct: float | None = None
) -> str:
    """A latency percentile in µs, "lost (x %)" when it is the timeout, "—" when absent."""
    if ns is None or ns != ns:
        return "—"
    if at_timeout(ns, timeout_ns):
        return fmt_lost(lost_pct)
    return fmt_us(ns)


def timeout_note(timeout_ns: float) -> str:
    return (
        f"≥ timeout: more requests than this percentile leaves above it got no reply within "
        f"the driver's {fmt_us(timeout_ns)} µs reply timeout; the driver records such a "
        "request at the timeout, so the value is lost requests, not a latency (lost: the "
        "share of requests recorded at the timeout)"
    )


def _fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def _fmt_small(x: float) -> str:
    return f"{x:.2f}"


def _fmt_pct(x: float) -> str:
    return f"{x:.3f}" if x < 1 else f"{x:.1f}"


def _fmt_ns(x: float) -> str:
    return f"{x:.0f}"


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    group: str
    metric: str  # its name in the metric registry (bench/results/metrics.py)
    fmt: Callable[[float], str]
    optional: bool = False  # shown only when some line of the table has a value
    null_note: str | None = None  # why the column is empty, when the row's note does not say


COLUMNS: tuple[Column, ...] = (
    Column("p50", "p50", "RTT µs", "rtt_p50", fmt_us),
    Column("p99", "p99", "RTT µs", "rtt_p99", fmt_us),
    Column("p999", "p99.9", "RTT µs", "rtt_p999", fmt_us),
    Column(
        "p50_uncorrected",
        "p50 from send",
        "RTT µs",
        "rtt_uncorrected_p50",
        fmt_us,
        optional=True,
        null_note="rate mode only: the corrected RTT counts from the scheduled send",
    ),
    Column(
        "p99_uncorrected",
        "p99 from send",
        "RTT µs",
        "rtt_uncorrected_p99",
        fmt_us,
        optional=True,
        null_note="rate mode only: the corrected RTT counts from the scheduled send",
    ),
    Column("throughput", "replies/s", "rate", "throughput_rps", _fmt_rate),
    Column("loss", "loss %", "rate", "loss_pct", _fmt_pct),
    Column("server_syscalls", "server", "syscalls/req", "server_syscalls_per_req", _fmt_small),
    Column("client_syscalls", "client", "syscalls/req", "client_syscalls_per_req", _fmt_small),
    Column("server_ctx", "server", "ctx switches/req", "server_ctx_per_req", _fmt_small),
    Column(
        "kthread_ctx",
        "kthread",
        "ctx switches/req",
        "kthread_ctx_per_req",
        _fmt_small,
        optional=True,
        null_note="no kernel thread serves this impl",
    ),
    Column("system_ctx", "system", "ctx switches/req", "system_ctx_per_req", _fmt_small),
    Column("cpu_user", "user", "CPU µs/req", "cpu_user_ns_per_req", fmt_us),
    Column("cpu_system", "system", "CPU µs/req", "cpu_system_ns_per_req", fmt_us),
    Column("cpu_softirq", "softirq", "CPU µs/req", "cpu_softirq_ns_per_req", fmt_us),
    Column("cpu_irq", "irq", "CPU µs/req", "cpu_irq_ns_per_req", fmt_us),
    Column("cpu_total", "total", "CPU µs/req", "cpu_ns_per_req", fmt_us),
    Column(
        "server_cpu_busy",
        "server CPU",
        "pinned CPUs µs/req",
        "server_cpu_busy_ns_per_req",
        fmt_us,
        optional=True,
        null_note="the server was not pinned, or the row predates per-CPU accounting",
    ),
    Column(
        "client_cpu_busy",
        "client CPU",
        "pinned CPUs µs/req",
        "client_cpu_busy_ns_per_req",
        fmt_us,
        optional=True,
        null_note="the client was not pinned, or the row predates per-CPU accounting",
    ),
    Column("steal", "steal %", "pinned CPUs µs/req", "steal_pct", _fmt_pct, optional=True),
    Column(
        "bpf",
        "BPF run ns/req",
        "BPF",
        "bpf_run_ns",
        _fmt_ns,
        optional=True,
        null_note="no BPF program in this impl, or BPF run-time stats were off",
    ),
)


@dataclass(frozen=True)
class Cell:
    text: str
    value: float | None
    note: int | None = None
    timeout: bool = False  # a latency percentile at the driver's timeout: lost requests


@dataclass(frozen=True)
class Line:
    key: Configuration
    trials: int
    attempted: int
    cells: tuple[Cell, ...]
    family: str = ""  # the impl's family: the table starts a group where it changes


@dataclass(frozen=True)
class EnvTable:
    env: str
    columns: tuple[Column, ...]
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class SummaryTables:
    tables: tuple[EnvTable, ...]
    footnotes: tuple[str, ...]
    failures: tuple[Failure, ...]
    skipped: Mapping[str, tuple[tuple[str, str], ...]]


class _Notes:
    def __init__(self) -> None:
        self.texts: list[str] = []

    def number(self, text: str) -> int:
        if text not in self.texts:
            self.texts.append(text)
        return self.texts.index(text) + 1


RTT_METRICS = frozenset(
    c.metric for c in COLUMNS if c.metric.startswith(("rtt_p", "rtt_uncorrected_p"))
)


def _cell(
    line: SummaryLine,
    col: Column,
    notes: _Notes,
    timeout_ns: float | None = None,
    lost_pct: float | None = None,
) -> Cell:
    value = line.value(col.metric)
    if value is not None and value != value:  # NaN: not a measurement either
        value = None
    if value is not None and col.metric in RTT_METRICS and at_timeout(value, timeout_ns):
        assert timeout_ns is not None
        return Cell(fmt_lost(lost_pct), value, notes.number(timeout_note(timeout_ns)), True)
    if value is not None:
        return Cell(col.fmt(value), value)
    if col.null_note is not None:
        return Cell("—", None, notes.number(col.null_note))
    return Cell("—", None, notes.number(line.why_missing or NOT_MEASURED))


def summary_tables(
    summary: Summary,
    families: Mapping[str, str] | None = None,
    *,
    timeout_ns: float | None = None,
    lost_pct: Mapping[Configuration, float] | None = None,
) -> SummaryTables:
    """The report's summary tables: one per environment, nulls as "—" with a footnote;
    lines grouped by the impls' ``families`` (impl -> family) where given.  A latency
    percentile at the driver's reply timeout ``timeout_ns`` reads "≥ timeout, lost (x %)",
    x from ``lost_pct`` (configuration -> percent of requests at the timeout) or else the
    line's loss."""
    notes = _Notes()
    tables: list[EnvTable] = []
    for env, lines in summary.lines.items():
        columns = tuple(
            c
            for c in COLUMNS
            if not c.optional or any(ln.value(c.metric) is not None for ln in lines)
        )
        rendered = tuple(
            Line(
                ln.key,
                ln.trials,
                ln.attempted,
                tuple(_cell(ln, c, notes, timeout_ns, _lost(ln, lost_pct)) for c in columns),
                (families or {}).get(ln.key.impl, ""),
            )
            for ln in lines
        )
        tables.append(EnvTable(env, columns, rendered))
    return SummaryTables(tuple(tables), tuple(notes.texts), summary.failures, summary.skipped)


def _lost(line: SummaryLine, lost_pct: Mapping[Configuration, float] | None) -> float | None:
    found = (lost_pct or {}).get(line.key)
    return found if found is not None else line.value("loss_pct")


def column_groups(columns: Sequence[Column]) -> list[tuple[str, int]]:
    """Header groups (label, span) for the table's first header row."""
    out: list[tuple[str, int]] = []
    for c in columns:
        if out and out[-1][0] == c.group:
            out[-1] = (c.group, out[-1][1] + 1)
        else:
            out.append((c.group, 1))
    return out
