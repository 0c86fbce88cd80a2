"""The agent's protocol: one JSON object a line each way, one response per request.

A request is ``{"op": NAME, ...fields}``; the response is ``{"ok": true, ...}`` or
``{"error": "..."}``.  A line that is not a known, well-formed request gets an error
response, never a crash.  Requests are frozen dataclasses, one per operation.

Input is bounded: a request line is at most ``MAX_LINE`` bytes (a longer one is read in
pieces, dropped, and answered with one error), and nothing queues: the agent reads the next
request only once it has answered the last, so what the driver sends ahead waits in the
pipe, whose size the kernel bounds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import IO, Any, ClassVar

from bench.errors import HellobenchError

PROTOCOL_VERSION = 1
MAX_LINE = 64 * 1024  # bytes of one request line, its newline not counted
MAX_OPTIONS = 64  # server options in one start request
TOO_LONG = f"a request line longer than {MAX_LINE} bytes: refused"


class ProtocolError(HellobenchError):
    """A line that is not a well-formed request or response."""


@dataclass(frozen=True)
class Describe:
    """The server host's environment, its address on the link and its impls."""

    op: ClassVar[str] = "describe"


@dataclass(frozen=True)
class Prepare:
    """Build ``impl`` there (cached)."""

    op: ClassVar[str] = "prepare"
    impl: str


@dataclass(frozen=True)
class Start:
    """Start ``impl`` bound to the address the driver reaches."""

    op: ClassVar[str] = "start"
    impl: str
    port: int
    cpu: int | None = None
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProbeStart:
    """Open the server-side probes (the running server's accounting)."""

    op: ClassVar[str] = "probe_start"


@dataclass(frozen=True)
class ProbeStop:
    """Close the probes; the response carries the server side's PhaseMetrics."""

    op: ClassVar[str] = "probe_stop"


@dataclass(frozen=True)
class Health:
    """The running server's health (None when healthy) and its counters."""

    op: ClassVar[str] = "health"


@dataclass(frozen=True)
class Stop:
    """Stop the running server (idempotent)."""

    op: ClassVar[str] = "stop"


Request = Describe | Prepare | Start | ProbeStart | ProbeStop | Health | Stop
REQUESTS: dict[str, type[Request]] = {
    cls.op: cls for cls in (Describe, Prepare, Start, ProbeStart, ProbeStop, Health, Stop)
}


def encode_request(request: Request) -> str:
    return json.dumps({"op": request.op, **asdict(request)})


_TYPES: dict[str, type | tuple[type, ...]] = {
    "impl": str,
    "port": int,
    "cpu": (int, type(None)),
    "options": dict,
}


def _check_types(cls: type[Request], body: dict[str, Any]) -> None:
    for f in fields(cls):
        if f.name not in body:
            continue
        value = body[f.name]
        expected = _TYPES[f.name]
        if not isinstance(value, expected) or isinstance(value, bool):
            raise ProtocolError(f"{cls.op}: field {f.name!r} has the wrong type")
    if "impl" in body and not body["impl"]:
        raise ProtocolError(f"{cls.op}: field 'impl' is empty")
    if "port" in body and not 0 < body["port"] < 65536:
        raise ProtocolError(f"{cls.op}: field 'port' {body['port']}: must be 1..65535")
    if "options" in body:
        options = body["options"]
        if len(options) > MAX_OPTIONS:
            raise ProtocolError(f"{cls.op}: field 'options': more than {MAX_OPTIONS}")
        if not all(isinstance(k, str) and k and isinstance(v, str) for k, v in options.items()):
            raise ProtocolError(f"{cls.op}: field 'options' must map non-empty strings to strings")


def decode_request(line: str) -> Request:
    """The request on ``line``; ProtocolError naming what is wrong with it."""
    try:
        body = json.loads(line)
    except ValueError as exc:
        raise ProtocolError(f"not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ProtocolError("a request must be a JSON object")
    op = body.pop("op", None)
    cls = REQUESTS.get(op) if isinstance(op, str) else None
    if cls is None:
        raise ProtocolError(f"unknown op {op!r} (known: {', '.join(REQUESTS)})")
    names = {f.name for f in fields(cls)}
    extra = sorted(set(body) - names)
    if extra:
        raise ProtocolError(f"{op}: unknown field(s) {', '.join(extra)}")
    _check_types(cls, body)
    try:
        return cls(**body)
    except TypeError as exc:
        raise ProtocolError(f"{op}: {exc}") from exc


def read_lines(infile: IO[bytes], limit: int = MAX_LINE) -> Iterator[bytes | None]:
    """Each line of ``infile`` without its newline, or None for a line longer than
    ``limit`` bytes.  A line is read in pieces of at most ``limit`` + 1 bytes and a long
    one's rest is dropped as it comes, so no more than that is ever held."""
    while True:
        piece = infile.readline(limit + 1)
        if not piece:
            return
        if piece.endswith(b"\n") or len(piece) <= limit:  # a whole line, or the last
            yield piece.removesuffix(b"\n")
            continue
        while piece and not piece.endswith(b"\n"):
            piece = infile.readline(limit + 1)
        yield None


def ok(**body: Any) -> str:
    return json.dumps({"ok": True, **body})


def error(message: str) -> str:
    return json.dumps({"error": message})


def decode_response(line: str) -> dict[str, Any]:
    """The response on ``line`` (ProtocolError if malformed or an error response)."""
    try:
        body = json.loads(line)
    except ValueError as exc:
        raise ProtocolError(f"agent sent a line that is not JSON: {line[:200]!r}") from exc
    if not isinstance(body, dict):
        raise ProtocolError(f"agent sent a non-object: {line[:200]!r}")
    if "error" in body:
        raise ProtocolError(f"agent: {body['error']}")
    if body.get("ok") is not True:
        raise ProtocolError(f"agent sent neither ok nor error: {line[:200]!r}")
    return body
