"""The summary tables: medians over trials per configuration, nulls shown as "—" with a note.

A value that was not measured (null in results.json: an eBPF impl has no server process,
so no server syscalls) is never shown as 0: the cell reads "—" and points to a footnote
taken from the rows' ``accounting.note``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bench.report.claim import fmt_us
from bench.report.figures import impl_sort_key
from bench.results_io import GroupKey, Row, Run, group_rows
from bench.stats import median

NOT_MEASURED = "not measured in this run"


def _fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def _fmt_small(x: float) -> str:
    return f"{x:.2f}"


def _fmt_pct(x: float) -> str:
    return f"{x:.3f}" if x < 1 else f"{x:.1f}"


def _fmt_ns(x: float) -> str:
    return f"{x:.0f}"


def _lat(p: str) -> Callable[[Row], float | None]:
    def get(r: Row) -> float | None:
        v = r["latency_ns"].get(p)
        return None if v is None else float(v)

    return get


def _pr(field: str) -> Callable[[Row], float | None]:
    def get(r: Row) -> float | None:
        pr = r["per_request"]
        v = pr["cpu_ns"].get(field[4:]) if field.startswith("cpu.") else pr.get(field)
        return None if v is None else float(v)

    return get


def _loss(r: Row) -> float | None:
    req = int(r["requests"])
    return 100.0 * int(r["lost"]) / req if req else None


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    group: str
    value: Callable[[Row], float | None]
    fmt: Callable[[float], str]
    optional: bool = False  # shown only when some row of the table has a value
    null_note: str | None = None  # why the column is empty, when the row's note does not say


COLUMNS: tuple[Column, ...] = (
    Column("p50", "p50", "RTT µs", _lat("p50"), fmt_us),
    Column("p99", "p99", "RTT µs", _lat("p99"), fmt_us),
    Column("p999", "p99.9", "RTT µs", _lat("p999"), fmt_us),
    Column("throughput", "replies/s", "rate", lambda r: float(r["throughput_rps"]), _fmt_rate),
    Column("loss", "loss %", "rate", _loss, _fmt_pct),
    Column("server_syscalls", "server", "syscalls/req", _pr("server_syscalls"), _fmt_small),
    Column("client_syscalls", "client", "syscalls/req", _pr("client_syscalls"), _fmt_small),
    Column("server_ctx", "server", "ctx switches/req", _pr("server_ctx_switches"), _fmt_small),
    Column(
        "kthread_ctx",
        "kthread",
        "ctx switches/req",
        _pr("kernel_thread_ctx_switches"),
        _fmt_small,
        optional=True,
        null_note="no kernel thread serves this impl",
    ),
    Column("system_ctx", "system", "ctx switches/req", _pr("system_ctx_switches"), _fmt_small),
    Column("cpu_user", "user", "CPU µs/req", _pr("cpu.user"), fmt_us),
    Column("cpu_system", "system", "CPU µs/req", _pr("cpu.system"), fmt_us),
    Column("cpu_softirq", "softirq", "CPU µs/req", _pr("cpu.softirq"), fmt_us),
    Column("cpu_irq", "irq", "CPU µs/req", _pr("cpu.irq"), fmt_us),
    Column("cpu_total", "total", "CPU µs/req", _pr("cpu.total"), fmt_us),
    Column(
        "bpf",
        "BPF run ns/req",
        "BPF",
        _pr("bpf_run_ns"),
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
    key: GroupKey
    trials: int
    attempted: int
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class EnvTable:
    env: str
    columns: tuple[Column, ...]
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class Failure:
    env: str
    impl: str
    mode: str
    size: int
    trial: int
    load_fraction: float | None
    error: str


@dataclass(frozen=True)
class Summary:
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


def _line_order(key: GroupKey) -> tuple[tuple[int, str], int, int, str, float]:
    modes = {"pingpong": 0, "rate": 1, "flood": 2}
    lf = -1.0 if key.load_fraction is None else key.load_fraction
    return (impl_sort_key(key.impl), modes.get(key.mode, 9), key.size, key.topology, lf)


def summarize(run: Run) -> Summary:
    notes = _Notes()
    groups = group_rows(run.rows)
    attempted = group_rows(run.rows, ok_only=False)
    tables: list[EnvTable] = []
    for env in run.env_names:
        keys = sorted((k for k in groups if k.env == env), key=_line_order)
        columns = tuple(
            c
            for c in COLUMNS
            if not c.optional or any(c.value(r) is not None for k in keys for r in groups[k])
        )
        lines = []
        for key in keys:
            rows = groups[key]
            cells = []
            for col in columns:
                med = median(col.value(r) for r in rows)
                if med is None and col.null_note is not None:
                    cells.append(Cell("—", None, notes.number(col.null_note)))
                elif med is None:
                    note = next(
                        (
                            str(r["accounting"]["note"])
                            for r in rows
                            if (r.get("accounting") or {}).get("note")
                        ),
                        NOT_MEASURED,
                    )
                    cells.append(Cell("—", None, notes.number(note)))
                else:
                    cells.append(Cell(col.fmt(med), med))
            lines.append(Line(key, len(rows), len(attempted.get(key, rows)), tuple(cells)))
        tables.append(EnvTable(env, columns, tuple(lines)))
    failures = tuple(
        Failure(
            str(r["env"]),
            str(r["impl"]),
            str(r["mode"]),
            int(r["size"]),
            int(r["trial"]),
            r.get("load_fraction"),
            str(r.get("error") or "no error recorded"),
        )
        for r in run.rows
        if r["status"] != "ok"
    )
    skipped: dict[str, list[tuple[str, str]]] = {}
    for s in run.skipped:
        skipped.setdefault(str(s["env"]), []).append((str(s["impl"]), str(s["reason"])))
    return Summary(
        tuple(tables),
        tuple(notes.texts),
        failures,
        {env: tuple(v) for env, v in skipped.items()},
    )


def column_groups(columns: Sequence[Column]) -> list[tuple[str, int]]:
    """Header groups (label, span) for the table's first header row."""
    out: list[tuple[str, int]] = []
    for c in columns:
        if out and out[-1][0] == c.group:
            out[-1] = (c.group, out[-1][1] + 1)
        else:
            out.append((c.group, 1))
    return out
