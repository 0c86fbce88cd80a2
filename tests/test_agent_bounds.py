"""The agent's input is bounded and checked: a line too long, a line that is not a JSON
object, a field of the wrong type or out of range (a port outside 1..65535, a CPU the
server host's agent may not run on) each get one error reply, and the agent goes on
answering; a long line is read in bounded pieces, never held whole.  The driver bounds the
agent's response lines too."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from bench import PROJECT_ROOT
from bench.remote import agent as agent_module
from bench.remote import protocol
from bench.remote.ssh import AgentConnection, RemoteError, ServerHost
from tests.conftest import free_udp_port

AGENT_TIMEOUT_S = 120.0
HEALTH = '{"op": "health"}'
NO_SERVER = {"ok": True, "health": "no server running", "counters": {}}
LONG = 1024 * 1024  # far beyond any line the protocol takes


def allowed() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def talk(ledger: Path, lines: list[bytes]) -> tuple[list[dict[str, object]], int]:
    """Run an agent, send it ``lines`` (each ends with a newline here), close its stdin:
    its replies and exit status."""
    agent = subprocess.Popen(
        [sys.executable, "-m", "bench", "agent", "--address", "127.0.0.1"],
        cwd=PROJECT_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HELLOBENCH_AGENT_LEDGER": str(ledger)},
    )
    try:
        out, _ = agent.communicate(b"".join(line + b"\n" for line in lines), AGENT_TIMEOUT_S)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(timeout=30)
    return [json.loads(line) for line in out.decode().splitlines()], agent.returncode


def test_a_line_too_long_gets_one_error_and_the_next_request_works(tmp_path: Path) -> None:
    answers, code = talk(
        tmp_path / "ledger",
        [b"x" * LONG, b'{"op": "health", ' + b" " * LONG + b"}", HEALTH.encode()],
    )
    assert len(answers) == 3, answers
    for answer in answers[:2]:
        assert set(answer) == {"error"}
        assert "longer than" in str(answer["error"]), answer
    assert answers[2] == NO_SERVER
    assert code == 0


def test_the_longest_line_taken_is_answered(tmp_path: Path) -> None:
    request = HEALTH.encode()
    padded = request[:-1] + b" " * (protocol.MAX_LINE - len(request)) + b"}"
    assert len(padded) == protocol.MAX_LINE
    answers, code = talk(tmp_path / "ledger", [padded, padded + b" "])
    assert answers[0] == NO_SERVER
    assert "longer than" in str(answers[1]["error"])
    assert code == 0


class Endless(io.RawIOBase):
    """``size`` bytes of one line without a newline, then ``tail``, made as they are read."""

    def __init__(self, size: int, tail: bytes) -> None:
        self.left = size
        self.tail = tail

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.left > 0:
            n = min(len(buffer), self.left)
            buffer[:n] = b"x" * n
            self.left -= n
            return n
        n = min(len(buffer), len(self.tail))
        buffer[:n] = self.tail[:n]
        self.tail = self.tail[n:]
        return n


def test_a_long_line_is_read_in_bounded_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """32 MiB without a newline: refused once, and never held whole in memory."""
    monkeypatch.setenv("HELLOBENCH_LEDGER", str(tmp_path / "ledger"))
    size = 32 * 1024 * 1024
    infile = io.BufferedReader(Endless(size, b"\n" + HEALTH.encode() + b"\n"))
    outfile = io.BytesIO()
    tracemalloc.start()
    try:
        agent_module.serve(infile, outfile, "127.0.0.1")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < size // 4, f"{peak} bytes allocated at the peak"
    answers = [json.loads(line) for line in outfile.getvalue().decode().splitlines()]
    assert len(answers) == 2, answers
    assert "longer than" in str(answers[0]["error"])
    assert answers[1] == NO_SERVER


MALFORMED = {
    "not JSON": "not json",
    "a list": "[1, 2]",
    "a string": '"start"',
    "a number": "42",
    "null": "null",
    "nested deep": "[" * 30000,
    "op not a string": '{"op": 5}',
    "impl a number": '{"op": "start", "impl": 5, "port": 3000}',
    "port a string": '{"op": "start", "impl": "blocking-c", "port": "3000"}',
    "port a bool": '{"op": "start", "impl": "blocking-c", "port": true}',
    "port a float": '{"op": "start", "impl": "blocking-c", "port": 3000.0}',
    "port 0": '{"op": "start", "impl": "blocking-c", "port": 0}',
    "port 65536": '{"op": "start", "impl": "blocking-c", "port": 65536}',
    "port negative": '{"op": "start", "impl": "blocking-c", "port": -1}',
    "port huge": '{"op": "start", "impl": "blocking-c", "port": 1' + "0" * 5000 + "}",
    "cpu a string": '{"op": "start", "impl": "blocking-c", "port": 3000, "cpu": "1"}',
    "cpu a float": '{"op": "start", "impl": "blocking-c", "port": 3000, "cpu": 1.0}',
    "options a list": '{"op": "start", "impl": "blocking-c", "port": 3000, "options": []}',
    "option a number": '{"op": "start", "impl": "blocking-c", "port": 3000, "options": {"a": 1}}',
    "option key empty": '{"op": "start", "impl": "blocking-c", "port": 3000, "options": {"": "1"}}',
    "unknown impl": '{"op": "start", "impl": "no-such-impl", "port": 3000}',
    "prepare impl null": '{"op": "prepare", "impl": null}',
}


def test_each_malformed_line_gets_one_error_and_the_agent_goes_on(tmp_path: Path) -> None:
    lines = [text.encode() for text in MALFORMED.values()]
    answers, code = talk(tmp_path / "ledger", [*lines, HEALTH.encode()])
    assert len(answers) == len(lines) + 1, answers
    answered = [name for name, a in zip(MALFORMED, answers, strict=False) if set(a) != {"error"}]
    assert answered == [], answers
    assert answers[-1] == NO_SERVER
    assert code == 0


@pytest.mark.parametrize("cpu", [-1, 64, 4096])
def test_a_cpu_the_agent_may_not_run_on_is_one_error_then_a_start_works(
    tmp_path: Path, cpu: int
) -> None:
    """The CPU is checked against the agent's own affinity before anything starts: one
    error naming the field and the allowed set, not a failure of the pinned child."""
    assert cpu not in allowed()
    port = free_udp_port()
    bad = {"op": "start", "impl": "blocking-c", "port": port, "cpu": cpu}
    good = {"op": "start", "impl": "blocking-c", "port": port, "cpu": allowed()[-1]}
    lines = [json.dumps(bad), HEALTH, json.dumps(good), '{"op": "stop"}']
    answers, code = talk(tmp_path / "ledger", [line.encode() for line in lines])
    assert len(answers) == 4, answers
    error = str(answers[0].get("error"))
    assert f"cpu {cpu}" in error, error
    assert f"allowed: {', '.join(str(c) for c in allowed())}" in error, error
    assert answers[1] == NO_SERVER
    assert answers[2].get("ok") is True and answers[2]["pids"], answers[2]
    assert answers[3] == {"ok": True}
    assert code == 0
    assert not list((tmp_path / "ledger").glob("*.json"))


# A stand-in for ssh and the agent: it answers the first request with a line that never ends.
ENDLESS_ANSWER = (
    "import sys; sys.stdin.readline(); sys.stdout.write('x' * (4 << 20)); sys.stdout.flush(); "
    "sys.stdin.read()"
)


class EndlessAnswerHost(ServerHost):
    def argv(self, remote_command: str) -> list[str]:
        return [sys.executable, "-c", ENDLESS_ANSWER]


def test_the_driver_refuses_a_response_line_too_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HELLOBENCH_LEDGER", str(tmp_path / "ledger"))
    with (
        AgentConnection(EndlessAnswerHost("root@localhost")) as agent,
        pytest.raises(RemoteError, match="longer than"),
    ):
        agent.call(protocol.Health(), timeout_s=AGENT_TIMEOUT_S)
    assert not list((tmp_path / "ledger").glob("*.json"))
