"""The ledger makes this process run cleaners and restore values, so what another local user
can write must never reach it: the ledger folder is this user's and private, a record file
must be this user's, a cleaner must be the suite's, and the values a record names (RPS
queue files and masks, sysctl keys, namespace names) are checked and passed as arguments,
never as script text."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from bench.system import ledger, rps, sysctl
from bench.system.ledger import LedgerError
from bench.system.netns import NetnsError
from bench.system.netns import exists as netns_exists
from bench.system.rps import RpsError
from bench.system.sysctl import SysctlError

NOBODY = 65534


@pytest.fixture
def own_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "ledger"
    monkeypatch.setenv("HELLOBENCH_LEDGER", str(folder))
    return folder


def _plant(folder: Path, name: str, cleaner: str, **details: object) -> Path:
    """A record as another process would write it (owner pid 1: alive, never ours)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    body = {"kind": "rps", "ident": name, "owner_pid": 999_999_999, "owner_started": 1.0,
            "cleaner": cleaner, "details": details}  # fmt: skip
    path.write_text(json.dumps(body))
    return path


def test_the_ledger_folder_is_created_private(own_ledger: Path) -> None:
    assert ledger.ledger_dir() == own_ledger
    assert stat.S_IMODE(own_ledger.stat().st_mode) == 0o700


def test_an_open_ledger_folder_of_this_user_is_made_private(own_ledger: Path) -> None:
    own_ledger.mkdir(mode=0o777)
    os.chmod(own_ledger, 0o777)
    ledger.ledger_dir()
    assert stat.S_IMODE(own_ledger.stat().st_mode) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_ledger_folder_of_another_user_is_refused(own_ledger: Path) -> None:
    own_ledger.mkdir()
    os.chown(own_ledger, NOBODY, NOBODY)
    with pytest.raises(LedgerError, match="belongs to uid 65534"):
        ledger.ledger_dir()


def test_a_link_in_place_of_the_ledger_folder_is_refused(own_ledger: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    own_ledger.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(LedgerError, match="not a folder"):
        ledger.ledger_dir()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_record_of_another_user_is_never_acted_on(own_ledger: Path, tmp_path: Path) -> None:
    witness = tmp_path / "ran"
    path = _plant(own_ledger, "foreign", "bench.system.rps:restore_recorded",
                  netns=None, masks={})  # fmt: skip
    os.chown(path, NOBODY, NOBODY)
    assert ledger.records() == []
    assert ledger.sweep(include_live=True) == []
    assert not witness.exists()


def test_a_cleaner_outside_the_suite_is_not_called(own_ledger: Path, tmp_path: Path) -> None:
    witness = tmp_path / "ran"
    _plant(own_ledger, "planted", "os:system", netns=None, masks={})
    _plant(own_ledger, "planted2", "subprocess:getoutput", cmd=f"touch {witness}")
    lines = ledger.sweep(include_live=True)
    assert len(lines) == 2 and all(line.startswith("could not remove") for line in lines), lines
    assert all("not a function of the suite's package" in line for line in lines), lines
    assert not witness.exists()


@pytest.mark.parametrize(
    "masks",
    [
        {"/sys/class/net/hb-absent/queues/rx-0/rps_cpus; touch {witness}": "1"},
        {"/sys/class/net/hb-absent/queues/rx-0/rps_cpus": "1; touch {witness}"},
        {"/sys/class/net/hb-absent/queues/rx-0/rps_cpus": "$(touch {witness})"},
        {"{witness}": "1"},
        {"/sys/class/net/../../../{witness}/queues/rx-0/rps_cpus": "1"},
    ],
)
def test_a_hostile_rps_record_runs_nothing_and_writes_nothing(
    own_ledger: Path, tmp_path: Path, masks: dict[str, str]
) -> None:
    witness = tmp_path / "ran"
    hostile = {k.format(witness=witness): v.format(witness=witness) for k, v in masks.items()}
    _plant(own_ledger, "hostile", rps.CLEANER, netns=None, masks=hostile)
    lines = ledger.sweep(include_live=True)
    assert len(lines) == 1 and lines[0].startswith("could not remove"), lines
    assert not witness.exists()


def test_rps_refuses_a_device_that_is_not_a_name() -> None:
    for device in ("lo; touch /tmp/x", "../lo", "a" * 16, ""):
        with pytest.raises(RpsError, match="not a network device name"):
            rps.read_masks(None, device)


def test_rps_reads_lo_through_arguments() -> None:
    masks = rps.read_masks(None, "lo")
    assert masks and all(rps.QUEUE_FILE.fullmatch(path) for path in masks)


# keys that name no file, so that code without the check fails this test harmlessly
ABSENT_KEYS = ["kernel.hellobench_absent", "net..x", "net.ipv4/../../kernel/x",
               "net.ipv4.conf.lo.route_localnet/x", "fs.hellobench_absent"]  # fmt: skip


@pytest.mark.parametrize("key", ABSENT_KEYS)
def test_only_network_sysctls_are_held_or_restored(key: str, own_ledger: Path) -> None:
    with pytest.raises(SysctlError, match="not a network sysctl"):
        sysctl.write(None, key, "1")
    _plant(own_ledger, "sysctl", sysctl.CLEANER, netns=None, key=key, value="|/tmp/x")
    lines = ledger.sweep(include_live=True)
    assert len(lines) == 1 and lines[0].startswith("could not remove"), lines


def test_a_namespace_name_cannot_leave_the_namespace_folder() -> None:
    for name in ("../../etc", "/etc", ".hidden", "a b", ""):
        with pytest.raises(NetnsError, match="not a network namespace name"):
            netns_exists(name)
