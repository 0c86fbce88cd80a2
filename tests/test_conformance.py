"""Every available impl speaks HELLO byte for byte, and ignores everything else.

Parametrised over the registry, so a new impl folder is tested without touching this file.
Impls that cannot run on this machine are skipped with the registry's reason.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from bench.impl.api import RunningServer, ServerConfig
from bench.impl.registry import discover
from bench.protocol import make_reply, make_request
from tests.conftest import free_udp_port, unrunnable_reason

ENTRIES = discover()
REPLY_WAIT_S = 2.0
SILENCE_WAIT_S = 0.3

MALFORMED = {
    "empty": b"",
    "five-bytes": b"HELLO",
    "wrong-magic": b"HOWDY there",
    "near-miss-digit": b"HELL0 world",
    "lowercase": b"hello world",
    "reply-itself": b"GOT IT and more",
    "oversized": b"HELLO " + b"x" * 1467,
}


def _skip_reason(name: str) -> str | None:
    return unrunnable_reason(ENTRIES[name])


@pytest.fixture(scope="module", params=sorted(ENTRIES))
def server(request: pytest.FixtureRequest) -> Iterator[tuple[RunningServer, int]]:
    name: str = request.param
    reason = _skip_reason(name)
    if reason:
        pytest.skip(f"{name}: {reason}")
    impl = ENTRIES[name].impl
    assert impl is not None
    impl.prepare()
    port = free_udp_port()
    running = impl.start(ServerConfig(port=port))
    try:
        yield running, port
    finally:
        running.stop()


def _client(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    return sock


@pytest.mark.parametrize("size", [6, 24, 64, 1472])
def test_reply_is_byte_exact(server: tuple[RunningServer, int], size: int) -> None:
    _, port = server
    request = make_request(size, seq=size, timestamp_ns=size * 1000)
    with _client(port) as sock:
        sock.settimeout(REPLY_WAIT_S)
        sock.send(request)
        reply = sock.recv(65536)
    assert reply == make_reply(request)
    assert len(reply) == size


def test_netcat_style_hello(server: tuple[RunningServer, int]) -> None:
    _, port = server
    with _client(port) as sock:
        sock.settimeout(REPLY_WAIT_S)
        sock.send(b"HELLO\n")
        assert sock.recv(100) == b"GOT IT"


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_gets_no_reply_and_server_keeps_serving(
    server: tuple[RunningServer, int], name: str
) -> None:
    running, port = server
    with _client(port) as sock:
        sock.send(MALFORMED[name])
        sock.settimeout(SILENCE_WAIT_S)
        with pytest.raises(TimeoutError):
            sock.recv(65536)
        sock.settimeout(REPLY_WAIT_S)
        request = make_request(64, seq=1)
        sock.send(request)
        assert sock.recv(65536) == make_reply(request)
    assert running.health() is None
