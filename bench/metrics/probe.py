"""The per-phase probe the runner uses: start before a measured phase, stop after it.

Every figure is a delta over the phase.  A figure that cannot be measured here, or that
has no subject (no server process for eBPF impls, no kernel threads for user-space ones),
is None and ``notes`` says why; it is never reported as 0.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.bpf import BpfError
from bench.bpf.progstats import ProgStats, total_stats
from bench.impl.api import Accounting
from bench.metrics import bpf, ctxswitch, migrations, perf, procstat, taskcpu, tasks
from bench.metrics.syscalls import EagainCounter, SyscallCounter


@dataclass(frozen=True)
class PhaseMetrics:
    """What one measured phase cost.

    ``cpu_ns`` is system-wide over all CPUs (kernel threads and softirq work belong to no
    process): user (incl. nice), system, softirq, irq, steal, idle, iowait and
    total = user + system + softirq + irq + steal; ``cpu_ns_by_cpu`` the same per CPU.
    ``server_cpu_ns`` covers the server's threads and its kernel threads.
    ``bpf_run_ns``/``bpf_run_cnt`` are summed over the accounted BPF programs.
    With the server on another host, the server figures are that host's and
    ``server_host_cpu_ns_by_cpu`` its CPU by CPU (``cpu_ns`` stays this host's).
    ``*_eagain_syscalls`` are the syscalls (of those counted in ``*_syscalls``) that
    returned EAGAIN: polls that found nothing, not on a request's path.
    """

    wall_s: float
    server_syscalls: int | None
    client_syscalls: int | None
    server_ctx_switches: int | None
    client_ctx_switches: int | None
    kernel_thread_ctx_switches: int | None
    system_ctx_switches: int
    cpu_ns: dict[str, float]
    cpu_ns_by_cpu: dict[int, dict[str, float]]
    server_cpu_ns: int | None
    client_cpu_ns: int | None
    bpf_run_ns: int | None
    bpf_run_cnt: int | None
    notes: tuple[str, ...] = field(default=())
    # the server host's CPU by CPU, when the server ran on another host than the client
    server_host_cpu_ns_by_cpu: dict[int, dict[str, float]] | None = None
    server_eagain_syscalls: int | None = None
    client_eagain_syscalls: int | None = None
    # CPU migrations of the server's and the client's threads (pinned: should be none)
    server_migrations: int | None = None
    client_migrations: int | None = None


class _Figure:
    """One per-process figure of one party: a perf counter, or /proc snapshots as fallback."""

    def __init__(
        self,
        party: str,
        what: str,
        pids: tuple[int, ...],
        make: Callable[[tuple[int, ...]], perf.TaskCounters],
        snapshot: Callable[[tuple[int, ...]], tasks.ThreadValues] | None,
    ) -> None:
        self.party = party
        self.what = what
        self.pids = pids
        self._make = make
        self._snapshot = snapshot
        self.counter: perf.TaskCounters | None = None
        self.why = ""
        self._start: tasks.ThreadValues = {}

    def open(self, stack: contextlib.ExitStack) -> None:
        if not self.pids:
            return
        try:
            counter = self._make(self.pids)
            counter.open()
        except OSError as e:
            self.why = f"{self.party} {self.what} not measurable: {e.strerror or e}"
            return
        self.counter = counter
        stack.callback(counter.close)

    def snap(self) -> None:
        if self.pids and self.counter is None and self._snapshot is not None:
            self._start = self._snapshot(self.pids)

    def start(self) -> None:
        if self.counter is not None:
            self.counter.start()

    def halt(self) -> None:
        if self.counter is not None:
            with contextlib.suppress(OSError):
                self.counter.halt()

    def stop(self, notes: list[str]) -> int | None:
        if not self.pids:
            return None
        gone = [pid for pid in self.pids if not tasks.exists(pid)]
        if self.counter is not None:
            try:
                value = self.counter.stop()
            except OSError as e:
                notes.append(f"{self.party} {self.what} counters not readable: {e}")
                return None
            if gone:
                notes.append(f"{self.party} process(es) {gone} exited during the phase")
            return value
        if self._snapshot is None:
            notes.append(self.why)
            return None
        if gone:
            notes.append(f"{self.party} process(es) {gone} exited during the phase: no {self.what}")
            return None
        d = tasks.delta(self._start, self._snapshot(self.pids))
        if d.lost:
            notes.append(
                f"{d.lost} {self.party} thread(s) exited during the phase: {self.what} partial"
            )
        return d.value


class _Party:
    """Syscalls (those that returned EAGAIN apart), context switches and CPU time of one
    accounted party (server or client)."""

    def __init__(self, name: str, pids: tuple[int, ...]) -> None:
        self.name = name
        self.pids = pids
        self.syscalls = _Figure(name, "syscalls", pids, SyscallCounter, None)
        self.ctx = _Figure(name, "context switches", pids, ctxswitch.counters, ctxswitch.snapshot)
        self.cpu = _Figure(name, "CPU time", pids, taskcpu.counters, taskcpu.snapshot)
        self.eagain = _Figure(name, "EAGAIN syscalls", pids, EagainCounter, None)
        self.migrations = _Figure(
            name, "CPU migrations", pids, migrations.counters, migrations.snapshot
        )
        self.figures = (self.syscalls, self.eagain, self.ctx, self.cpu, self.migrations)


class PhaseProbe:
    """Measures one phase for a server described by ``accounting`` (and its client).

    ``start`` opens the counters (a few ms) and takes the first snapshots; ``stop``
    returns the PhaseMetrics and releases everything.  With BPF programs to account,
    kernel.bpf_stats_enabled is set for the phase unless ``enable_bpf_stats`` is False.
    Usable as a context manager: ``with PhaseProbe(acc) as probe: ...; m = probe.stop()``.
    """

    def __init__(
        self,
        accounting: Accounting,
        client_pid: int | None = None,
        *,
        enable_bpf_stats: bool = True,
    ) -> None:
        self.accounting = accounting
        self.client_pid = client_pid
        self.enable_bpf_stats = enable_bpf_stats
        self.metrics: PhaseMetrics | None = None
        self._server = _Party("server", tuple(accounting.pids))
        self._client = _Party("client", (client_pid,) if client_pid is not None else ())
        self._kernel_ctx: tasks.ThreadValues = {}
        self._kernel_cpu: tasks.ThreadValues = {}
        self._stack = contextlib.ExitStack()
        self._bpf_on = False
        self._bpf_start: ProgStats | None = None
        self._bpf_note = ""
        self._stat_start: procstat.Snapshot | None = None
        self._t0 = 0.0
        self._started = False

    # -- start ---------------------------------------------------------------------------

    def _start_bpf(self) -> None:
        ids = self.accounting.bpf_prog_ids
        if not ids:
            return
        if self.enable_bpf_stats:
            self._bpf_on = self._stack.enter_context(bpf.bpf_stats_enabled())
        else:
            self._bpf_on = bool(bpf.stats_enabled())
        if not self._bpf_on:
            self._bpf_note = "BPF run time not measurable: kernel.bpf_stats_enabled is off"
            return
        try:
            self._bpf_start = total_stats(ids)
        except (BpfError, OSError, ValueError) as e:
            self._bpf_note = f"BPF run time not readable: {e}"

    def start(self) -> None:
        if self._started:
            raise RuntimeError("PhaseProbe already started")
        self._started = True
        try:
            figures = [*self._server.figures, *self._client.figures]
            for figure in figures:
                figure.open(self._stack)
            self._start_bpf()
            for figure in figures:
                figure.snap()
            kernel_tids = self.accounting.kernel_tids
            self._kernel_ctx = ctxswitch.snapshot_kernel_threads(kernel_tids)
            self._kernel_cpu = taskcpu.snapshot_kernel_threads(kernel_tids)
            self._stat_start = procstat.snapshot()
            for figure in figures:
                figure.start()
            self._t0 = time.perf_counter()
        except BaseException:
            self.close()
            raise

    # -- stop ----------------------------------------------------------------------------

    def _stop_bpf(self, notes: list[str]) -> tuple[int | None, int | None]:
        ids = self.accounting.bpf_prog_ids
        if not ids:
            notes.append("no BPF programs accounted: BPF run time not applicable")
            return None, None
        if self._bpf_start is None:
            notes.append(self._bpf_note)
            return None, None
        try:
            end = total_stats(ids)
        except (BpfError, OSError, ValueError) as e:
            notes.append(f"BPF run time not readable at the end of the phase: {e}")
            return None, None
        return (
            max(0, end.run_time_ns - self._bpf_start.run_time_ns),
            max(0, end.run_cnt - self._bpf_start.run_cnt),
        )

    def stop(self) -> PhaseMetrics:
        if not self._started or self._stat_start is None:
            raise RuntimeError("PhaseProbe not started")
        if self.metrics is not None:
            return self.metrics
        try:
            return self._stop()
        finally:
            self.close()

    def _stop(self) -> PhaseMetrics:
        assert self._stat_start is not None
        wall = time.perf_counter() - self._t0
        notes: list[str] = []
        acc = self.accounting
        srv, cli = self._server, self._client
        for figure in (*srv.figures, *cli.figures):
            figure.halt()
        server_sys, server_eagain, server_ctx, server_cpu_own, server_moves = (
            f.stop(notes) for f in srv.figures
        )
        client_sys, client_eagain, client_ctx, client_cpu, client_moves = (
            f.stop(notes) for f in cli.figures
        )
        stat = procstat.delta(self._stat_start, procstat.snapshot())
        kernel_ctx: int | None = None
        kernel_cpu: int | None = None
        if acc.kernel_tids:
            kernel_ctx_stop = ctxswitch.snapshot_kernel_threads(acc.kernel_tids)
            kernel_cpu_stop = taskcpu.snapshot_kernel_threads(acc.kernel_tids)
            gone = [t for t in acc.kernel_tids if (t, t) not in kernel_ctx_stop]
            if gone:
                notes.append(f"kernel thread(s) {gone} gone during the phase: no switches or CPU")
            else:
                kernel_ctx = tasks.delta(self._kernel_ctx, kernel_ctx_stop).value
                kernel_cpu = tasks.delta(self._kernel_cpu, kernel_cpu_stop).value
        bpf_ns, bpf_cnt = self._stop_bpf(notes)

        if not self._server.pids:
            why = acc.note or "the server runs in the kernel"
            notes.append(f"no server process: server syscalls and context switches n/a ({why})")
        if not self._client.pids:
            notes.append("no client process given: client figures not measured")
        if not acc.kernel_tids:
            notes.append("no kernel threads accounted: kernel-thread switches n/a")
        server_cpu = _server_cpu(srv.pids, server_cpu_own, acc.kernel_tids, kernel_cpu)
        if server_cpu is None and not self._server.pids and not acc.kernel_tids:
            notes.append("no server task: server CPU time shows only in system-wide cpu_ns")

        self.metrics = PhaseMetrics(
            wall_s=wall,
            server_syscalls=server_sys,
            client_syscalls=client_sys,
            server_ctx_switches=server_ctx,
            client_ctx_switches=client_ctx,
            kernel_thread_ctx_switches=kernel_ctx,
            system_ctx_switches=stat.ctxt,
            cpu_ns=stat.cpu_ns,
            cpu_ns_by_cpu=stat.cpu_ns_by_cpu,
            server_cpu_ns=server_cpu,
            client_cpu_ns=client_cpu,
            bpf_run_ns=bpf_ns,
            bpf_run_cnt=bpf_cnt,
            notes=tuple(dict.fromkeys(n for n in notes if n)),
            server_eagain_syscalls=server_eagain,
            client_eagain_syscalls=client_eagain,
            server_migrations=server_moves,
            client_migrations=client_moves,
        )
        return self.metrics

    # -- cleanup -------------------------------------------------------------------------

    def close(self) -> None:
        """Releases counters and restores kernel.bpf_stats_enabled; safe to call twice."""
        self._stack.close()

    def __enter__(self) -> PhaseProbe:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _server_cpu(
    pids: tuple[int, ...], pid_ns: int | None, kernel_tids: tuple[int, ...], kernel_ns: int | None
) -> int | None:
    """CPU of the server's processes plus its kernel threads; None if any part is missing."""
    if not pids and not kernel_tids:
        return None
    if (pids and pid_ns is None) or (kernel_tids and kernel_ns is None):
        return None
    return (pid_ns or 0) + (kernel_ns or 0)
