"""A machine's identity is defined once (bench/host/identity.py): the history keys its lines
by it and a comparison names the same fields, plus the accelerator, when they differ."""

from __future__ import annotations

import dataclasses

from bench.history.machine import MachineKey as HistoryKey
from bench.host.identity import ACCEL, UNKNOWN, MachineKey, differences

HOST = {"hostname": "bench-a", "cpu_model": "EPYC", "cpu_count": 2, "kernel": "6.18.0",
        "accel": "native", "cpu_governor": "performance"}  # fmt: skip


def test_the_history_keys_by_the_one_identity() -> None:
    assert HistoryKey is MachineKey


def test_the_same_machine_differs_in_nothing_but_what_is_not_its_identity() -> None:
    assert differences(HOST, {**HOST, "cpu_governor": "powersave"}) == []


def test_every_identity_field_and_the_accelerator_is_named_when_it_differs() -> None:
    for field in [f.name for f in dataclasses.fields(MachineKey)] + [ACCEL]:
        changed = {**HOST, field: 64 if field == "cpu_count" else "other"}
        (line,) = differences(HOST, changed)
        assert line.startswith(f"{field} ") and line.endswith(" other" if field != "cpu_count"
                                                              else " 64")  # fmt: skip


def test_a_record_without_a_field_reads_it_as_unknown() -> None:
    bare = {k: v for k, v in HOST.items() if k != "hostname"}
    assert MachineKey.of_record(bare).hostname == UNKNOWN
    assert differences(HOST, bare) == [f"hostname bench-a -> {UNKNOWN}"]
