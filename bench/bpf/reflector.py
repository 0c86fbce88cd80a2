"""The running side of the eBPF impls: a HELLO reflector attached to an interface, with no
server process.  Its cost shows in softirq CPU time and in the program's BPF run time.

The attachment is held by an idle hb-bpfctl process (see bench.bpf.control): it sleeps until
stopped and does no work per request, so it is not accounted as a server."""

from __future__ import annotations

import contextlib
from pathlib import Path

from bench.bpf import BpfError
from bench.bpf.build import build_bpf_object, clang, loader_unavailable_reason
from bench.bpf.control import TcAttachment, XdpAttachment, read_counters
from bench.host.capabilities import HostCapabilities
from bench.impl.api import Accounting, Impl, ImplError, RunningServer
from bench.native.build import BuildError

NO_PROCESS_NOTE = "no server process: cost shows in softirq CPU and BPF run time"

Attachment = XdpAttachment | TcAttachment


class BpfReflector(RunningServer):
    """An attached reflector; ``stop`` detaches it (idempotent, bounded: its holders are
    stopped with SIGTERM, then SIGKILL after a grace period)."""

    def __init__(self, attachment: Attachment, helpers: tuple[Attachment, ...] = ()) -> None:
        self.attachment = attachment
        self.helpers = helpers  # e.g. the pass-through program on a veth peer
        self._last: dict[str, int] = {}

    @property
    def prog_id(self) -> int:
        return self.attachment.prog_id

    def accounting(self) -> Accounting:
        note = NO_PROCESS_NOTE
        for helper in self.helpers:
            note += (
                f"; pass-through XDP program {helper.prog_id} on {helper.ifname} "
                "(the veth peer, client side) not counted"
            )
        return Accounting(bpf_prog_ids=(self.prog_id,), note=note)

    def counters(self) -> dict[str, int]:
        """answered / passed / rejected / declined_*, summed over CPUs (the last reading once
        stopped)."""
        if not self.attachment.detached:
            with contextlib.suppress(BpfError):
                self._last = read_counters(self.attachment.map_id)
        return dict(self._last)

    def health(self) -> str | None:
        if self.attachment.detached:
            return "detached"
        return self.attachment.problem()

    def stop(self) -> None:
        if self.attachment.detached:
            return
        self.counters()
        errors: list[str] = []
        for attachment in (self.attachment, *self.helpers):
            try:
                attachment.detach()
            except BpfError as exc:
                attachment.detached = True  # stop is idempotent: the ledger keeps the record
                errors.append(f"{attachment.ifname}: {exc}")
        if errors:
            raise ImplError(f"detaching failed (left for sweep): {'; '.join(errors)}")


class ReflectorImpl(Impl):
    """What the XDP and the tc impl share: building the object and the loader."""

    source_name = ""

    def unavailable_reason(self, host: HostCapabilities) -> str | None:
        reason = super().unavailable_reason(host)
        if reason:
            return reason
        return loader_unavailable_reason()

    def prepare(self) -> None:
        try:
            clang()
            self.obj = build_bpf_object(self.source)
        except BuildError as exc:
            raise ImplError(str(exc)) from exc

    @property
    def source(self) -> Path:
        return self.manifest.folder / self.source_name
