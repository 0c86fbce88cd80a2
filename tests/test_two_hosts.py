"""Two hosts for real: the server side in a network namespace reached through OpenSSH
(tests/ssh_host.py), the driver here.  A run gives healthy rows with both hosts described;
the remote server speaks HELLO; a killed run, a dropped connection and a signalled agent
leave nothing behind; remote-check says what a host lacks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import PROJECT_ROOT
from bench.protocol import make_reply, make_request
from bench.remote import agent as agent_module
from bench.remote.protocol import Health, Start, Stop
from bench.remote.ssh import AgentConnection, ServerHost
from bench.report.render import render_report
from bench.results.run import Run
from bench.system import ledger as ledger_module
from bench.system.processes import ProcessIdentity
from tests.conftest import free_udp_port
from tests.ssh_host import SshHost, ssh_host
from tests.test_conformance import MALFORMED

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, sshd)"),
    pytest.mark.skipif(not Path("/usr/sbin/sshd").exists(), reason="openssh-server missing"),
]

RUN_TIMEOUT_S = 240.0
SETTLE_S = 15.0
REPLY_WAIT_S = 2.0
SILENCE_WAIT_S = 0.3


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshHost]:
    with ssh_host(tmp_path_factory.mktemp("ssh-host")) as made:
        yield made


def bench(*args: str, timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_bench(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench", *args],
        cwd=PROJECT_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_args(host: SshHost, out: Path, *impls: str, duration: str, trials: str) -> list[str]:
    picked = [arg for impl in impls for arg in ("--impl", impl)]
    return [
        "run", "--server-host", host.target, *host.cli_options(), *picked,
        "--mode", "pingpong", "--trials", trials, "--duration", duration, "--warmup", "0.05",
        "--no-calibrate", "--seed", "3", "--out", str(out),
    ]  # fmt: skip


def wait_for(check: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(check) and check():
            return True
        time.sleep(0.1)
    return False


def serving(host: SshHost) -> bool:
    """A server of ours runs there (a process or an XDP program)."""
    return "xdp" in host.link() or any("hello-" in cmd for cmd in host.processes().values())


def nothing_left(host: SshHost) -> bool:
    return not host.processes() and "xdp" not in host.link()


def agents_here() -> list[str]:
    out = subprocess.run(["pgrep", "-af", "bench agent"], capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if "pgrep" not in line]


def cleanup(host: SshHost) -> subprocess.CompletedProcess[str]:
    return bench("cleanup", "--server-host", host.target, *host.cli_options(), timeout=120)


def server_host(host: SshHost) -> ServerHost:
    return ServerHost(host.target, host.ssh_options)


def hello_answered(address: str, port: int) -> bool:
    """A server answers HELLO on ``address``:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(REPLY_WAIT_S)
        sock.sendto(b"HELLO\n", (address, port))
        try:
            return sock.recv(100) == b"GOT IT"
        except TimeoutError:
            return False


# -- (a) a run ----------------------------------------------------------------------------


def test_run_gives_healthy_rows_with_both_hosts(host: SshHost, tmp_path: Path) -> None:
    out = tmp_path / "results"
    args = run_args(host, out, "blocking-c", "ebpf-xdp", duration="0.2", trials="2")
    proc = bench(*args)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (path,) = out.glob("*/results.json")
    doc = json.loads(path.read_text())
    rows = doc["results"]
    assert {r["impl"] for r in rows} == {"blocking-c", "ebpf-xdp"}
    assert len(rows) == 4
    for row in rows:
        assert row["status"] == "ok", row["error"]
        assert row["topology"] == "two-hosts"
        assert row["requests"] > 0 and row["replies"] == row["requests"]
        assert row["latency_ns"]["p50"] > 0
        assert row["per_request"]["server_host_cpu_ns"]["total"] is not None  # counted there
    blocking = [r for r in rows if r["impl"] == "blocking-c"]
    assert all(r["per_request"]["server_syscalls"] > 0 for r in blocking)  # counted there
    assert all(r["per_request"]["server_eagain_syscalls"] is not None for r in blocking)
    xdp = [r for r in rows if r["impl"] == "ebpf-xdp"]
    assert all(r["per_request"]["bpf_run_ns"] is not None for r in xdp)
    env = doc["environments"]["host"]
    assert env["topology"] == "two-hosts"
    there = env["server_host"]
    assert there["kernel"] and there["cpu_model"] and there["address"] == host.address
    assert there["nic"]["interface"] == host.interface and there["nic"]["driver"] == "veth"
    assert doc["config"]["server_host"]["target"] == host.target
    assert nothing_left(host)
    page = render_report(Run.load(path), tmp_path / "report").read_text()
    assert "two-hosts: the driver here, the server on root@198.18.7.2" in page
    assert "server host kernel" in page


