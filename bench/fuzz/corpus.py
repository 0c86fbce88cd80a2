"""Hostile datagrams for ``bench fuzz``: a seeded, bounded stream of malformed HELLOs with
valid ones interleaved at a low rate.

Every malformed datagram belongs to a named category (what it tries to trick a server
into); every valid one carries a tag that no other datagram of the stream carries, so
that its reply can be recognised by content alone.  The same seed gives the same stream.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from bench.protocol import MAGIC, MAX_REQUEST, MIN_REQUEST, REPLY_MAGIC, REQUEST_PREFIX, is_request

MAX_UDP_PAYLOAD = 65_507  # 65535 - 20 (IPv4 header) - 8 (UDP header)
VALID = "valid"
VALID_RATE = 0.01  # one valid HELLO per hundred malformed datagrams, on average

# Malformed categories and their relative weights in the random part of the stream.
CATEGORIES: dict[str, float] = {
    "random": 40.0,  # random bytes, random length 0..1472
    "empty": 1.0,  # zero-length datagram
    "truncated": 6.0,  # a request header cut to 1..4 bytes
    "hello-5": 3.0,  # exactly b"HELLO": the magic with nothing after it (5 bytes)
    "hell": 4.0,  # b"HELL" alone or followed by anything but "O"
    "hell0": 4.0,  # b"HELL0" (digit zero) + bytes
    "lowercase": 4.0,  # b"hello " and other case variants of the magic
    "shifted": 3.0,  # the magic one byte late (" HELLO", "\\0HELLO")
    "got-it": 4.0,  # the reply itself: a server answering it would start a reply loop
    "bitflip": 10.0,  # a valid request with 1..3 bits flipped inside the magic
    "hello-oversized": 1.0,  # the magic and trailing bytes, 1473..65507 bytes in all
    "random-oversized": 0.5,  # random bytes, 1473..65507 bytes
}

_NOT_O = bytes(b for b in range(256) if b != ord("O"))
_CASE_VARIANTS = (b"hello", b"Hello", b"hELLO", b"HeLLO", b"HELLo", b"hELLo")
_TAG = struct.Struct("!cQ")  # b"V" (valid), b"S" (sync) or b"M" (malformed) | serial


@dataclass(frozen=True, slots=True)
class Datagram:
    category: str  # VALID or one of CATEGORIES
    data: bytes

    @property
    def valid(self) -> bool:
        return self.category == VALID


class Corpus:
    """Builds the datagrams of one seeded stream."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._rng = random.Random(seed)
        # Syncs are drawn from their own generator: however many the pacing needs, the
        # stream itself stays the same for a seed.
        self._sync_rng = random.Random(f"sync-{seed}")
        self._serial = 0
        self._categories = list(CATEGORIES)
        self._weights = list(CATEGORIES.values())

    def _tag(self, kind: bytes) -> bytes:
        self._serial += 1
        return _TAG.pack(kind, self._serial)

    def _request_like(self, size: int, kind: bytes, rng: random.Random | None = None) -> bytes:
        """``HELLO `` + a unique tag + random bytes, cut or padded to ``size``."""
        body = REQUEST_PREFIX + self._tag(kind)
        if size > len(body):
            body += (rng or self._rng).randbytes(size - len(body))
        return body[:size]

    def valid(self, size: int | None = None) -> Datagram:
        """A valid HELLO of ``size`` (random 6..1472 when None) with a unique tag."""
        if size is None:
            size = self._rng.randint(MIN_REQUEST, MAX_REQUEST)
        return Datagram(VALID, self._request_like(size, b"V"))

    def sync(self, size: int | None = None) -> Datagram:
        """A valid HELLO outside the stream (for pacing and the final check): unique tag,
        drawn without disturbing the stream's own generator."""
        if size is None:
            size = self._sync_rng.randint(MIN_REQUEST, MAX_REQUEST)
        return Datagram(VALID, self._request_like(size, b"S", self._sync_rng))

    def _random_bytes(self, low: int, high: int) -> bytes:
        data = self._rng.randbytes(self._rng.randint(low, high))
        if data[:5] == MAGIC:  # 2^-40, but a random datagram must never be a request
            data = b"h" + data[1:]
        return data

    def _oversized_length(self) -> int:
        roll = self._rng.random()
        if roll < 0.1:
            return MAX_REQUEST + 1
        if roll < 0.2:
            return MAX_UDP_PAYLOAD
        if roll < 0.6:
            return self._rng.randint(MAX_REQUEST + 1, 9000)
        return self._rng.randint(MAX_REQUEST + 1, MAX_UDP_PAYLOAD)

    def _tail(self, prefix: bytes, high: int = MAX_REQUEST) -> bytes:
        return prefix + self._rng.randbytes(self._rng.randint(0, high - len(prefix)))

    def malformed(self, category: str) -> Datagram:
        """One datagram of ``category`` (a key of CATEGORIES); never a valid request."""
        rng = self._rng
        data: bytes
        if category == "random":
            data = self._random_bytes(0, MAX_REQUEST)
        elif category == "empty":
            data = b""
        elif category == "truncated":
            data = self._request_like(MIN_REQUEST, b"M")[: rng.randint(1, 4)]
        elif category == "hello-5":
            data = MAGIC
        elif category == "hell":
            data = b"HELL"
            if rng.random() < 0.7:
                data += bytes([rng.choice(_NOT_O)])
                data = self._tail(data)
        elif category == "hell0":
            data = self._tail(b"HELL0")
        elif category == "lowercase":
            data = self._tail(rng.choice(_CASE_VARIANTS) + b" ")
        elif category == "shifted":
            data = self._tail(rng.choice((b" ", b"\x00", b"\xff")) + REQUEST_PREFIX)
        elif category == "got-it":
            data = REPLY_MAGIC if rng.random() < 0.3 else self._tail(REPLY_MAGIC)
        elif category == "bitflip":
            data = self._bitflip()
        elif category == "hello-oversized":
            size = self._oversized_length()
            data = REQUEST_PREFIX + self._tag(b"M")
            data += rng.randbytes(size - len(data))
        elif category == "random-oversized":
            size = self._oversized_length()
            data = self._random_bytes(size, size)
        else:
            raise ValueError(f"unknown malformed category {category!r}")
        if is_request(data):
            raise AssertionError(f"{category} produced a valid request: {data[:16]!r}")
        return Datagram(category, data)

    def _bitflip(self) -> bytes:
        rng = self._rng
        data = bytearray(self._request_like(rng.randint(MIN_REQUEST, MAX_REQUEST), b"M"))
        for bit in rng.sample(range(8 * len(MAGIC)), rng.randint(1, 3)):
            data[bit // 8] ^= 1 << (bit % 8)
        return bytes(data)

    def edge_cases(self) -> list[Datagram]:
        """The boundary datagrams every run starts with, one or more per category."""
        fixed = [
            Datagram("empty", b""),
            Datagram("hello-5", MAGIC),
            Datagram("hell", b"HELL"),
            Datagram("got-it", REPLY_MAGIC),
            Datagram("lowercase", b"hello "),
            Datagram("hell0", b"HELL0 "),
            Datagram("shifted", b" HELLO "),
            Datagram("hello-oversized", REQUEST_PREFIX + b"x" * (MAX_REQUEST + 1 - 6)),
            Datagram("hello-oversized", REQUEST_PREFIX + b"x" * (MAX_UDP_PAYLOAD - 6)),
        ]
        for n in range(1, 5):
            fixed.append(Datagram("truncated", REQUEST_PREFIX[:n]))
        drawn = [self.malformed(c) for c in CATEGORIES]
        return fixed + drawn

    def stream(self, count: int, valid_rate: float = VALID_RATE) -> Iterator[Datagram]:
        """``count`` malformed datagrams (edge cases first), valid HELLOs interleaved."""
        rng = self._rng
        emitted = 0
        for datagram in self.edge_cases()[:count]:
            emitted += 1
            yield datagram
        while emitted < count:
            if rng.random() < valid_rate:
                yield self.valid()
            category = rng.choices(self._categories, self._weights)[0]
            emitted += 1
            yield self.malformed(category)


def reply_keys(datagram: bytes) -> tuple[bytes, ...]:
    """What a server that wrongly answered ``datagram`` would most likely send back."""
    if len(datagram) >= len(REPLY_MAGIC):
        return (REPLY_MAGIC + datagram[len(REPLY_MAGIC) :], datagram)
    return (datagram,)
