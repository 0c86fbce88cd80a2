"""An interrupted ``bench run`` leaves nothing behind.

A real run is started as a subprocess with its own ledger (HELLOBENCH_LEDGER, so
that concurrent runs on the machine are never touched) and a port of its own; at a phase
of the run it gets SIGINT, SIGTERM or SIGKILL.  After SIGINT/SIGTERM the run must have
cleaned up by itself; after SIGKILL ``bench cleanup`` (with the same ledger) must.  Then:
no server process, no ledger record, results.json absent or valid and marked incomplete,
and for eBPF impls no program of the run attached or loaded, no namespace of the run left.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from bench import PROJECT_ROOT
from bench.impl.registry import discover
from bench.results.run import INCOMPLETE_MARKER, RESULTS_NAME
from bench.results.schema import validate
from bench.system.processes import ProcessIdentity
from tests.conftest import free_udp_port

ENTRIES = discover()
PHASE_TIMEOUT_S = 120.0
EXIT_TIMEOUT_S = 60.0
POLL_S = 0.05
SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}
# How an interrupted command ends: status 130 from bench.cli.main, or (seen now and then
# when the signal lands in the first moments of a run, after the handler's message) the
# interpreter's own exit through SIGINT.  Either way the checks below must hold.
INTERRUPTED = (130, -signal.SIGINT)


@dataclass
class Seen:
    """Every object the run's ledger recorded at some point while we watched it."""

    processes: dict[int, float | None] = field(default_factory=dict)  # pid -> start time
    server_pids: set[int] = field(default_factory=set)  # servers that said READY
    prog_ids: set[int] = field(default_factory=set)
    driver_dirs: set[Path] = field(default_factory=set)  # the driver's scratch folders
    attaching: bool = False  # a BPF attachment recorded, its program id not yet known
    driver_running: bool = False
    netns: set[str] = field(default_factory=set)
    kinds: set[str] = field(default_factory=set)

    def scan(self, ledger: Path) -> None:
        self.attaching = self.driver_running = False
        for path in ledger.glob("*.json"):
            try:
                raw: dict[str, Any] = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # being replaced right now
            kind, details = raw.get("kind", ""), raw.get("details", {})
            self.kinds.add(kind)
            if kind == "process" and isinstance(details.get("pid"), int):
                pid = int(details["pid"])
                self.processes[pid] = details.get("started")
                argv = [str(arg) for arg in details.get("argv", [])]
                if any("hello-client" in arg for arg in argv):
                    self.driver_running = True
                    self.driver_dirs |= {
                        Path(arg.split("=", 1)[1]).parent
                        for arg in argv
                        if arg.startswith("--out=")
                    }
                elif details.get("ready"):
                    self.server_pids.add(pid)
            if kind in ("xdp", "tc") and not details.get("prog_id"):
                self.attaching = True
            if details.get("prog_id"):
                self.prog_ids.add(int(details["prog_id"]))
            if kind == "netns":
                self.netns.add(str(raw.get("ident")))
            if details.get("netns"):
                self.netns.add(str(details["netns"]))

    @property
    def server_up(self) -> bool:
        return bool(self.server_pids) or bool(self.prog_ids)


@dataclass
class Run:
    proc: subprocess.Popen[bytes]
    out: Path
    ledger: Path
    port: int
    env: dict[str, str]
    seen: Seen = field(default_factory=Seen)

    def results_files(self) -> list[Path]:
        return sorted(self.out.glob(f"*/{RESULTS_NAME}"))

    def log(self) -> str:
        return (self.out.parent / "run.log").read_text(errors="replace")[-3000:]


@pytest.fixture
def start_run(tmp_path: Path) -> Iterator[Callable[[list[str]], Run]]:
    runs: list[Run] = []

    def start(args: list[str]) -> Run:
        ledger = tmp_path / "ledger"
        ledger.mkdir(exist_ok=True)
        out = tmp_path / "out"
        port = free_udp_port()
        env = {**os.environ, "HELLOBENCH_LEDGER": str(ledger), "COLUMNS": "200"}
        log = (tmp_path / "run.log").open("wb")
        if args[:1] == ["fuzz"]:  # picks its own port: see server_port()
            argv = [sys.executable, "-m", "bench", *args]
        else:
            argv = [sys.executable, "-m", "bench", "run", *args]
            argv += ["--no-calibrate", "--port", str(port), "--out", str(out)]
        proc = subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=log)
        log.close()
        run = Run(proc, out, ledger, port, env)
        runs.append(run)
        return run

    yield start
    for run in runs:  # whatever happened in the test: leave nothing behind
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait(EXIT_TIMEOUT_S)
        cleanup(run)
        for folder in run.seen.driver_dirs:  # what a killed run's driver left (see below)
            if folder.name.startswith("hellobench-driver-"):
                shutil.rmtree(folder, ignore_errors=True)