def test_kernel_modules_are_skipped_with_the_server_hosts_reason(
    host: SshHost, tmp_path: Path
) -> None:
    if Path("/proc/modules").exists():
        pytest.skip("this kernel loads modules")
    out = tmp_path / "results"
    proc = bench(*run_args(host, out, "kmod-kthread", "blocking-c", duration="0.1", trials="1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    (path,) = out.glob("*/results.json")
    skipped = json.loads(path.read_text())["skipped"]
    assert [s["impl"] for s in skipped] == ["kmod-kthread"]
    assert skipped[0]["reason"].startswith(f"kernel modules cannot load on {host.address}: ")


# -- (b) conformance of the remote server -------------------------------------------------


def test_remote_blocking_c_speaks_hello(host: SshHost) -> None:
    port = free_udp_port()
    with AgentConnection(server_host(host)) as agent:
        agent.call(Start("blocking-c", port), timeout_s=120)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect((host.address, port))
            sock.settimeout(REPLY_WAIT_S)
            sock.send(b"HELLO\n")
            assert sock.recv(100) == b"GOT IT"
            for size in (6, 64, 1472):
                request = make_request(size, seq=size)
                sock.send(request)
                assert sock.recv(65536) == make_reply(request)
            for name, datagram in sorted(MALFORMED.items()):
                sock.send(datagram)
                sock.settimeout(SILENCE_WAIT_S)
                with pytest.raises(TimeoutError):
                    sock.recv(65536)
                sock.settimeout(REPLY_WAIT_S)
                request = make_request(64, seq=len(name))
                sock.send(request)
                assert sock.recv(65536) == make_reply(request), name
        agent.call(Stop())
    assert wait_for(lambda: nothing_left(host), SETTLE_S)


# -- (c), (d) interruptions ---------------------------------------------------------------


def test_killed_run_then_cleanup_leaves_nothing(host: SshHost, tmp_path: Path) -> None:
    args = run_args(host, tmp_path / "r", "ebpf-xdp", "blocking-c", duration="1", trials="5")
    run = start_bench(*args)
    try:
        assert wait_for(lambda: serving(host), 90), "no server started there"
        time.sleep(0.3)  # mid-phase
    finally:
        run.kill()
        run.wait(timeout=30)
    proc = cleanup(host)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert wait_for(lambda: nothing_left(host), SETTLE_S), host.processes()
    assert "xdp" not in host.link()
    assert wait_for(lambda: not agents_here(), SETTLE_S), agents_here()


def test_cleanup_spares_a_live_agent_then_removes_a_dead_ones_leftovers(host: SshHost) -> None:
    """Another driver's run goes on through a cleanup: its agent still answers and its
    server still serves; once that agent is dead, the next cleanup removes its server."""
    port = free_udp_port()
    agent = AgentConnection(server_host(host))
    try:
        agent.call(Start("blocking-c", port), timeout_s=120)
        proc = cleanup(host)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"{host.address}: spared live agent" in proc.stdout, proc.stdout
        assert agent.call(Health())["health"] is None
        assert hello_answered(host.address, port)
        agents = [pid for pid, cmd in host.processes().items() if "bench agent" in cmd]
        assert len(agents) == 1, agents
        os.kill(agents[0], signal.SIGKILL)
        assert wait_for(lambda: agents[0] not in host.processes(), SETTLE_S)
    finally:
        agent.close()
    assert hello_answered(host.address, port)  # left behind by the killed agent
    proc = cleanup(host)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{host.address}: removed process server-" in proc.stdout, proc.stdout
    assert "spared" not in proc.stdout
    assert wait_for(lambda: nothing_left(host), SETTLE_S), host.processes()


def test_interrupted_run_leaves_nothing_on_either_host(host: SshHost, tmp_path: Path) -> None:
    args = run_args(host, tmp_path / "r", "blocking-c", "ebpf-xdp", duration="1", trials="5")
    run = start_bench(*args)
    try:
        assert wait_for(lambda: serving(host), 90), "no server started there"
        time.sleep(0.3)  # mid-phase
        run.send_signal(signal.SIGINT)
        run.wait(timeout=60)
        assert run.returncode == 130
        assert wait_for(lambda: nothing_left(host), SETTLE_S), host.processes()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(timeout=30)
            cleanup(host)
    assert wait_for(lambda: not agents_here(), SETTLE_S), agents_here()


def test_killed_agent_fails_the_run_and_cleanup_removes_its_leftovers(
    host: SshHost, tmp_path: Path
) -> None:
    args = run_args(host, tmp_path / "r", "ebpf-xdp", duration="1", trials="20")
    run = start_bench(*args)
    try:
        assert wait_for(lambda: "xdp" in host.link(), 90), "no XDP program attached there"
        time.sleep(0.3)  # mid-phase
        agents = [pid for pid, cmd in host.processes().items() if "bench agent" in cmd]
        assert agents
        for pid in agents:
            os.kill(pid, signal.SIGKILL)
        run.wait(timeout=120)
        assert run.returncode == 1
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(timeout=30)
    assert "xdp" in host.link() or host.processes()  # left behind by the killed agent
    proc = cleanup(host)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{host.address}: removed" in proc.stdout
    assert wait_for(lambda: nothing_left(host), SETTLE_S), (host.processes(), host.link())


def test_dropped_ssh_session_makes_the_agent_clean_up(host: SshHost, tmp_path: Path) -> None:
    args = run_args(host, tmp_path / "r", "blocking-c", duration="1", trials="20")
    run = start_bench(*args)
    try:
        assert wait_for(lambda: serving(host), 90), "no server started there"
        time.sleep(0.3)  # mid-phase
        sessions = host.session_pids()
        assert sessions
        for pid in sessions:
            os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: nothing_left(host), SETTLE_S), host.processes()
        run.wait(timeout=120)  # the rest of the run fails fast: the agent is gone
        assert run.returncode == 1
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(timeout=30)
            cleanup(host)
    assert wait_for(lambda: not agents_here(), SETTLE_S), agents_here()


# -- the agent alone: malformed lines, EOF, signals ---------------------------------------


def local_agent(ledger: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench", "agent", "--address", "127.0.0.1"],
        cwd=PROJECT_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HELLOBENCH_AGENT_LEDGER": str(ledger)},
    )


def test_malformed_lines_get_errors_and_eof_ends_the_agent(tmp_path: Path) -> None:
    lines = [
        "not json",
        "[1, 2]",
        '{"op": "launch"}',
        '{"op": "start", "impl": "blocking-c", "port": "x"}',
        '{"op": "start", "impl": "blocking-c", "port": 3000, "colour": "red"}',
        '{"op": "probe_stop"}',
        '{"op": "health"}',
    ]
    agent = local_agent(tmp_path / "ledger")
    out, _ = agent.communicate(("\n".join(lines) + "\n").encode(), timeout=60)
    answers = [json.loads(line) for line in out.decode().splitlines()]
    assert len(answers) == len(lines)
    assert all("error" in a for a in answers[:-1]), answers
    assert answers[-1] == {"ok": True, "health": "no server running", "counters": {}}
    assert agent.returncode == 0


def agent_cleanup(ledger: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", "agent", "--cleanup"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HELLOBENCH_AGENT_LEDGER": str(ledger)},
    )


