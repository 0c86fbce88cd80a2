"""What every impl's controller provides, and what the runner gets back from it.

An impl folder holds a ``manifest.toml`` and a controller module (``controller.py`` unless
the manifest says otherwise) that defines ``create(manifest) -> Impl``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field

from bench.errors import HellobenchError
from bench.host.capabilities import HostCapabilities
from bench.impl.manifest import Manifest
from bench.protocol import DEFAULT_ADDR, DEFAULT_PORT


class ImplError(HellobenchError):
    """An impl failed to build, start or stop; the message says why."""


@dataclass(frozen=True)
class Peer:
    """The other end of the server's link (a veth peer): its namespace and interface."""

    netns: str | None
    interface: str


@dataclass(frozen=True)
class ServerConfig:
    """Where and how the runner wants a server to run.

    ``interface`` is where eBPF impls attach (inside ``netns``); ``peer``, when the
    topology has one, is the client's end of the link."""

    addr: str = DEFAULT_ADDR
    port: int = DEFAULT_PORT
    cpu: int | None = None
    netns: str | None = None
    interface: str = "lo"
    peer: Peer | None = None
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Accounting:
    """What the metric probes should account to a running server.

    ``pids``: user-space processes (every thread of each is counted);
    ``kernel_tids``: kernel threads; ``bpf_prog_ids``: BPF programs whose run time to read.
    ``note`` says, where there is no server process, where the cost shows instead.
    """

    pids: tuple[int, ...] = ()
    kernel_tids: tuple[int, ...] = ()
    bpf_prog_ids: tuple[int, ...] = ()
    note: str = ""


class RunningServer(ABC):
    """A started server; ``stop`` is idempotent and returns within a bounded time."""

    @abstractmethod
    def accounting(self) -> Accounting: ...

    def counters(self) -> dict[str, int]:
        """The impl's own counters (answered, rejected, ...), empty when it keeps none."""
        return {}

    def health(self) -> str | None:
        """None while the server is healthy, else why it is not."""
        return None

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Impl(ABC):
    """One interchangeable server implementation."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest

    @property
    def name(self) -> str:
        return self.manifest.name

    def unavailable_reason(self, host: HostCapabilities) -> str | None:
        """Why this impl cannot run here, or None.  The default checks the manifest."""
        return unmet_requirements(self.manifest, host)

    def prepare(self) -> None:  # noqa: B027  (optional hook: most impls build nothing)
        """Build whatever the impl needs (cached); raise ImplError on failure."""

    @abstractmethod
    def start(self, config: ServerConfig) -> RunningServer: ...


def unmet_requirements(manifest: Manifest, host: HostCapabilities) -> str | None:
    req = manifest.requires
    if req.root and not host.is_root:
        return "needs root"
    if req.loadable_modules and not host.loadable_modules:
        return host.modules_reason
    if req.bpf and not host.bpf:
        return host.bpf_reason
    missing = [cmd for cmd in req.commands if not host.has_command(cmd)]
    if missing:
        return f"missing command(s): {', '.join(missing)}"
    absent = [pkg for pkg in req.python if not host.has_python_package(pkg)]
    if absent:
        return f"Python package(s) not installed: {', '.join(absent)}"
    return None
