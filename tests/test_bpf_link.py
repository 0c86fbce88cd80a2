"""A killed run leaves no reflector attached.

``python -m bench serve ebpf-xdp`` (and ``ebpf-tc``) runs in a process group of its own with
a ledger of its own (HELLOBENCH_LEDGER).  Once the reflector answers a HELLO, the whole run
is killed with SIGKILL: its process group and every process it started.  Without any sweep,
the kernel must then have detached the program (it was held by a process of the run), so:
no program of the run is attached to lo or loaded at all, and a HELLO to the port is
delivered to a plain socket bound there instead of being answered by the reflector.

Nothing waits for silence with a timing threshold: the HELLO must reach the socket, and the
first datagram back to the client must be the socket's answer, not a reflector's reply.
The tc fallback (a netlink filter, for kernels without tcx) outlives a killed run by nature;
there the ledger keeps it and ``bench cleanup`` must remove it.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from bench import PROJECT_ROOT
from bench.bpf.build import loader_unavailable_reason
from bench.bpf.control import run_tool
from bench.host.capabilities import capabilities
from bench.impl.registry import discover
from bench.protocol import make_reply, make_request
from tests.conftest import free_udp_port

ENTRIES = discover()
START_WAIT_S = 90.0  # bounded waits, not thresholds: each only ends a test that hangs
GONE_WAIT_S = 20.0
REPLY_WAIT_S = 5.0
POLL_S = 0.05
NETLINK_CHILD = """
import sys
from bench.impl.api import ServerConfig
from bench.impl.registry import discover
server = discover()["ebpf-tc"].impl.start(
    ServerConfig(port=int(sys.argv[1]), options={"tc_attach": "netlink"})
)
print("serving", flush=True)
sys.stdin.read()
"""


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (BPF programs)"
    host = capabilities()
    if not host.bpf:
        return host.bpf_reason
    if shutil.which("clang") is None or shutil.which("bpftool") is None:
        return "clang and bpftool needed"
    return loader_unavailable_reason()


SKIP = _skip_reason()
pytestmark = [
    pytest.mark.bpf,
    pytest.mark.root,
    pytest.mark.skipif(SKIP is not None, reason=SKIP or ""),
]


@dataclass
class Run:
    """A run started in its own process group, with its own ledger."""

    proc: subprocess.Popen[bytes]
    ledger: Path
    env: dict[str, str]
    port: int
    descendants: set[psutil.Process] = field(default_factory=set)

    def prog_ids(self) -> set[int]:
        """The program ids the run's ledger records name (one per attachment)."""
        ids: set[int] = set()
        for path in self.ledger.glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                prog_id = json.loads(path.read_text()).get("details", {}).get("prog_id")
                if prog_id:
                    ids.add(int(prog_id))
        return ids

    def note_descendants(self) -> None:
        with contextlib.suppress(psutil.Error):
            self.descendants |= set(psutil.Process(self.proc.pid).children(recursive=True))

    def kill(self) -> None:
        """SIGKILL the run's process group and every process it started (they may have a
        session of their own)."""
        self.note_descendants()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for child in self.descendants:
            with contextlib.suppress(psutil.Error):
                child.kill()
        self.proc.wait(REPLY_WAIT_S)
        for child in self.descendants:
            with contextlib.suppress(psutil.Error):
                child.wait(REPLY_WAIT_S)

    def cleanup(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bench", "cleanup"],
            cwd=PROJECT_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=START_WAIT_S,
        )

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        self.cleanup()
        for stream in (self.proc.stdout, self.proc.stderr, self.proc.stdin):
            if stream is not None:
                stream.close()


Start = Callable[[list[str], int], Run]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    runs: list[Run] = []

    def launch(argv: list[str], port: int) -> Run:
        ledger = tmp_path / "ledger"
        env = {**os.environ, "HELLOBENCH_LEDGER": str(ledger), "COLUMNS": "200"}
        env["PYTHONPATH"] = str(PROJECT_ROOT)
        proc = subprocess.Popen(
            [sys.executable, *argv],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a process group of its own, killed as a whole
        )
        run = Run(proc, ledger, env, port)
        runs.append(run)
        return run

    yield launch
    for run in runs:
        run.close()


def _wait_for_line(run: Run, marker: bytes) -> None:
    """Read the run's output until a line holds ``marker`` (bounded)."""
    assert run.proc.stdout is not None
    fd = run.proc.stdout.fileno()
    deadline = time.monotonic() + START_WAIT_S
    seen = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], POLL_S)
        if ready:
            chunk = os.read(fd, 4096)
            seen += chunk
            if marker in seen:
                return
            if not chunk:
                break
    err = run.proc.stderr.read() if run.proc.poll() is not None and run.proc.stderr else b""
    raise AssertionError(f"the run did not start: {seen!r} {err[-2000:]!r}")


def _exchange(port: int) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(REPLY_WAIT_S)
        client.bind(("127.0.0.1", 0))
        request = make_request(24, seq=1)
        client.sendto(request, ("127.0.0.1", port))
        reply: bytes = client.recvfrom(65536)[0]
        assert reply == make_reply(request), reply
        return reply


def _json(argv: list[str]) -> object:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    return json.loads(proc.stdout) if proc.returncode == 0 and proc.stdout.strip() else []