def test_agent_cleanup_spares_a_live_agent_and_its_server(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    agent = local_agent(ledger)
    assert agent.stdin is not None and agent.stdout is not None
    server: ProcessIdentity | None = None
    try:
        request = {"op": "start", "impl": "blocking-c", "port": free_udp_port()}
        agent.stdin.write(json.dumps(request).encode() + b"\n")
        agent.stdin.flush()
        (pid,) = json.loads(agent.stdout.readline())["pids"]
        server = ProcessIdentity.of(pid)
        assert server is not None
        proc = agent_cleanup(ledger)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        lines = proc.stdout.splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"spared live agent agent-{agent.pid} "), lines
        agent.stdin.write(b'{"op": "health"}\n')
        agent.stdin.flush()
        assert json.loads(agent.stdout.readline())["health"] is None
        assert server.alive()
        agent.kill()
        agent.wait(timeout=30)
        assert server.alive()  # left behind by the killed agent
        proc = agent_cleanup(ledger)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"removed agent agent-{agent.pid}" in proc.stdout
        assert "removed process server-" in proc.stdout
        assert "spared" not in proc.stdout
        assert wait_for(lambda: server is not None and not server.alive(), SETTLE_S)
        assert not list(ledger.glob("*.json"))
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(timeout=30)
        if server is not None and server.alive():
            os.kill(server.pid, signal.SIGKILL)