def cleanup(run: Run) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", "cleanup"],
        cwd=PROJECT_ROOT,
        env=run.env,
        capture_output=True,
        text=True,
        timeout=EXIT_TIMEOUT_S,
    )


def wait_for_phase(run: Run, phase: str) -> bool:
    """Watch the run until ``phase`` is reached (True) or the run ended first (False)."""
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    while time.monotonic() < deadline:
        run.seen.scan(run.ledger)
        if phase == "server-up" and run.seen.server_up:
            return True
        if phase == "results-written" and run.results_files():
            return True
        if phase == "measuring" and run.seen.driver_running and not run.seen.attaching:
            return True
        if run.proc.poll() is not None:
            return False
        time.sleep(POLL_S)
    raise AssertionError(f"phase {phase} not reached in {PHASE_TIMEOUT_S} s:\n{run.log()}")


def interrupt(run: Run, sig: signal.Signals) -> int:
    run.proc.send_signal(sig)
    deadline = time.monotonic() + EXIT_TIMEOUT_S
    while run.proc.poll() is None and time.monotonic() < deadline:
        run.seen.scan(run.ledger)
        time.sleep(POLL_S)
    try:
        return run.proc.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        run.proc.kill()
        raise AssertionError(f"run did not exit within {EXIT_TIMEOUT_S} s of {sig.name}") from None


def _alive(pid: int, start: float | None) -> bool:
    now = ProcessIdentity.of(pid)
    return now is not None and (start is None or now.started == start)


def _processes_using_port(port: int) -> list[str]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if proc.info["pid"] == os.getpid():
            continue
        pairs = itertools.pairwise(cmdline)
        if any(flag in ("--port", "-p") and value == str(port) for flag, value in pairs):
            found.append(f"{proc.info['pid']}: {' '.join(cmdline)}")
    return found


def assert_nothing_left(run: Run, *, driver_files: bool = True) -> None:
    if driver_files:
        stale = sorted(str(d) for d in run.seen.driver_dirs if d.exists())
        assert not stale, f"driver scratch folders left: {stale}"
    left = [pid for pid, start in run.seen.processes.items() if _alive(pid, start)]
    assert not left, f"processes left: {left}"
    assert not _processes_using_port(run.port), _processes_using_port(run.port)
    records = sorted(p.name for p in run.ledger.glob("*.json"))
    assert not records, f"ledger records left: {records}"


def assert_results_incomplete(run: Run) -> None:
    files = run.results_files()
    assert len(files) <= 1
    for path in files:
        document = json.loads(path.read_text())
        validate(document)
        assert document["complete"] is False
        assert (path.parent / INCOMPLETE_MARKER).exists()


def _bpf_ids(argv: list[str]) -> set[int]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    ids: set[int] = set()
    words = proc.stdout.replace("/", " ").split()
    for key, value in itertools.pairwise(words):
        if key == "id" and value.isdigit():
            ids.add(int(value))
    return ids


def assert_no_bpf_left(run: Run) -> None:
    ours = run.seen.prog_ids
    on_lo = _bpf_ids(["ip", "-d", "link", "show", "lo"])
    on_lo |= _bpf_ids(["tc", "filter", "show", "dev", "lo", "ingress"])
    on_lo |= _bpf_ids(["tc", "filter", "show", "dev", "lo", "egress"])
    assert not ours & on_lo, f"programs of the run still attached to lo: {ours & on_lo}"
    for prog_id in ours:
        proc = subprocess.run(
            ["bpftool", "prog", "show", "id", str(prog_id)], capture_output=True, timeout=30
        )
        assert proc.returncode != 0, f"program {prog_id} still loaded"
    netns = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    assert not run.seen.netns & netns, f"namespaces left: {run.seen.netns & netns}"


def _run_and_interrupt(run: Run, phase: str, sig_name: str) -> tuple[int, str]:
    reached = wait_for_phase(run, phase)
    if not reached:
        return -1, run.log()
    code = interrupt(run, SIGNALS[sig_name])
    return code, run.log()


