"""``bench fuzz``: hostile datagrams against impls, each started through the runner's own
impl lifecycle (bench/runner/lifecycle.py) on a free port in each topology, fuzzed
(bench/fuzz/exchange.py), checked (bench/fuzz/checks.py) and stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from bench.errors import UsageError
from bench.fuzz.checks import (
    FuzzResult,
    apply_spoofed,
    apply_tally,
    bpf_attachment,
    judge,
    socket_drops,
)
from bench.fuzz.corpus import Corpus
from bench.fuzz.exchange import Exchange, client_socket, final_hello
from bench.fuzz.spoofed import Endpoints, run_spoofed
from bench.host.kernel_log import KernelLogWatch, marked_watch
from bench.impl.api import ImplError, RunningServer
from bench.impl.registry import Entry, discover
from bench.runner.lifecycle import prepare, running_server, select
from bench.system.ports import free_udp_port
from bench.topology import Topology, TopologyError, open_topology

MAX_COUNT = 10_000_000


def time_limit_s(count: int) -> float:
    """Upper bound on one impl's fuzz phase: generous, but finite."""
    return 60.0 + count / 1000.0


def check_count(count: int) -> None:
    if not 1 <= count <= MAX_COUNT:
        raise UsageError(f"--count {count}: must be 1..{MAX_COUNT:,}")


def fuzz_server(
    server: RunningServer,
    *,
    impl: str,
    kind: str,
    topology: str,
    addr: str,
    port: int,
    client_netns: str | None,
    server_netns: str | None,
    interface: str,
    count: int,
    seed: int,
    watch: KernelLogWatch | None = None,
    client_interface: str = "lo",
    client_addr: str | None = None,
) -> FuzzResult:
    """Fuzz an already running ``server``; the caller starts and stops it.

    After the malformed stream, valid requests from hostile sources are injected on the
    client's ``client_interface`` (bench/fuzz/spoofed.py); ``client_addr`` is the client's
    normal source (the server's address when None, as on lo)."""
    result = FuzzResult(impl=impl, topology=topology, status="fail", seed=seed)
    accounting = server.accounting()
    drops_before = socket_drops(accounting.pids, port)
    corpus = Corpus(seed)
    deadline = time.monotonic() + time_limit_s(count)
    with client_socket(addr, port, client_netns) as sock:
        exchange = Exchange(sock, corpus, health=server.health, deadline=deadline)
        tally = exchange.run(corpus.stream(count))
        result.alive = server.health() is None
        result.final_hello = final_hello(sock, corpus) if result.alive else False
    apply_tally(result, tally)
    if result.alive:
        ends = Endpoints(
            client_netns=client_netns,
            client_interface=client_interface,
            client_addr=client_addr or addr,
            server_netns=server_netns,
            server_interface=interface,
            server_addr=addr,
            port=port,
        )
        try:
            apply_spoofed(result, run_spoofed(ends))
        except OSError as exc:  # e.g. no AF_PACKET without CAP_NET_RAW: not checked, said so
            result.spoofed_notes.append(f"spoofed sources not checked: {exc}")
        if server.health() is not None:
            result.alive = False
    drops_after = socket_drops(accounting.pids, port)
    if drops_before is not None and drops_after is not None:
        result.server_socket_drops = drops_after - drops_before
    try:
        result.counters = dict(server.counters())
    except Exception as exc:  # counters of a broken server must not hide the verdict
        result.failures.append(f"counters not readable: {exc}")
    if kind == "ebpf" or accounting.bpf_prog_ids:
        if accounting.bpf_prog_ids:
            result.bpf_attached, result.bpf_detail = bpf_attachment(
                accounting, interface, server_netns
            )
        else:
            result.bpf_attached, result.bpf_detail = False, "the impl reported no BPF program ids"
    if watch is not None:
        result.kernel_log_readable = watch.available
        result.kernel_log_problems = list(watch.new_problems())
    judge(result, tally)
    return result


def fuzz_impl(entry: Entry, topo: Topology, count: int, seed: int) -> FuzzResult:
    """Start ``entry``'s impl in ``topo`` on a free port, fuzz it, stop it."""
    name = entry.name
    ready = prepare(entry)
    if ready.impl is None:
        reason = ready.reason or "unavailable"
        if ready.build_failed:
            return FuzzResult(name, topo.name, "fail", reason, seed, failures=[reason])
        return FuzzResult(name, topo.name, "skipped", reason, seed)
    port = free_udp_port()
    watch = marked_watch()
    try:
        with running_server(ready.impl, topo.server_config(port)) as server:
            result = fuzz_server(
                server,
                impl=name,
                kind=entry.manifest.kind,
                topology=topo.name,
                addr=topo.server_addr,
                port=port,
                client_netns=topo.client_netns,
                server_netns=topo.server_netns,
                interface=topo.server_interface,
                count=count,
                seed=seed,
                watch=watch,
                client_interface=topo.client_interface or "lo",
                client_addr=topo.client_addr,
            )
    except ImplError as exc:  # raised by start, or by stop (e.g. a module that will not unload)
        reason = f"server failed to start or stop: {exc}"
        return FuzzResult(name, topo.name, "fail", reason, seed, failures=[reason])
    if watch is None:
        result.kernel_log_readable = False
    return result


def run_fuzz(
    names: Sequence[str],
    topologies: Sequence[str],
    count: int,
    seed: int,
    progress: Callable[[str], None] = lambda _line: None,
) -> list[FuzzResult]:
    """Fuzz the named impls (all registered ones when empty) in every topology."""
    check_count(count)
    selected = select(names, discover())
    results: list[FuzzResult] = []
    for topo_name in topologies:
        try:
            with open_topology(topo_name) as topo:
                for entry in selected:
                    if entry.available:
                        progress(f"fuzz {entry.name} on {topo_name}: {count:,} malformed datagrams")
                    results.append(fuzz_impl(entry, topo, count, seed))
        except TopologyError as exc:
            for entry in selected:
                results.append(
                    FuzzResult(
                        entry.name, topo_name, "skipped", f"topology {topo_name}: {exc}", seed
                    )
                )
    return results
