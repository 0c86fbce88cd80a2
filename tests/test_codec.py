"""Records to JSON and back are derived from their fields (bench/results/codec.py): what is
written reads back equal, an absent field takes its declared default, and a value that
does not fit is an error naming its field."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import pytest

from bench.results.codec import CodecError, record_from_json
from bench.results.rows import (
    Accounting,
    Counted,
    CpuNs,
    Latency,
    PerRequest,
    PhaseRow,
    Samples,
    Skip,
)
from bench.results.schema import schema as results_schema


def _full_row() -> PhaseRow:
    latency = Latency(min=1.0, p50=2.0, p90=3.0, p99=4.0, p999=5.0, max=6.0, mean=2.5)
    return PhaseRow(
        env="host", impl="x", kind="ebpf", mode="rate", size=64, topology="veth", trial=3,
        status="ok", offered_rps=1000.0, load_fraction=0.5, server_cpu=1, client_cpu=0,
        rx_cpu="server", idle="poll", server_options="a=1", client_wait="spin",
        arrivals="poisson", outstanding=None, requests=10, replies=9, lost=1, duration_s=1.0,
        throughput_rps=9.0, send_rps=10.0, drained=0, steal_pct=0.5, latency_ns=latency,
        latency_uncorrected_ns=latency, histogram_uncorrected="HIST",
        per_request=PerRequest(server_syscalls=2.0, cpu_ns=CpuNs(total=5.0),
                               server_host_cpu_ns=CpuNs(user=1.0)),
        accounting=Accounting(server_process=False, note="no server process"),
        metric_notes=("n1", "n2"), impl_counters={"answered": 9}, histogram="H",
        samples=Samples(file="s.npy", count=9, cap=10, method="m"), timing="probe-free",
        counted=Counted(duration_s=0.2, replies=5, throughput_rps=25.0, latency_ns=latency),
    )  # fmt: skip


def test_a_row_reads_back_what_it_wrote() -> None:
    row = _full_row()
    assert PhaseRow.from_json(row.to_json()) == row


def test_absent_optional_records_are_left_out_and_read_back_as_none() -> None:
    row = PhaseRow(env="h", impl="x", kind="userspace", mode="pingpong", size=64,
                   topology="lo", trial=0, status="ok")  # fmt: skip
    written = row.to_json()
    for name in ("accounting", "counted", "latency_uncorrected_ns"):
        assert name not in written
    assert "server_host_cpu_ns" not in written["per_request"]
    assert written["samples"] is None  # written as null, as the schema has it
    assert PhaseRow.from_json(written) == row


def test_an_absent_field_takes_its_declared_default() -> None:
    written = _full_row().to_json()
    for name in ("duplicates", "timing", "rx_cpu", "drained", "metric_notes"):
        del written[name]
    del written["accounting"]["server_process"]
    read = PhaseRow.from_json(written)
    assert (read.duplicates, read.timing, read.rx_cpu, read.drained, read.metric_notes) == (
        0, "probed", "client", None, ()
    )  # fmt: skip
    assert read.accounting == Accounting(server_process=True, note="no server process")


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"requests": "10"}, "PhaseRow.requests"),
        ({"size": True}, "PhaseRow.size"),
        ({"kind": "firmware"}, "PhaseRow.kind"),
        ({"latency_ns": {"p50": "fast"}}, "PhaseRow.latency_ns: Latency.p50"),
        ({"metric_notes": "one"}, "PhaseRow.metric_notes"),
        ({"impl_counters": {"answered": 1.5}}, "PhaseRow.impl_counters"),
    ],
)
def test_a_value_that_does_not_fit_names_its_field(change: dict[str, object], named: str) -> None:
    written = {**_full_row().to_json(), **change}
    with pytest.raises(CodecError, match=named.replace(".", r"\.")):
        PhaseRow.from_json(written)


def test_a_missing_required_field_is_named() -> None:
    written = _full_row().to_json()
    del written["samples"]["file"]
    with pytest.raises(CodecError, match=r"Samples\.file: missing"):
        PhaseRow.from_json(written)
    with pytest.raises(CodecError, match="expected an object"):
        record_from_json(Samples, ["s.npy"])  # type: ignore[arg-type]


def _node(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """The object a property declares (through references, and into an array's items)."""
    while "$ref" in node or "items" in node:
        node = defs[node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else node["items"]
    return node


def _records(record: type, node: dict[str, Any], defs: dict[str, Any], path: str) -> list[str]:
    """Where ``record``'s fields and the schema's declared properties differ, recursively
    through every nested record."""
    node = _node(node, defs)
    fields = {f.name for f in dataclasses.fields(record)}
    declared = set(node.get("properties", {}))
    found = [f"{path}: fields {sorted(fields - declared)} undeclared"] if fields - declared else []
    if declared - fields:
        found.append(f"{path}: declared {sorted(declared - fields)} not a field")
    hints = typing.get_type_hints(record)
    for name in sorted(fields & declared):
        inner = [a for a in (hints[name], *typing.get_args(hints[name])) if _is_record(a)]
        for kind in inner:
            found += _records(kind, node["properties"][name], defs, f"{path}.{name}")
    return found


def _is_record(kind: object) -> bool:
    return isinstance(kind, type) and dataclasses.is_dataclass(kind)


def test_every_record_of_a_row_is_declared_field_for_field_in_the_current_schema() -> None:
    current = dict(results_schema())
    assert _records(PhaseRow, current["$defs"]["row"], current["$defs"], "row") == []
    skipped = current["properties"]["skipped"]["items"]
    assert _records(Skip, skipped, current["$defs"], "skipped") == []
