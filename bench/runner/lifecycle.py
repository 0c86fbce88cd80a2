"""An impl's life in a measurement, shared by the runner and the fuzz campaign: which impls
a selection names, whether each can run here (built, or why not), and a server started
for a block and always stopped."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from bench.errors import UsageError
from bench.impl.api import Impl, ImplError, RunningServer, ServerConfig
from bench.impl.registry import Entry


def select(names: Sequence[str], entries: dict[str, Entry]) -> list[Entry]:
    """The entries ``names`` asks for, in that order (all registered ones when it names
    none); UsageError naming an unknown impl."""
    unknown = [name for name in names if name not in entries]
    if unknown:
        raise UsageError(f"unknown impl {unknown[0]!r} (known: {', '.join(sorted(entries))})")
    return [entries[name] for name in dict.fromkeys(names or sorted(entries))]


@dataclass(frozen=True)
class Readiness:
    """An impl ready to start, or why it cannot run here (``impl`` None)."""

    name: str
    impl: Impl | None
    reason: str | None = None
    build_failed: bool = False


def prepare(entry: Entry) -> Readiness:
    """Check that ``entry`` can run here and build what it needs (cached)."""
    if entry.impl is None or not entry.available:
        return Readiness(entry.name, None, entry.unavailable or "unavailable")
    try:
        entry.impl.prepare()
    except ImplError as exc:
        return Readiness(entry.name, None, f"build failed: {exc}", build_failed=True)
    return Readiness(entry.name, entry.impl)


@contextmanager
def running_server(impl: Impl, config: ServerConfig) -> Iterator[RunningServer]:
    """``impl`` started with ``config`` for the block, stopped on every way out."""
    server = impl.start(config)
    try:
        yield server
    finally:
        server.stop()