def _check_after(run: Run, sig_name: str, code: int, log: str) -> None:
    if sig_name == "SIGKILL":
        assert code == -signal.SIGKILL
        if run.seen.server_pids:  # the kill left them behind: cleanup must find them
            assert any(_alive(p, run.seen.processes[p]) for p in run.seen.server_pids)
        swept = cleanup(run)
        assert swept.returncode == 0, swept.stdout + swept.stderr
    else:
        assert code in INTERRUPTED, f"exit status {code}:\n{log}"
        assert "interrupted" in log
    # After SIGKILL the driver's scratch folder is a known leftover of its own (see
    # test_killed_run_leaves_no_driver_files); everything else must be gone.
    assert_nothing_left(run, driver_files=sig_name != "SIGKILL")
    assert_results_incomplete(run)


# -- user-space impls -----------------------------------------------------------------

USERSPACE_ARGS = [
    "--impl", "blocking-py", "--impl", "blocking-c",
    "--mode", "pingpong", "--duration", "5", "--trials", "3",
]  # fmt: skip


@pytest.mark.parametrize("phase", ["results-written", "server-up"])
@pytest.mark.parametrize("sig_name", sorted(SIGNALS))
def test_interrupted_run_leaves_nothing(
    start_run: Callable[[list[str]], Run], phase: str, sig_name: str
) -> None:
    for name in ("blocking-py", "blocking-c"):
        if not ENTRIES[name].available:
            pytest.skip(f"{name}: {ENTRIES[name].unavailable}")
    run = start_run(USERSPACE_ARGS)
    code, log = _run_and_interrupt(run, phase, sig_name)
    assert code != -1, f"the run ended before {phase}:\n{log}"
    if phase == "server-up":
        assert run.seen.server_pids, "no server process was seen"
    _check_after(run, sig_name, code, log)


# -- eBPF impls -----------------------------------------------------------------------


def _ebpf_skip(name: str) -> str | None:
    entry = ENTRIES.get(name)
    if entry is None:
        return f"{name} not registered"
    if not entry.available:
        return f"{name}: {entry.unavailable}"
    return None


@pytest.mark.root
@pytest.mark.bpf
@pytest.mark.parametrize("topology", ["lo", "veth"])
@pytest.mark.parametrize("sig_name", sorted(SIGNALS))
@pytest.mark.parametrize("impl", ["ebpf-xdp", "ebpf-tc"])
def test_interrupted_ebpf_run_leaves_nothing_attached(
    start_run: Callable[[list[str]], Run], impl: str, sig_name: str, topology: str
) -> None:
    reason = _ebpf_skip(impl)
    if reason:
        pytest.skip(reason)
    args = ["--impl", impl, "--mode", "pingpong", "--duration", "5", "--trials", "3"]
    run = start_run([*args, "--topology", topology])
    code, log = _run_and_interrupt(run, "measuring", sig_name)
    if code == -1:
        # The run ended before measuring: the impl could not start here (another program
        # on lo of this shared machine, a topology that cannot be built...).
        files = run.results_files()
        document = json.loads(files[0].read_text()) if files else {}
        reasons = [s["reason"] for s in document.get("skipped", [])]
        reasons += [r["error"] for r in document.get("results", []) if r.get("error")]
        assert_nothing_left(run)
        why = "; ".join(dict.fromkeys(reasons)) or log[-300:]
        pytest.skip(f"{impl} on {topology} did not start here: {why}"[:400])
    assert run.seen.prog_ids, "no BPF program id was recorded"
    _check_after(run, sig_name, code, log)
    assert_no_bpf_left(run)


# -- an interrupt inside an impl's start ----------------------------------------------

SLOW_START_MANIFEST = """\
name = "interrupted-start"
kind = "userspace"
family = "user-space blocking"
language = "python"
summary = "records a helper process, then is interrupted before its start returns"
"""

