"""The HELLO protocol, byte for byte: the one definition every part of hellobench imports.

A request is a UDP datagram of MIN_REQUEST..MAX_REQUEST bytes starting with ``HELLO``.
The reply has the same length: its first six bytes become ``GOT IT`` and every byte after
offset 6 is echoed unchanged.  Anything else gets no reply.

The driver's own requests carry a 24-byte header, ``HELLO `` | flags u16 | seq u64 |
client timestamp u64 (network byte order), padded to the chosen size with a known pattern.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC = b"HELLO"
REPLY_MAGIC = b"GOT IT"
REQUEST_PREFIX = b"HELLO "
MIN_REQUEST = 6
MAX_REQUEST = 1472  # an Ethernet-MTU datagram: 1500 - 20 (IPv4) - 8 (UDP)
DEFAULT_PORT = 3000
DEFAULT_ADDR = "127.0.0.1"

HEADER = struct.Struct("!6sHQQ")
HEADER_SIZE = HEADER.size  # 24
FLAG_WARMUP = 0x0001


def is_request(datagram: bytes) -> bool:
    """True when ``datagram`` must be answered."""
    return MIN_REQUEST <= len(datagram) <= MAX_REQUEST and datagram[:5] == MAGIC


def make_reply(datagram: bytes) -> bytes | None:
    """The reply to ``datagram``, or None when it gets none."""
    if not is_request(datagram):
        return None
    return REPLY_MAGIC + datagram[6:]


def padding(size: int) -> bytes:
    """The pattern that fills a driver request after its header (byte i holds i mod 251)."""
    return bytes(i % 251 for i in range(HEADER_SIZE, max(size, HEADER_SIZE)))


@dataclass(frozen=True)
class RequestHeader:
    flags: int
    seq: int
    timestamp_ns: int


def make_request(size: int, seq: int = 0, timestamp_ns: int = 0, flags: int = 0) -> bytes:
    """A driver request of ``size`` bytes; sizes below the header keep only its prefix."""
    if not MIN_REQUEST <= size <= MAX_REQUEST:
        raise ValueError(f"request size {size} outside {MIN_REQUEST}..{MAX_REQUEST}")
    full = HEADER.pack(REQUEST_PREFIX, flags, seq, timestamp_ns) + padding(size)
    return full[:size]


def parse_header(datagram: bytes) -> RequestHeader | None:
    """The driver header of a request or reply, or None when the datagram is too short."""
    if len(datagram) < HEADER_SIZE:
        return None
    _magic, flags, seq, stamp = HEADER.unpack_from(datagram)
    return RequestHeader(flags=flags, seq=seq, timestamp_ns=stamp)
