"""The summary tables: medians over trials per configuration, nulls shown as "—" with a note.

A value that was not measured (null in results.json: an eBPF impl has no server process,
so no server syscalls) is never shown as 0: the cell reads "—" and points to a footnote
taken from the rows' ``accounting.note``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bench.analysis.claim import fmt_us
from bench.analysis.summary import Failure, Summary, SummaryLine
from bench.results.rows import Configuration

NOT_MEASURED = "not measured in this run"


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


def _cell(line: SummaryLine, col: Column, notes: _Notes) -> Cell:
    value = line.value(col.metric)
    if value is not None:
        return Cell(col.fmt(value), value)
    if col.null_note is not None:
        return Cell("—", None, notes.number(col.null_note))
    return Cell("—", None, notes.number(line.why_missing or NOT_MEASURED))


def summary_tables(summary: Summary, families: Mapping[str, str] | None = None) -> SummaryTables:
    """The report's summary tables: one per environment, nulls as "—" with a footnote;
    lines grouped by the impls' ``families`` (impl -> family) where given."""
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
                tuple(_cell(ln, c, notes) for c in columns),
                (families or {}).get(ln.key.impl, ""),
            )
            for ln in lines
        )
        tables.append(EnvTable(env, columns, rendered))
    return SummaryTables(tuple(tables), tuple(notes.texts), summary.failures, summary.skipped)


def column_groups(columns: Sequence[Column]) -> list[tuple[str, int]]:
    """Header groups (label, span) for the table's first header row."""
    out: list[tuple[str, int]] = []
    for c in columns:
        if out and out[-1][0] == c.group:
            out[-1] = (c.group, out[-1][1] + 1)
        else:
            out.append((c.group, 1))
    return out
