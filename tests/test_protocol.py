"""The HELLO protocol module, and its C twin's constants."""

from __future__ import annotations

import re

import pytest

from bench import protocol
from bench.native.build import NATIVE_DIR


@pytest.mark.parametrize("size", [6, 24, 64, 1472])
def test_reply_has_same_length_and_echoes_after_offset_6(size: int) -> None:
    request = protocol.make_request(size, seq=7, timestamp_ns=123)
    reply = protocol.make_reply(request)
    assert reply is not None
    assert len(reply) == size
    assert reply[:6] == b"GOT IT"
    assert reply[6:] == request[6:]


@pytest.mark.parametrize(
    "datagram",
    [b"", b"HELLO", b"HELL0 world", b"hello world", b"GOT IT", b"HELLX ", b"HELLO" + b"x" * 1468],
)
def test_malformed_gets_no_reply(datagram: bytes) -> None:
    assert protocol.make_reply(datagram) is None


def test_netcat_line_is_answered() -> None:
    assert protocol.make_reply(b"HELLO\n") == b"GOT IT"


def test_header_round_trip() -> None:
    request = protocol.make_request(64, seq=2**40 + 5, timestamp_ns=99, flags=protocol.FLAG_WARMUP)
    header = protocol.parse_header(request)
    assert header == protocol.RequestHeader(protocol.FLAG_WARMUP, 2**40 + 5, 99)
    assert protocol.parse_header(request[:23]) is None


@pytest.mark.parametrize("size", [5, 1473, 0])
def test_make_request_rejects_sizes_outside_protocol(size: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        protocol.make_request(size)


def test_c_header_agrees_with_python() -> None:
    text = (NATIVE_DIR / "hello_proto.h").read_text()
    macros = dict(re.findall(r'#define[ \t]+(HELLO_\w+)[ \t]+("[^"]*"|\S+)', text))
    assert macros["HELLO_MAGIC"] == f'"{protocol.MAGIC.decode()}"'
    assert macros["HELLO_REPLY"] == f'"{protocol.REPLY_MAGIC.decode()}"'
    assert int(macros["HELLO_MIN_REQUEST"]) == protocol.MIN_REQUEST
    assert int(macros["HELLO_MAX_REQUEST"]) == protocol.MAX_REQUEST
    assert int(macros["HELLO_HEADER_SIZE"]) == protocol.HEADER_SIZE
    assert int(macros["HELLO_DEFAULT_PORT"]) == protocol.DEFAULT_PORT
    assert int(macros["HELLO_FLAG_WARMUP"], 16) == protocol.FLAG_WARMUP
