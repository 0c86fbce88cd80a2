"""The end-of-run summary table: medians over trials, one line per measured phase kind."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from rich.table import Table


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _fmt(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "—" if value is None else f"{value / scale:,.{digits}f}"


def _server_ctx(per_request: list[dict[str, Any]]) -> str:
    """Server context switches per request; a kernel thread's, marked (kt), when it serves."""
    own = _median([p["server_ctx_switches"] for p in per_request])
    if own is not None:
        return _fmt(own, 1, 2)
    kthread = _median([p.get("kernel_thread_ctx_switches") for p in per_request])
    return "—" if kthread is None else f"{_fmt(kthread, 1, 2)} (kt)"


def summary_table(document: dict[str, Any]) -> Table:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in document["results"]:
        key = (
            row["env"],
            row["topology"],
            row["impl"],
            row["mode"],
            row["size"],
            row.get("load_fraction") or row.get("offered_rps"),
        )
        groups[key].append(row)
    table = Table(title=f"hellobench run {document['run_id']} (medians over trials)")
    for col in (
        "env",
        "topo",
        "impl",
        "mode",
        "size",
        "trials",
        "p50 µs",
        "p99 µs",
        "replies/s",
        "loss %",
        "sys/req srv",
        "sys/req cli",
        "ctx/req srv",
        "ctx/req sys",
        "CPU µs/req",
    ):
        table.add_column(col, justify="left" if col in ("env", "topo", "impl", "mode") else "right")
    for key, rows in sorted(groups.items(), key=lambda kv: tuple(str(k) for k in kv[0])):
        env, topo, impl, mode, size, load = key
        ok = [r for r in rows if r["status"] == "ok"]
        label = mode if load is None else f"{mode}@{load:g}" if load < 2 else f"{mode}@{load:.0f}/s"
        if not ok:
            table.add_row(
                env, topo, impl, label, str(size), f"0/{len(rows)}", "[red]failed[/red]", *[""] * 8
            )
            continue
        pr = [r["per_request"] for r in ok]
        loss = [100.0 * r["lost"] / r["requests"] if r["requests"] else None for r in ok]
        table.add_row(
            env,
            topo,
            impl,
            label,
            str(size),
            f"{len(ok)}/{len(rows)}",
            _fmt(_median([r["latency_ns"]["p50"] for r in ok]), 1e3, 2),
            _fmt(_median([r["latency_ns"]["p99"] for r in ok]), 1e3, 2),
            _fmt(_median([r["throughput_rps"] for r in ok]), 1, 0),
            _fmt(_median(loss), 1, 2),
            _fmt(_median([p["server_syscalls"] for p in pr]), 1, 2),
            _fmt(_median([p["client_syscalls"] for p in pr]), 1, 2),
            _server_ctx(pr),
            _fmt(_median([p["system_ctx_switches"] for p in pr]), 1, 2),
            _fmt(_median([p["cpu_ns"]["total"] for p in pr]), 1e3, 2),
        )
    return table


def footnotes(document: dict[str, Any]) -> list[str]:
    """Why some cells are empty ("—"): where no server process exists, and skipped impls."""
    notes: dict[str, str] = {}
    for row in document["results"]:
        note = (row.get("accounting") or {}).get("note")
        if note and not (row.get("accounting") or {}).get("server_process", True):
            notes[row["impl"]] = note
    lines = [f"— {impl}: {note}" for impl, note in sorted(notes.items())]
    lines += [f"skipped {s['impl']} ({s['env']}): {s['reason']}" for s in document["skipped"]]
    return lines