@pytest.mark.parametrize("reused", [False, True])
def test_agent_cleanup_knows_an_agent_by_pid_and_start_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reused: bool
) -> None:
    """A recorded agent whose pid runs with its recorded start time is live: spared; a pid
    now running with another start time is someone else's: the record goes, the process is
    left alone."""
    monkeypatch.setenv("HELLOBENCH_LEDGER", str(tmp_path / "ledger"))
    other = subprocess.Popen(["sleep", "60"])
    try:
        identity = ProcessIdentity.of(other.pid)
        assert identity is not None
        if reused:
            identity = ProcessIdentity(other.pid, identity.started - 1000.0)
        with monkeypatch.context() as m:
            m.setattr(ProcessIdentity, "of", classmethod(lambda cls, pid: identity))
            m.setattr(os, "getpid", lambda: other.pid)
            ledger_module.record(
                agent_module.AGENT_KIND,
                f"agent-{other.pid}",
                agent_module.AGENT_CLEANER,
                pid=other.pid,
                started=identity.started,
            )
        lines = agent_module.cleanup()
        left = [rec.ident for rec in ledger_module.records()]
        if reused:
            assert lines == [f"removed agent agent-{other.pid}"]
            assert left == []
        else:
            assert len(lines) == 1 and lines[0].startswith("spared live agent"), lines
            assert left == [f"agent-{other.pid}"]
        assert other.poll() is None
    finally:
        other.kill()
        other.wait(timeout=30)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_signalled_agent_stops_its_server(tmp_path: Path, signum: int) -> None:
    agent = local_agent(tmp_path / "ledger")
    assert agent.stdin is not None and agent.stdout is not None
    try:
        request = {"op": "start", "impl": "blocking-c", "port": free_udp_port()}
        agent.stdin.write(json.dumps(request).encode() + b"\n")
        agent.stdin.flush()
        started = json.loads(agent.stdout.readline())
        (pid,) = started["pids"]
        agent.send_signal(signum)
        agent.wait(timeout=30)
        assert wait_for(lambda: not Path(f"/proc/{pid}").exists(), SETTLE_S)
        assert not list((tmp_path / "ledger").glob("*.json"))
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(timeout=30)


# -- (e) remote-check ---------------------------------------------------------------------


def test_remote_check_finds_nothing_missing(host: SshHost) -> None:
    proc = bench("remote-check", host.target, *host.cli_options(), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "missing:" not in proc.stdout
    assert proc.stdout.strip().endswith(f"{host.target}: nothing missing")


def test_remote_check_of_an_unreachable_host_says_so_in_one_line(host: SshHost) -> None:
    options = [*host.cli_options(), "--ssh-option", "ConnectTimeout=3"]
    proc = bench("remote-check", "root@198.18.7.3", *options, timeout=120)
    assert proc.returncode == 1
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("missing: ssh: cannot reach"), lines


@pytest.mark.parametrize("args", [["-oProxyCommand=x"], ["root@host", "--ssh-option", "novalue"]])
def test_remote_check_rejects_bad_input(args: list[str]) -> None:
    proc = bench("remote-check", *args, timeout=60)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "extra",
    [["--design", "claim"], ["--rx-cpu", "server"], ["--topology", "veth"], ["--env", "vm"],
     ["--ssh-option", "novalue"]],
)  # fmt: skip
def test_run_rejects_what_two_hosts_cannot_measure(tmp_path: Path, extra: list[str]) -> None:
    out = tmp_path / "never"
    proc = bench("run", "--server-host", "root@198.18.7.2", *extra, "--out", str(out), timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()
