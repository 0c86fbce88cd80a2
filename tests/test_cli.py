"""The command line as a user meets it: list, serve, cleanup."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

from bench import PROJECT_ROOT
from tests.conftest import free_udp_port


def bench(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PROJECT_ROOT,
    )


def test_list_json_names_every_impl_with_availability() -> None:
    proc = bench("list", "--json")
    assert proc.returncode == 0, proc.stderr
    records = {r["name"]: r for r in json.loads(proc.stdout)}
    for name in ("blocking-py", "asyncio-py", "blocking-c"):
        assert records[name]["available"] is True, records[name]
        assert records[name]["reason"] is None
    for record in records.values():
        assert record["kind"] in ("userspace", "kernel-module", "ebpf")
        if not record["available"]:
            assert record["reason"], f"{record['name']} unavailable without a reason"


def test_serve_answers_until_interrupted() -> None:
    port = free_udp_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "serve", "blocking-c", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PROJECT_ROOT,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert "serving HELLO" in banner, banner + (proc.stderr.read() if proc.stderr else "")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2)
            sock.sendto(b"HELLO\n", ("127.0.0.1", port))
            assert sock.recv(100) == b"GOT IT"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # the server process went with it: nothing answers any more
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        sock.sendto(b"HELLO\n", ("127.0.0.1", port))
        time.sleep(0.05)
        try:
            reply = sock.recv(100)
        except (TimeoutError, ConnectionRefusedError):
            reply = b""
    assert reply == b""