def _attached_to_lo() -> set[int]:
    """Every program id attached to lo: XDP (``ip link``), tc filters, and links (tcx)."""
    ids: set[int] = set()
    links = _json(["ip", "-j", "-d", "link", "show", "dev", "lo"])
    for link in links if isinstance(links, list) else []:
        xdp = link.get("xdp", {})
        ids.add(int(xdp.get("prog", {}).get("id", 0)))
        ids |= {int(a.get("prog", {}).get("id", 0)) for a in xdp.get("attached", [])}
    for direction in ("ingress", "egress"):
        filters = _json(["tc", "-j", "filter", "show", "dev", "lo", direction])
        for entry in filters if isinstance(filters, list) else []:
            ids.add(int(entry.get("options", {}).get("prog", {}).get("id", 0)))
    lo = socket.if_nametoindex("lo")
    bpf_links = _json(["bpftool", "-j", "link", "show"])
    for link in bpf_links if isinstance(bpf_links, list) else []:
        if link.get("ifindex") in (lo, None):
            ids.add(int(link.get("prog_id", 0)))
    return ids - {0}


def _loaded(prog_id: int) -> bool:
    proc = subprocess.run(
        ["bpftool", "prog", "show", "id", str(prog_id)], capture_output=True, timeout=30
    )
    return proc.returncode == 0


def _left(ids: set[int]) -> tuple[set[int], set[int]]:
    """The run's programs still attached to lo, and still loaded, once either is none
    (bounded polling)."""
    deadline = time.monotonic() + GONE_WAIT_S
    while True:
        attached = ids & _attached_to_lo()
        loaded = {i for i in ids if _loaded(i)}
        if (not attached and not loaded) or time.monotonic() >= deadline:
            return attached, loaded
        time.sleep(POLL_S)


def _hello_reaches_the_stack(port: int) -> None:
    """A HELLO to ``port`` is delivered to a socket bound there, and the first datagram the
    client gets back is that socket's answer: no reflector answered it."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client,
    ):
        server.settimeout(REPLY_WAIT_S)
        client.settimeout(REPLY_WAIT_S)
        server.bind(("127.0.0.1", port))
        client.bind(("127.0.0.1", 0))
        request = make_request(24, seq=2)
        client.sendto(request, ("127.0.0.1", port))
        data, source = server.recvfrom(65536)
        assert data == request
        server.sendto(b"from the stack", source)
        assert client.recvfrom(65536) == (b"from the stack", ("127.0.0.1", port))


def _cmdline(proc: psutil.Process) -> str:
    """The command line of a process still running ("" for one gone or a zombie)."""
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def _tcx() -> bool:
    """Does this kernel have tcx (6.6 or later)?"""
    return bool(run_tool(["query-tcx", "--ifname", "lo"])["tcx"])


def _serve(start: Start, name: str) -> Run:
    entry = ENTRIES.get(name)
    if entry is None or not entry.available:
        pytest.skip(f"{name}: {entry.unavailable if entry else 'not registered'}")
    if name == "ebpf-tc" and not _tcx():
        pytest.skip("no tcx here: ebpf-tc attaches through netlink (see the fallback test)")
    port = free_udp_port()
    run = start(["-m", "bench", "serve", name, "--port", str(port)], port)
    _wait_for_line(run, b"serving HELLO")
    return run


@pytest.mark.parametrize("name", ["ebpf-xdp", "ebpf-tc"])
def test_killed_run_leaves_nothing_attached(start: Start, name: str) -> None:
    run = _serve(start, name)
    _exchange(run.port)
    ids = run.prog_ids()
    assert ids, "the run's ledger names no program"
    assert ids & _attached_to_lo() or name == "ebpf-tc", "nothing attached to lo"

    run.kill()

    attached, loaded = _left(ids)
    assert not attached, f"programs of the killed run still attached to lo: {attached}"
    assert not loaded, f"programs of the killed run still loaded: {loaded}"
    _hello_reaches_the_stack(run.port)


def test_holder_killed_alone_detaches_and_health_says_so(start: Start) -> None:
    """Killing the process that holds the link (not the run) detaches the program too; the
    run then stops on its own, saying the reflector is gone."""
    run = _serve(start, "ebpf-xdp")
    _exchange(run.port)
    ids = run.prog_ids()
    run.note_descendants()
    holders = [p for p in run.descendants if "hb-bpfctl" in _cmdline(p)]
    assert holders, "no process holds the attachment"
    for holder in holders:
        holder.kill()
    attached, loaded = _left(ids)
    assert not attached and not loaded, (attached, loaded)
    _hello_reaches_the_stack(run.port)


def test_tc_netlink_fallback_is_swept_after_a_kill(start: Start) -> None:
    """Without tcx (kernels before 6.6) the tc reflector is a netlink filter, which outlives
    whatever held it: a killed run leaves it in the ledger, and ``bench cleanup`` removes it."""
    entry = ENTRIES.get("ebpf-tc")
    if entry is None or not entry.available:
        pytest.skip(f"ebpf-tc: {entry.unavailable if entry else 'not registered'}")
    port = free_udp_port()
    run = start(["-c", NETLINK_CHILD, str(port)], port)
    _wait_for_line(run, b"serving")
    _exchange(port)
    ids = run.prog_ids()
    assert ids & _attached_to_lo(), "no netlink filter on lo"

    run.kill()

    assert ids & _attached_to_lo(), "the netlink filter went away by itself"
    swept = run.cleanup()
    assert swept.returncode == 0, swept.stdout + swept.stderr
    assert "removed tc" in swept.stdout, swept.stdout
    assert not list(run.ledger.glob("*.json"))
    attached, loaded = _left(ids)
    assert not attached and not loaded, (attached, loaded)
    _hello_reaches_the_stack(port)
