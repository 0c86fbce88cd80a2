"""The run factors are one entry each (bench/factors.py): the records, the option, the
design's products, labels, keys, hooks, the guest's configuration, the history's columns
and the README's table are derived from the entries, and checked against them here."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import PROJECT_ROOT, factors
from bench.analysis.compare import MetricChange
from bench.cli import build_parser
from bench.cli.run import run_config
from bench.driver.client import DriverConfig
from bench.errors import UsageError
from bench.factors import CONDITION, DRIVER, FACTORS
from bench.history import schema
from bench.results.rows import CONFIG_FIELDS, Configuration, PhaseRow
from bench.runner.conditions import HOOKS
from bench.runner.config import ConfigError, RunConfig
from bench.runner.design import matrix_block
from bench.runner.measure import spec_mode_label
from bench.runner.phase import PhaseSpec


def _defaults(record: type[Any]) -> dict[str, object]:
    return {f.name: f.default for f in dataclasses.fields(record)}


@pytest.mark.parametrize("record", [Configuration, PhaseRow])
def test_every_record_of_a_phase_has_each_factor_at_its_default(record: type[Any]) -> None:
    declared = _defaults(record)
    assert {f.name: declared.get(f.name) for f in FACTORS} == dict(factors.DEFAULTS)


def test_the_levels_are_distinct_and_fragments_name_their_level() -> None:
    for f in FACTORS:
        assert len(set(f.levels)) == len(f.levels) >= 2
        for level in f.levels[1:]:
            assert level in f.label_of(level) and level in f.key_of(level)
            assert not set(f.key_of(level)) & set("=@/ [],")  # part of file names
        assert f.label_of(f.default) == f.key_of(f.default) == ""


def test_each_condition_has_one_hook_and_each_driver_factor_one_driver_field() -> None:
    conditions = {f.name for f in FACTORS if f.hook == CONDITION}
    assert set(HOOKS) == conditions
    driver_fields = {f.name for f in dataclasses.fields(DriverConfig)}
    for f in (f for f in FACTORS if f.hook == DRIVER):
        assert f.driver_option in driver_fields
        mode = (f.modes or ("pingpong",))[0]
        for level in f.levels:  # the driver accepts every level where the factor applies
            rate = 100.0 if mode == "rate" else None
            options: dict[str, Any] = {f.driver_option: level}
            cfg = DriverConfig(mode, rate_rps=rate, **options)  # type: ignore[arg-type]
            assert getattr(cfg, f.driver_option) == level


def test_the_run_option_of_each_factor_takes_its_levels(tmp_path: Path) -> None:
    argv = ["run", "--out", str(tmp_path)]
    for f in FACTORS:
        argv += [arg for level in reversed(f.levels) for arg in (f.flag, level)]
    cfg = run_config(build_parser().parse_args(argv))
    assert dict(cfg.levels) == {f.name: tuple(reversed(f.levels)) for f in FACTORS}
    plain = run_config(build_parser().parse_args(["run", "--out", str(tmp_path)]))
    assert dict(plain.levels) == factors.default_levels()
    for f in FACTORS:
        with pytest.raises(UsageError, match=f"{f.flag}: invalid choice"):
            build_parser().parse_args(["run", f.flag, "no-such-level"])


def test_a_factor_that_does_not_apply_to_a_mode_stays_at_its_default(tmp_path: Path) -> None:
    every = {f.name: f.levels for f in FACTORS}
    block = matrix_block(RunConfig(out_root=tmp_path, levels=every), "m", 1)
    for mode in ("pingpong", "rate", "flood"):
        settings_ = block.settings(mode)
        applying = [f for f in FACTORS if f.applies_to(mode)]
        expected = 1
        for f in applying:
            expected *= len(f.levels)
        assert len(settings_) == expected == len({tuple(s.items()) for s in settings_})
        for f in FACTORS:
            if not f.applies_to(mode):
                assert {s[f.name] for s in settings_} == {f.default}


def test_labels_keys_and_progress_lines_show_every_non_default_level() -> None:
    base = PhaseSpec.of(0, "userspace", env="h", topology="lo", impl="x", mode="rate", size=64)
    keys = {base.key}
    for f in FACTORS:
        for level in f.levels[1:]:
            changed: dict[str, Any] = {f.name: level}
            spec = dataclasses.replace(
                base, configuration=dataclasses.replace(base.configuration, **changed)
            )
            row = spec.row("ok")
            assert f.label_of(level) in row.configuration.label()
            assert f.label_of(level) in spec_mode_label(spec)
            assert f.key_of(level) in spec.key
            assert PhaseRow.from_json(row.to_json()).configuration == row.configuration
            keys.add(spec.key)
    assert len(keys) == 1 + sum(len(f.levels) - 1 for f in FACTORS)


def test_a_row_written_before_a_factor_existed_reads_as_its_default() -> None:
    spec = PhaseSpec.of(0, "userspace", env="h", topology="lo", impl="x", mode="pingpong", size=64)
    older = spec.row("ok").to_json()
    for name in factors.NAMES:
        del older[name]
    assert PhaseRow.from_json(older).configuration.factor_levels() == dict(factors.DEFAULTS)


def test_the_history_and_the_comparison_carry_every_configuration_field() -> None:
    assert set(schema.SERIES_FIELDS) == set(CONFIG_FIELDS) - {"env"}
    # the series table of history schema 1; a new factor is a new column: bump the version
    assert schema.SCHEMA_VERSION == "hellobench-history/1"
    assert [c.name for c in schema.series.columns] == [
        "id", "environment", "impl", "mode", "size", "topology", "outstanding",
        "load_fraction", "offered_rps", "server_cpu", "client_cpu", "rx_cpu", "idle",
        "client_wait", "arrivals", "server_options", "configuration",
    ]  # fmt: skip
    key = Configuration(env="h", topology="lo", impl="x", mode="pingpong", size=64)
    change = MetricChange(key=key, metric="rtt_p50", unit="ns", base_median=1.0,
                          new_median=1.0, raw_ratio=1.0, ratio=1.0, judged="raw",
                          p_value=None, raw_p_value=None, min_p=0.1, n_base=3, n_new=3,
                          verdict="unchanged")  # fmt: skip
    out = change.to_json()
    assert {name: out[name] for name in CONFIG_FIELDS} == dataclasses.asdict(key)


def test_the_readme_shows_the_factors_table_of_the_registry() -> None:
    assert factors.markdown_table() in (PROJECT_ROOT / "README.md").read_text()


# -- a RunConfig is serialised once: results.json's config, and what a guest reads ---------

_levels = st.fixed_dictionaries(
    {
        f.name: st.lists(st.sampled_from(f.levels), min_size=1, unique=True).map(tuple)
        for f in FACTORS
    }
)


@settings(max_examples=60, deadline=None)
@given(
    levels=_levels,
    sizes=st.lists(st.integers(24, 1472), min_size=1, max_size=3).map(tuple),
    rates=st.lists(st.floats(1.0, 1e6), min_size=1, max_size=2).map(tuple),
    seed=st.integers(0, 2**32 - 1),
    server_cpu=st.sampled_from([None, 1]),
    options=st.dictionaries(st.sampled_from(["a", "b"]), st.sampled_from(["1", "x"])),
    budget=st.sampled_from(["quick", "default", "full"]),
)
def test_a_run_config_reads_back_what_it_wrote(
    levels: dict[str, tuple[str, ...]],
    sizes: tuple[int, ...],
    rates: tuple[float, ...],
    seed: int,
    server_cpu: int | None,
    options: dict[str, str],
    budget: str,
) -> None:
    if server_cpu is None and "server" in levels["rx_cpu"]:
        levels = {**levels, "rx_cpu": ("client",)}
    cfg = RunConfig(
        out_root=Path("/tmp/x"), impls=("blocking-c",), sizes=sizes, rates=rates,
        order_seed=seed, server_cpu=server_cpu, server_options=options, budget=budget,
        levels=levels, server_levels=(("extra_syscalls", ("0", "100")),), vm_timeout_s=None,
    )  # fmt: skip
    written = json.loads(json.dumps(cfg.to_json()))
    assert RunConfig.from_json(written) == cfg


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("sizes", "64", "RunConfig.sizes"),
        ("trials", 2.5, "RunConfig.trials"),
        ("calibrate", 1, "RunConfig.calibrate"),
        ("levels", {"rx_cpu": ["sideways"]}, "--rx-cpu sideways"),
        ("levels", {"colour": ["red"]}, "unknown factor"),
        ("server_levels", [["k"]], "RunConfig.server_levels"),
    ],
)
def test_a_config_that_does_not_fit_is_refused_naming_it(
    tmp_path: Path, field: str, value: object, message: str
) -> None:
    raw = RunConfig(out_root=tmp_path).to_json()
    raw[field] = value
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_json(raw)


def test_a_phase_is_one_round_of_one_configuration() -> None:
    """Its row carries the configuration's fields unchanged; a rate given as a fraction of
    the measured maximum is the row's offered rate and the configuration's fraction."""
    base = PhaseSpec.of(2, "ebpf", env="h", topology="veth", impl="x", mode="rate", size=80,
                        rx_cpu="server", server_options="a=1")  # fmt: skip
    loaded = base.at_load(5000.0, 0.5)
    row = loaded.row("ok")
    assert row.configuration == loaded.configuration
    assert (row.trial, row.kind, row.offered_rps, row.load_fraction) == (2, "ebpf", 5000.0, 0.5)
    assert loaded.configuration.offered_rps is None
    absolute = base.at_load(7000.0, None).row("ok")
    assert (absolute.offered_rps, absolute.configuration.offered_rps) == (7000.0, 7000.0)


def test_the_current_schema_admits_exactly_each_factor_s_levels() -> None:
    """A new level or factor is a new published schema version (and its migration)."""
    from bench.results.schema import schema as results_schema

    row = results_schema()["$defs"]["row"]["properties"]
    assert {f.name: tuple(row[f.name]["enum"]) for f in FACTORS} == {
        f.name: f.levels for f in FACTORS
    }


def test_a_two_host_config_reads_back_its_server_host(tmp_path: Path) -> None:
    from bench.remote.ssh import ServerHost
    from bench.topology import TWO_HOSTS

    host = ServerHost("bench@198.18.0.2", ssh_options=("Port=2222",), directory="/srv/hb")
    cfg = RunConfig(out_root=tmp_path, topologies=(TWO_HOSTS,), server_host=host)
    written = json.loads(json.dumps(cfg.to_json()))
    assert written["server_host"] == host.describe()
    assert RunConfig.from_json(written) == cfg
