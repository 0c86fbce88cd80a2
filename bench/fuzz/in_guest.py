"""``bench fuzz --env vm``: the fuzz campaign inside a disposable guest.

The kernel-module impls cannot run on a host whose kernel has no loadable modules; in the
guest of bench/vm (a stock modular kernel) they can, and a module that crashes on hostile
input costs only the guest.  The guest runs ``python -m bench fuzz --json`` and writes the
document to the shared folder; the guest's own kernel log (all of it, module load and
unload included) is checked for BUG/WARNING/Oops as well.
"""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import PROJECT_ROOT
from bench.fuzz.campaign import check_count
from bench.fuzz.checks import FuzzResult
from bench.vm.guest import run_in_guest

DEFAULT_TIMEOUT_S = 1800.0
DOCUMENT = "fuzz.json"


@dataclass(frozen=True)
class GuestFuzz:
    """What the guest's fuzz reported, and how the guest itself ended."""

    results: list[FuzzResult]
    failures: list[str]  # about the guest as a whole (timeout, crash, kernel log)
    accel: str
    kernel: str

    @property
    def passed(self) -> bool:
        return not self.failures and all(r.status != "fail" for r in self.results)


def guest_command(impls: Sequence[str], count: int, seed: int, topologies: Sequence[str],
                  workdir: Path) -> list[str]:  # fmt: skip
    """The shell command the guest runs: the fuzz, its JSON into ``workdir``."""
    argv = [sys.executable, "-m", "bench", "fuzz", "--count", str(count), "--seed", str(seed)]
    for name in impls:
        argv += ["--impl", name]
    for topo in topologies:
        argv += ["--topology", topo]
    argv.append("--json")
    out, err = workdir / DOCUMENT, workdir / "fuzz.stderr"
    line = f"{shlex.join(argv)} > {shlex.quote(str(out))} 2> {shlex.quote(str(err))}"
    return ["sh", "-c", line]


def _result(raw: dict[str, Any]) -> FuzzResult:
    known = set(FuzzResult.__dataclass_fields__)
    return FuzzResult(**{k: v for k, v in raw.items() if k in known})


def fuzz_in_vm(
    impls: Sequence[str],
    count: int,
    seed: int,
    topologies: Sequence[str] = ("lo",),
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    workdir: Path | None = None,
) -> GuestFuzz:
    """Boot a guest, fuzz ``impls`` there, and read back what it found."""
    check_count(count)
    with tempfile.TemporaryDirectory(prefix="hellobench-fuzz-vm-") as scratch:
        folder = (workdir or Path(scratch)).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        outcome = run_in_guest(
            guest_command(impls, count, seed, topologies, folder),
            workdir=folder,
            timeout_s=timeout_s,
            env={"PYTHONPATH": str(PROJECT_ROOT)},
            cwd=PROJECT_ROOT,
        )
        failures: list[str] = []
        results: list[FuzzResult] = []
        try:
            document = json.loads((folder / DOCUMENT).read_text())
            results = [_result(raw) for raw in document["results"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            stderr = folder / "fuzz.stderr"
            err = stderr.read_text(errors="replace")[-500:] if stderr.exists() else ""
            failures.append(f"no fuzz results from the guest ({exc}) {err}".strip())
    if outcome.timed_out:
        failures.append(f"guest killed by the watchdog after {timeout_s:.0f} s")
    elif outcome.exit_code not in (0, 1):  # 1: the fuzz found a failure, reported per impl
        failures.append(outcome.failed_reason or f"guest fuzz exited {outcome.exit_code}")
    if outcome.kernel_log_problems:
        failures.append(
            f"guest kernel log: {len(outcome.kernel_log_problems)} problem report(s): "
            + " | ".join(outcome.kernel_log_problems)[:1000]
        )
    return GuestFuzz(results, failures, outcome.accel, outcome.kernel)