SLOW_START_CONTROLLER = """\
from __future__ import annotations

import os
import signal
import subprocess
import time

from bench.impl.api import Impl, RunningServer, ServerConfig
from bench.system import ledger
from bench.system.processes import ProcessIdentity


class InterruptedStart(Impl):
    def start(self, config: ServerConfig) -> RunningServer:
        helper = subprocess.Popen(
            ["sleep", "300"], start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        start = ProcessIdentity.of(helper.pid).started
        ledger.record(
            "process", f"helper-{helper.pid}", "bench.system.owned:stop_recorded",
            pid=helper.pid, started=start, argv=["sleep", "300"],
        )
        with open(os.environ["HELPER_PID_FILE"], "w") as note:
            note.write(f"{helper.pid} {start}")
        # Ctrl-C (or a TERM) before the server object exists
        os.kill(os.getpid(), getattr(signal, os.environ["HELPER_SIGNAL"]))
        time.sleep(30)
        raise AssertionError("not interrupted")


def create(manifest):
    return InterruptedStart(manifest)
"""


@pytest.mark.parametrize("sig_name", ["SIGINT", "SIGTERM"])
def test_interrupt_inside_an_impls_start_leaves_nothing(tmp_path: Path, sig_name: str) -> None:
    impls = tmp_path / "impls" / "interrupted-start"
    impls.mkdir(parents=True)
    (impls / "manifest.toml").write_text(SLOW_START_MANIFEST)
    (impls / "controller.py").write_text(SLOW_START_CONTROLLER)
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    env = {
        **os.environ,
        "HELLOBENCH_LEDGER": str(ledger),
        "HELLOBENCH_IMPLS": str(impls.parent),
        "HELPER_PID_FILE": str(tmp_path / "helper.pid"),
        "HELPER_SIGNAL": sig_name,
        "COLUMNS": "200",
    }
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "bench", "run", "--impl", "interrupted-start"]
    argv += ["--mode", "pingpong", "--trials", "1", "--no-calibrate", "--out", str(out)]
    argv += ["--port", str(free_udp_port())]
    proc = subprocess.run(
        argv, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=EXIT_TIMEOUT_S
    )
    run = Run(subprocess.Popen(["true"]), out, ledger, 0, env)
    run.proc.wait()
    try:
        assert proc.returncode == 130, proc.stderr[-2000:]
        pid, start = (tmp_path / "helper.pid").read_text().split()
        run.seen.processes[int(pid)] = float(start)
        assert_nothing_left(run)
        assert_results_incomplete(run)
    finally:
        cleanup(run)


def test_killed_run_leaves_no_driver_files(start_run: Callable[[list[str]], Run]) -> None:
    if not ENTRIES["blocking-c"].available:
        pytest.skip(f"blocking-c: {ENTRIES['blocking-c'].unavailable}")
    run = start_run(["--impl", "blocking-c", "--mode", "pingpong", "--duration", "5"])
    assert wait_for_phase(run, "measuring"), run.log()
    assert run.seen.driver_dirs, "the driver's folder was not seen"
    assert interrupt(run, signal.SIGKILL) == -signal.SIGKILL
    swept = cleanup(run)
    assert swept.returncode == 0, swept.stdout + swept.stderr
    assert_nothing_left(run)


# -- an interrupted fuzz --------------------------------------------------------------


def server_port(run: Run) -> int:
    """The port in the argv of a server the run recorded."""
    for path in run.ledger.glob("process--*.json"):
        argv = [str(a) for a in json.loads(path.read_text())["details"].get("argv", [])]
        for flag, value in itertools.pairwise(argv):
            if flag == "--port" and value.isdigit():
                return int(value)
    raise AssertionError("no server with --port in the ledger")


@pytest.mark.parametrize("sig_name", sorted(SIGNALS))
def test_interrupted_fuzz_leaves_nothing(
    start_run: Callable[[list[str]], Run], sig_name: str
) -> None:
    if not ENTRIES["blocking-py"].available:
        pytest.skip(f"blocking-py: {ENTRIES['blocking-py'].unavailable}")
    run = start_run(["fuzz", "--impl", "blocking-py", "--count", "5000000"])
    assert wait_for_phase(run, "server-up"), run.log()
    run.port = server_port(run)
    time.sleep(0.5)  # let the datagrams flow: the signal lands mid-stream, not mid-start
    code = interrupt(run, SIGNALS[sig_name])
    if sig_name == "SIGKILL":
        assert code == -signal.SIGKILL
        assert any(_alive(p, run.seen.processes[p]) for p in run.seen.server_pids)
        swept = cleanup(run)
        assert swept.returncode == 0, swept.stdout + swept.stderr
    else:
        assert code in INTERRUPTED, run.log()
    assert_nothing_left(run)
