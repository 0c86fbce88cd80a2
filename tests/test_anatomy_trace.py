"""The anatomy traced for real (root, BPF, the servers on lo; run under the bench lock).

``python -m bench anatomy`` is run as a user runs it, with a ledger of its own, and its
JSON read back: every sampled request's stages sum exactly to its traced round trip; a
server delay lands in the server's user-space stage and nowhere else; K extra null syscalls
per request land there too, at about K null-syscall prices (measured in the same test) plus
what the syscall hooks themselves run per call; holding the CPUs out of deep idle states
(--idle poll) shrinks the wake-ups; receive processing runs where --rx-cpu puts it; and no
anatomy program outlives the command, even one killed with SIGKILL once ``python -m bench
cleanup`` has run.  The assertions are generous ratios, shares and signs, never tight timing
thresholds; waits are bounded only to end a hung test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from bench import PROJECT_ROOT
from bench.anatomy.build import unavailable_reason
from bench.anatomy.stages import USER_STAGES
from bench.anatomy.summary import cost_per_request
from bench.anatomy.tracer import PROG_PREFIX
from bench.calibration.syscall import measure_null_syscall
from bench.host.capabilities import capabilities
from bench.impl.registry import discover

SERVER_CPU, CLIENT_CPU = 1, 0
DELAY_NS = 200_000
EXTRA_SYSCALLS = 200
# what a measured cost may be against its prediction: generous, a sanity bound, no timing
PRICE_RANGE = (0.3, 5.0)
SYSCALL_HOOKS = ("hba_sys_enter", "hba_sys_exit")
WAKE_UP_STAGES = ("server wake-up", "client wake-up")
IDLE_ROUNDS = 3
COMMAND_TIMEOUT_S = 300.0
ATTACH_WAIT_S = 120.0
# the kernel frees a detached program after an RCU grace period (tracepoint programs after
# an RCU tasks-trace one, which can take seconds): a bounded wait, not a threshold
GONE_WAIT_S = 60.0


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (BPF programs)"
    if (os.cpu_count() or 1) < 2:
        return "needs two CPUs (server and client apart)"
    host = capabilities()
    if not host.bpf:
        return host.bpf_reason
    if shutil.which("clang") is None:
        return "clang needed"
    return unavailable_reason()


pytestmark = pytest.mark.skipif(bool(_skip_reason()), reason=_skip_reason() or "")


def _env(ledger: Path) -> dict[str, str]:
    return {**os.environ, "HELLOBENCH_LEDGER": str(ledger), "PYTHONPATH": str(PROJECT_ROOT)}


def _argv(args: Sequence[str]) -> list[str]:
    return [
        sys.executable, "-m", "bench", "anatomy",
        f"--server-cpu={SERVER_CPU}", f"--client-cpu={CLIENT_CPU}", *args,
    ]  # fmt: skip


def anatomy(tmp: Path, *args: str) -> list[dict[str, Any]]:
    out = tmp / f"anatomy-{len(list(tmp.glob('anatomy-*.json')))}.json"
    proc = subprocess.run(
        [*_argv(args), f"--json={out}"],
        cwd=PROJECT_ROOT,
        env=_env(tmp / "ledger"),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results: list[dict[str, Any]] = json.loads(out.read_text())
    return results


def anatomy_programs() -> dict[int, str]:
    """Every loaded BPF program whose name is an anatomy program's, by id."""
    proc = subprocess.run(
        ["bpftool", "prog", "show", "--json"], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    return {
        int(p["id"]): str(p.get("name", ""))
        for p in json.loads(proc.stdout)
        if str(p.get("name", "")).startswith(PROG_PREFIX)
    }


def programs_gone(before: Mapping[int, str]) -> dict[int, str]:
    """The anatomy programs loaded now that were not before, once the kernel has freed
    the detached ones (or the wait ran out)."""
    deadline = time.monotonic() + GONE_WAIT_S
    while True:
        extra = {k: v for k, v in anatomy_programs().items() if k not in before}
        if not extra or time.monotonic() > deadline:
            return extra
        time.sleep(0.2)


def _by(results: Sequence[Mapping[str, Any]], impl: str, rx: str) -> Mapping[str, Any]:
    (found,) = [r for r in results if r["impl"] == impl and r["settings"]["rx_cpu"] == rx]
    return found


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return (ordered[(n - 1) // 2] + ordered[n // 2]) / 2


def _stage_medians(result: Mapping[str, Any]) -> dict[str, float]:
    return {s["name"]: float(s["p50"]) for s in result["stages"]}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("anatomy")


@pytest.fixture(scope="module")
def programs_before() -> dict[int, str]:
    return anatomy_programs()


@pytest.fixture(scope="module")
def blocking(work: Path, programs_before: dict[int, str]) -> list[dict[str, Any]]:
    return anatomy(
        work, "--impl=blocking-c", "--rx-cpu=server", "--rx-cpu=client", "--requests=400"
    )


@pytest.fixture(scope="module")
def delayed(work: Path, blocking: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return anatomy(
        work, "--impl=blocking-c", "--rx-cpu=server", "--requests=200",
        f"--server-option=delay_ns={DELAY_NS}",
    )  # fmt: skip


@pytest.fixture(scope="module")
def others(work: Path, blocking: list[dict[str, Any]]) -> list[dict[str, Any]]:
    impls = [name for name in ("spin-c", "ebpf-xdp") if discover()[name].available]
    if not impls:
        pytest.skip("neither spin-c nor ebpf-xdp can run here")
    return anatomy(work, *(f"--impl={i}" for i in impls), "--rx-cpu=server", "--requests=200")


@pytest.fixture(scope="module")
def dosed(work: Path, blocking: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return anatomy(
        work, "--impl=blocking-c", "--rx-cpu=server", "--requests=200",
        f"--server-option=extra_syscalls={EXTRA_SYSCALLS}",
    )  # fmt: skip


@pytest.fixture(scope="module")
def null_syscall_ns(blocking: list[dict[str, Any]]) -> float:
    """ns per null syscall here and now: the calibration's median repetition."""
    value = measure_null_syscall()["null_syscall_median_ns"]
    assert isinstance(value, float) and value > 0, value
    return value


def _idle_skip_reason() -> str | None:
    if not Path("/dev/cpu_dma_latency").exists():
        return "no /dev/cpu_dma_latency: the idle policy cannot be held"
    states = Path(f"/sys/devices/system/cpu/cpu{SERVER_CPU}/cpuidle").glob("state*/latency")
    if not any(int(p.read_text()) > 0 for p in states):
        return (
            f"CPU {SERVER_CPU} has no idle state deeper than polling: --idle poll changes nothing"
        )
    return None


@pytest.fixture(scope="module")
def idle_pairs(work: Path, blocking: list[dict[str, Any]]) -> list[dict[str, Mapping[str, Any]]]:
    """Rounds of one command each measuring both idle levels, their order alternating."""
    reason = _idle_skip_reason()
    if reason:
        pytest.skip(reason)
    pairs: list[dict[str, Mapping[str, Any]]] = []
    for i in range(IDLE_ROUNDS):
        order = ("default", "poll") if i % 2 == 0 else ("poll", "default")
        results = anatomy(
            work, "--impl=blocking-c", "--rx-cpu=server", "--requests=200",
            *(f"--idle={level}" for level in order),
        )  # fmt: skip
        pairs.append({r["settings"]["idle"]: r for r in results})
    return pairs


def _check_partition(result: Mapping[str, Any]) -> None:
    requests = result["requests"]
    assert len(requests) >= 50, f"only {len(requests)} sampled requests"
    names = result["stage_names"]
    for r in requests:
        assert list(r["stages"]) == names
        assert sum(r["stages"].values()) == r["rtt_ns"]
        assert all(v >= 0 for v in r["stages"].values())


def test_every_sampled_request_s_stages_sum_to_its_traced_round_trip(
    blocking: list[dict[str, Any]], others: list[dict[str, Any]]
) -> None:
    for result in [*blocking, *others]:
        _check_partition(result)
    assert blocking[0]["stage_names"] == list(USER_STAGES)


def test_a_server_that_never_sleeps_is_never_woken(others: list[dict[str, Any]]) -> None:
    spin = [r for r in others if r["impl"] == "spin-c"]
    for result in spin:
        assert _stage_medians(result)["server wake-up"] == 0


def test_a_server_delay_lands_in_the_server_s_user_space_stage(
    blocking: list[dict[str, Any]], delayed: list[dict[str, Any]]
) -> None:
    base = _stage_medians(_by(blocking, "blocking-c", "server"))
    slow = _stage_medians(_by(delayed, "blocking-c", "server"))
    grown = slow["server user space"] - base["server user space"]
    assert 0.5 * DELAY_NS <= grown <= 2 * DELAY_NS, (base, slow)
    for name in USER_STAGES:
        if name != "server user space":
            assert abs(slow[name] - base[name]) < 0.25 * DELAY_NS, (name, base, slow)


def _hooks_ns_per_request(result: Mapping[str, Any], names: Sequence[str]) -> float:
    """The named programs' run time per request the driver sent in the traced run."""
    run_ns = {p["name"]: p["run_time_ns"] for p in result["programs"]}
    per = cost_per_request(run_ns, result["traced_requests"])
    return sum(per[name] for name in names)


def _in_range(value: float, price: float) -> bool:
    lo, hi = PRICE_RANGE
    return lo * price <= value <= hi * price


def test_extra_syscalls_land_in_the_server_s_user_space_stage_at_their_price(
    blocking: list[dict[str, Any]], dosed: list[dict[str, Any]], null_syscall_ns: float
) -> None:
    """The extra syscalls run between the receive's return and the send's entry: the
    server's user-space stage, not its receive or send stages, carries them."""
    base = _stage_medians(_by(blocking, "blocking-c", "server"))
    slow = _stage_medians(_by(dosed, "blocking-c", "server"))
    price = EXTRA_SYSCALLS * null_syscall_ns
    grown = slow["server user space"] - base["server user space"]
    assert _in_range(grown, price), (grown, price, base, slow)
    for name in USER_STAGES:
        if name != "server user space":
            assert abs(slow[name] - base[name]) < price, (name, price, base, slow)


def test_traced_extra_syscalls_cost_their_price_plus_the_syscall_hooks_run_time(
    blocking: list[dict[str, Any]], dosed: list[dict[str, Any]], null_syscall_ns: float
) -> None:
    """Traced, every syscall of a tracked task also runs the syscall hooks: the stage's
    growth less the hooks' added run time is the extra syscalls' own price."""
    base, slow = _by(blocking, "blocking-c", "server"), _by(dosed, "blocking-c", "server")
    grown = _stage_medians(slow)["server user space"] - _stage_medians(base)["server user space"]
    hooks = _hooks_ns_per_request(slow, SYSCALL_HOOKS) - _hooks_ns_per_request(base, SYSCALL_HOOKS)
    price = EXTRA_SYSCALLS * null_syscall_ns
    assert hooks > 0, (slow["programs"], base["programs"])
    assert _in_range(grown - hooks, price), (grown, hooks, price)


def test_the_probe_free_round_trip_grows_by_about_the_extra_syscalls_price(
    blocking: list[dict[str, Any]], dosed: list[dict[str, Any]], null_syscall_ns: float
) -> None:
    base = _by(blocking, "blocking-c", "server")["untraced_ns"]["p50"]
    slow = _by(dosed, "blocking-c", "server")["untraced_ns"]["p50"]
    price = EXTRA_SYSCALLS * null_syscall_ns
    assert _in_range(slow - base, price), (base, slow, price)


def _wake_ups_median(result: Mapping[str, Any]) -> float:
    return _median([sum(r["stages"][s] for s in WAKE_UP_STAGES) for r in result["requests"]])


def test_polling_idle_cpus_shrink_the_wake_ups(
    idle_pairs: list[dict[str, Mapping[str, Any]]],
) -> None:
    """A sign over paired rounds: the median of a request's wake-ups (the server's and the
    client's) smaller under poll in most rounds.  Each stage's medians are in the message:
    a CPU kept busy by other work wakes its sleeper without leaving an idle state, so one
    stage alone can show no difference in a round."""
    medians = [
        (_wake_ups_median(pair["default"]), _wake_ups_median(pair["poll"])) for pair in idle_pairs
    ]
    smaller = sum(poll < default for default, poll in medians)
    stages = [
        {level: {s: _stage_medians(pair[level])[s] for s in WAKE_UP_STAGES} for level in pair}
        for pair in idle_pairs
    ]
    assert smaller > len(medians) / 2, f"(default, poll) per round: {medians}; {stages}"


@pytest.mark.parametrize(("rx", "cpu"), [("server", SERVER_CPU), ("client", CLIENT_CPU)])
def test_receive_processing_runs_where_rx_cpu_puts_it(
    blocking: list[dict[str, Any]], rx: str, cpu: int
) -> None:
    requests = _by(blocking, "blocking-c", rx)["requests"]
    on_cpu = sum(r["rx_cpu"] == cpu for r in requests)
    assert on_cpu >= 0.99 * len(requests), f"{on_cpu} of {len(requests)} on CPU {cpu}"


def test_the_pass_reports_the_untraced_round_trip_and_the_programs_cost(
    blocking: list[dict[str, Any]],
) -> None:
    for result in blocking:
        assert result["untraced_ns"]["p50"] > 0
        assert result["traced_driver_ns"]["p50"] > 0
        assert {p["name"] for p in result["programs"]} >= {"hba_sys_enter", "hba_xmit"}
        assert result["loader"]["lost"] == 0


def test_no_anatomy_program_outlives_the_command(
    blocking: list[dict[str, Any]], programs_before: dict[int, str]
) -> None:
    assert programs_gone(programs_before) == {}


@pytest.fixture
def killed_run(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        _argv(["--impl=blocking-c", "--rx-cpu=server", "--requests=100000", "--every=1"]),
        cwd=PROJECT_ROOT,
        env=_env(tmp_path / "ledger"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def test_a_killed_command_leaves_no_program_once_cleaned_up(
    killed_run: subprocess.Popen[bytes], tmp_path: Path, programs_before: dict[int, str]
) -> None:
    deadline = time.monotonic() + ATTACH_WAIT_S
    while not set(anatomy_programs()) - set(programs_before):
        assert killed_run.poll() is None, "the command ended before its programs were seen"
        assert time.monotonic() < deadline, "the anatomy programs never appeared"
        time.sleep(0.1)
    os.kill(killed_run.pid, signal.SIGKILL)
    killed_run.wait(timeout=30)
    cleanup = subprocess.run(
        [sys.executable, "-m", "bench", "cleanup"],
        cwd=PROJECT_ROOT,
        env=_env(tmp_path / "ledger"),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
    assert programs_gone(programs_before) == {}
    assert list((tmp_path / "ledger").glob("*.json")) == []
