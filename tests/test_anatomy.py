"""The anatomy's analysis on synthetic events: records read back as written, windows
assembled by seq, stages that partition the traced round trip exactly (missing and
out-of-order milestones included), the user-space and kernel-side paths (XDP, a softirq
handler, a kernel thread blocking or polling), the server model, the summaries."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.anatomy.events import RECORD, Dir, Event, Kind, Role, parse, windows
from bench.anatomy.measure import module_handler, server_model
from bench.anatomy.stages import (
    HANDLER_STAGES,
    KTHREAD,
    KTHREAD_POLL,
    KTHREAD_POLL_STAGES,
    KTHREAD_STAGES,
    SOFTIRQ,
    UNHOOKED_STAGES,
    USER,
    USER_STAGES,
    XDP,
    anatomy,
    partition,
    stage_names,
)
from bench.anatomy.summary import share_on, stage_summaries, tail_anatomy
from bench.anatomy.tracer import Tracer
from bench.cli import main
from bench.errors import EXIT_USAGE
from bench.impl.api import Accounting, RunningServer

RECVMMSG, SENDMMSG, RECVFROM, SENDTO = 299, 307, 45, 44
SEQ = 16


def ev(
    kind: Kind, ts: int, *, role: Role = Role.DATAGRAM, nr: int = 0, aux: int = 0,
    ret: int = 0, cpu: int = 0, polls: int = 0, seq: int = SEQ,
) -> Event:  # fmt: skip
    return Event(ts, seq, aux, ret, kind, cpu, 7, role, nr, polls)


def blocking_exchange(seq: int = SEQ, base: int = 1_000_000, delay: int = 0) -> list[Event]:
    """A blocking server's request/reply: every milestone, in order, 10 ns apart or so."""
    t = base
    return [
        ev(Kind.OPEN, t + 5, role=Role.CLIENT, aux=t, seq=seq),
        ev(Kind.XMIT, t + 10, nr=Dir.REQUEST, seq=seq),
        ev(Kind.RX, t + 20, nr=Dir.REQUEST, cpu=1, seq=seq),
        ev(Kind.ENQUEUE, t + 30, nr=Dir.REQUEST, cpu=1, seq=seq),
        ev(Kind.WAKING, t + 32, role=Role.SERVER, cpu=1, seq=seq),
        ev(Kind.SYSCALL, t + 35, role=Role.CLIENT, nr=SENDMMSG, aux=t, ret=1, seq=seq),
        ev(Kind.SWITCH_IN, t + 50, role=Role.SERVER, cpu=1, seq=seq),
        ev(Kind.SYSCALL, t + 60, role=Role.SERVER, nr=RECVFROM, aux=t - 500, ret=64, seq=seq),
        ev(
            Kind.SYSCALL,
            t + 80 + delay,
            role=Role.SERVER,
            nr=SENDTO,
            aux=t + 70 + delay,
            ret=64,
            seq=seq,
        ),
        ev(Kind.XMIT, t + 75 + delay, nr=Dir.REPLY, seq=seq),
        ev(Kind.ENQUEUE, t + 78 + delay, nr=Dir.REPLY, seq=seq),
        ev(Kind.WAKING, t + 79 + delay, role=Role.CLIENT, seq=seq),
        ev(Kind.SWITCH_IN, t + 90 + delay, role=Role.CLIENT, seq=seq),
        ev(
            Kind.CLOSE,
            t + 100 + delay,
            role=Role.CLIENT,
            nr=RECVMMSG,
            aux=t + 40,
            ret=1,
            seq=seq,
        ),
    ]


def test_records_read_back_as_written_and_a_torn_record_is_dropped() -> None:
    events = blocking_exchange()
    raw = b"".join(e.pack() for e in events)
    assert RECORD.size == 56
    assert parse(raw) == events
    assert parse(raw + raw[:20]) == events


def test_windows_need_an_open_and_a_close() -> None:
    whole = blocking_exchange(seq=8)
    torn = [e for e in blocking_exchange(seq=16, base=2_000_000) if e.kind != Kind.CLOSE]
    found, incomplete = windows([*reversed(whole), *torn])
    assert [w.seq for w in found] == [8]
    assert incomplete == 1
    assert found[0].t0 == 1_000_000 and found[0].end == 1_000_100
    assert list(found[0].events) == sorted(whole, key=lambda e: (e.ts, e.kind))


def test_a_blocking_server_s_stages_in_path_order() -> None:
    (w,), _ = windows(blocking_exchange())
    r = anatomy(w, server_in_user_space=True, handler_hooked=False)
    assert tuple(r.stages) == USER_STAGES
    assert r.stages == {
        "client send": 10,
        "stack to server socket": 20,
        "server socket queue": 2,
        "server wake-up": 18,
        "server receive": 10,
        "server user space": 10,
        "server send": 5,
        "stack to client socket": 3,
        "client socket queue": 1,
        "client wake-up": 11,
        "client receive": 10,
    }
    assert r.missing == ()
    assert sum(r.stages.values()) == r.rtt_ns == 100
    assert r.rx_cpu == 1 and r.server_cpu == 0


def test_a_server_that_never_sleeps_queues_until_its_receive_s_entry() -> None:
    events = [
        e for e in blocking_exchange() if not (e.role == Role.SERVER and e.kind != Kind.SYSCALL)
    ]
    events = [
        ev(Kind.SYSCALL, e.ts, role=Role.SERVER, nr=RECVFROM, aux=e.ts - 15, ret=64, polls=9)
        if e.nr == RECVFROM
        else e
        for e in events
    ]
    (w,), _ = windows(events)
    r = anatomy(w, server_in_user_space=True, handler_hooked=False)
    assert r.stages["server socket queue"] == 15  # enqueued at +30, entered at +45
    assert r.stages["server wake-up"] == 0
    assert r.stages["server receive"] == 15
    assert r.server_polls == 9
    assert sum(r.stages.values()) == r.rtt_ns


def test_the_server_s_delay_lands_in_its_user_space_stage_only() -> None:
    (plain,), _ = windows(blocking_exchange())
    (slow,), _ = windows(blocking_exchange(delay=5000))
    a = anatomy(plain, True, False).stages
    b = anatomy(slow, True, False).stages
    assert {k for k in a if a[k] != b[k]} == {"server user space"}
    assert b["server user space"] - a["server user space"] == 5000


def test_a_kernel_side_server_with_and_without_its_handler_traced() -> None:
    t = 1_000_000
    events = [
        ev(Kind.OPEN, t + 5, role=Role.CLIENT, aux=t),
        ev(Kind.XMIT, t + 10, nr=Dir.REQUEST),
        ev(Kind.RX, t + 20, nr=Dir.REQUEST, cpu=1),
        ev(Kind.XDP_ENTER, t + 22, nr=Dir.REQUEST, cpu=1),
        ev(Kind.XDP_EXIT, t + 25, nr=Dir.REPLY, cpu=1, ret=3),
        ev(Kind.RX, t + 40, nr=Dir.REPLY, cpu=1),
        ev(Kind.ENQUEUE, t + 50, nr=Dir.REPLY, cpu=1),
        ev(Kind.WAKING, t + 51, role=Role.CLIENT, cpu=1),
        ev(Kind.SWITCH_IN, t + 70, role=Role.CLIENT),
        ev(Kind.CLOSE, t + 80, role=Role.CLIENT, nr=RECVMMSG, aux=t + 30, ret=1),
    ]
    (w,), _ = windows(events)
    hooked = anatomy(w, server_in_user_space=False, handler_hooked=True)
    assert tuple(hooked.stages) == HANDLER_STAGES
    assert hooked.stages["in-kernel handler"] == 3
    assert hooked.server_cpu == 1
    bare = anatomy(w, server_in_user_space=False, handler_hooked=False)
    assert tuple(bare.stages) == UNHOOKED_STAGES
    assert bare.stages["stack to receive processing"] == 10
    assert bare.stages["receive, handler and way back"] == 30
    for r in (hooked, bare):
        assert sum(r.stages.values()) == r.rtt_ns == 80


def test_a_missing_milestone_leaves_a_zero_stage_named_missing() -> None:
    events = [e for e in blocking_exchange() if not (e.kind == Kind.XMIT and e.nr == Dir.REPLY)]
    (w,), _ = windows(events)
    r = anatomy(w, True, False)
    assert r.missing == ("server send",)
    assert r.stages["server send"] == 0
    assert sum(r.stages.values()) == r.rtt_ns


milestone = st.one_of(st.none(), st.integers(min_value=-1000, max_value=3000))


@given(
    t0=st.integers(min_value=0, max_value=1000),
    length=st.integers(min_value=0, max_value=2000),
    times=st.lists(milestone, min_size=1, max_size=12),
)
def test_stages_always_partition_the_round_trip(
    t0: int, length: int, times: list[int | None]
) -> None:
    end = t0 + length
    stages, missing = partition(t0, end, [(f"s{i}", t) for i, t in enumerate(times)])
    assert sum(stages.values()) == length
    assert all(v >= 0 for v in stages.values())
    assert set(missing) <= set(stages)


def test_summaries_and_the_tail_anatomy() -> None:
    requests = []
    for i in range(200):
        (w,), _ = windows(blocking_exchange(seq=i, delay=10_000 if i == 7 else i))
        requests.append(anatomy(w, True, False))
    summary = {s.name: s for s in stage_summaries(requests, USER_STAGES)}
    assert summary["client send"].ns.p50 == 10
    assert summary["server user space"].ns.p99 > summary["server user space"].ns.p50
    tail = tail_anatomy(requests, USER_STAGES)
    assert tail.tail_count == 2 and tail.median_count == 20
    assert tail.tail["server user space"] > 10 * tail.median["server user space"]
    assert share_on(requests, "rx_cpu", 1) == 1.0
    assert share_on(requests, "rx_cpu", 0) == 0.0


def test_a_server_send_that_returns_after_the_window_is_timed_from_its_entry() -> None:
    """The reply handled inside the server's own send: the client is done before the
    server's send returns, so only the entry is in the window."""
    events = [e for e in blocking_exchange() if e.nr != SENDTO]
    events.append(ev(Kind.SEND_ENTER, 1_000_070, role=Role.SERVER, nr=SENDTO, aux=1_000_070))
    (w,), _ = windows(events)
    r = anatomy(w, True, False)
    assert r.missing == ()
    assert r.stages["server user space"] == 10
    assert r.stages["server send"] == 5
    assert sum(r.stages.values()) == r.rtt_ns


def test_the_command_refuses_requests_too_short_for_the_seq(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["anatomy", "--impl", "blocking-c", "--size", "10"]) == EXIT_USAGE
    assert "--size must be" in capsys.readouterr().err


# --- kernel-side servers: a kernel thread, a softirq handler ---------------------------------

KTHREAD_TID = 99


def kthread_exchange(*, sleeps: bool = True, seq: int = SEQ, base: int = 1_000_000) -> list[Event]:
    """A kernel thread's request/reply (kernel_recvmsg/kernel_sendmsg, no syscalls)."""
    t = base
    server = [
        ev(Kind.WAKING, t + 32, role=Role.SERVER, cpu=1, seq=seq),
        ev(Kind.WAKEUP, t + 33, role=Role.SERVER, cpu=1, seq=seq),
        ev(Kind.SWITCH_IN, t + 50, role=Role.SERVER, cpu=1, seq=seq),
    ]
    return [
        ev(Kind.OPEN, t + 5, role=Role.CLIENT, aux=t, seq=seq),
        ev(Kind.XMIT, t + 10, nr=Dir.REQUEST, seq=seq),
        ev(Kind.BACKLOG, t + 12, nr=Dir.REQUEST, seq=seq),
        ev(Kind.RX, t + 20, nr=Dir.REQUEST, cpu=1, seq=seq),
        ev(Kind.ENQUEUE, t + 30, nr=Dir.REQUEST, cpu=1, seq=seq),
        *(server if sleeps else []),
        ev(Kind.SYSCALL, t + 35, role=Role.CLIENT, nr=SENDMMSG, aux=t, ret=1, seq=seq),
        ev(Kind.KRECV, t + 60, role=Role.SERVER, cpu=1, ret=64, polls=0 if sleeps else 40, seq=seq),
        ev(Kind.XMIT, t + 75, nr=Dir.REPLY, cpu=1, seq=seq),
        ev(Kind.RX, t + 76, nr=Dir.REPLY, cpu=1, seq=seq),
        ev(Kind.ENQUEUE, t + 78, nr=Dir.REPLY, cpu=1, seq=seq),
        ev(Kind.WAKING, t + 79, role=Role.CLIENT, cpu=1, seq=seq),
        ev(Kind.SWITCH_IN, t + 90, role=Role.CLIENT, seq=seq),
        ev(Kind.CLOSE, t + 100, role=Role.CLIENT, nr=RECVMMSG, aux=t + 40, ret=1, seq=seq),
    ]


def test_a_kernel_thread_s_stages_in_path_order() -> None:
    (w,), _ = windows(kthread_exchange())
    r = anatomy(w, server_in_user_space=False, handler_hooked=True, model=KTHREAD)
    assert tuple(r.stages) == KTHREAD_STAGES == stage_names(False, True, KTHREAD)
    assert r.stages == {
        "client send": 10,
        "stack to server socket": 20,
        "server socket queue": 2,
        "server wake-up": 18,
        "kernel receive": 10,
        "in-kernel handler": 15,
        "stack to client socket": 3,
        "client socket queue": 1,
        "client wake-up": 11,
        "client receive": 10,
    }
    assert r.missing == ()
    assert sum(r.stages.values()) == r.rtt_ns == 100
    assert r.rx_cpu == 1 and r.server_cpu == 1


def test_a_kernel_thread_that_was_running_has_no_wake_up() -> None:
    (w,), _ = windows(kthread_exchange(sleeps=False))
    r = anatomy(w, False, True, KTHREAD)
    assert r.stages["server socket queue"] == 30  # enqueued at +30, received at +60
    assert r.stages["server wake-up"] == r.stages["kernel receive"] == 0
    assert r.missing == ()
    assert sum(r.stages.values()) == r.rtt_ns


def test_a_polling_kernel_thread_queues_until_its_receive_returns() -> None:
    (w,), _ = windows(kthread_exchange(sleeps=False))
    r = anatomy(w, False, True, KTHREAD_POLL)
    assert tuple(r.stages) == KTHREAD_POLL_STAGES == stage_names(False, True, KTHREAD_POLL)
    assert r.stages["server socket queue"] == 30
    assert r.stages["in-kernel handler"] == 15
    assert r.server_polls == 40
    assert r.missing == ()
    assert sum(r.stages.values()) == r.rtt_ns == 100


def test_a_kernel_thread_without_its_receive_traced_keeps_the_sum() -> None:
    """The receive hook refused: the kernel receive is missing, the handler takes it."""
    events = [e for e in kthread_exchange() if e.kind != Kind.KRECV]
    (w,), _ = windows(events)
    r = anatomy(w, False, True, KTHREAD)
    assert r.missing == ("kernel receive",)
    assert r.stages["kernel receive"] == 0
    assert r.stages["in-kernel handler"] == 25  # switched in at +50, reply out at +75
    assert sum(r.stages.values()) == r.rtt_ns


def softirq_exchange(*, hooked: bool = True) -> list[Event]:
    """A module answering in softirq: its handler sends the reply before it returns."""
    t = 1_000_000
    handler = [ev(Kind.HANDLER, t + 22, nr=Dir.REQUEST, cpu=1)] if hooked else []
    return [
        ev(Kind.OPEN, t + 5, role=Role.CLIENT, aux=t),
        ev(Kind.XMIT, t + 10, nr=Dir.REQUEST),
        ev(Kind.RX, t + 20, nr=Dir.REQUEST, cpu=1),
        *handler,
        ev(Kind.XMIT, t + 30, nr=Dir.REPLY, cpu=1),
        ev(Kind.BACKLOG, t + 31, nr=Dir.REPLY, cpu=1),
        ev(Kind.RX, t + 40, nr=Dir.REPLY, cpu=1),
        ev(Kind.ENQUEUE, t + 50, nr=Dir.REPLY, cpu=1),
        ev(Kind.WAKING, t + 51, role=Role.CLIENT, cpu=1),
        ev(Kind.SWITCH_IN, t + 70, role=Role.CLIENT),
        ev(Kind.CLOSE, t + 80, role=Role.CLIENT, nr=RECVMMSG, aux=t + 35, ret=1),
    ]


def test_a_softirq_handler_runs_from_its_entry_to_the_reply_s_transmit() -> None:
    (w,), _ = windows(softirq_exchange())
    r = anatomy(w, server_in_user_space=False, handler_hooked=True, model=SOFTIRQ)
    assert tuple(r.stages) == HANDLER_STAGES == stage_names(False, True, SOFTIRQ)
    assert r.stages["stack to handler"] == 12
    assert r.stages["in-kernel handler"] == 8
    assert r.stages["stack to client socket"] == 20
    assert r.server_cpu == 1 and r.missing == ()
    assert sum(r.stages.values()) == r.rtt_ns == 80


def test_a_softirq_handler_not_traced_falls_back_to_the_unhooked_stages() -> None:
    (w,), _ = windows(softirq_exchange(hooked=False))
    r = anatomy(w, False, False, SOFTIRQ)
    assert tuple(r.stages) == UNHOOKED_STAGES == stage_names(False, False, SOFTIRQ)
    assert r.stages["stack to receive processing"] == 10
    assert r.stages["receive, handler and way back"] == 30
    assert sum(r.stages.values()) == r.rtt_ns == 80


@given(
    drop=st.sets(st.integers(min_value=0, max_value=13)),
    model=st.sampled_from([KTHREAD, KTHREAD_POLL]),
    sleeps=st.booleans(),
)
def test_kernel_thread_stages_sum_whatever_is_missing(
    drop: set[int], model: str, sleeps: bool
) -> None:
    events = kthread_exchange(sleeps=sleeps)
    kept = [e for i, e in enumerate(events) if i not in drop or e.kind in (Kind.OPEN, Kind.CLOSE)]
    (w,), _ = windows(kept)
    r = anatomy(w, False, True, model)
    assert tuple(r.stages) == stage_names(False, True, model)
    assert sum(r.stages.values()) == r.rtt_ns
    assert all(v >= 0 for v in r.stages.values())


class _Server(RunningServer):
    def __init__(self, accounting: Accounting) -> None:
        self._accounting = accounting

    def accounting(self) -> Accounting:
        return self._accounting

    def stop(self) -> None:
        pass


@pytest.mark.parametrize(
    ("impl", "accounting", "model"),
    [
        ("blocking-c", Accounting(pids=(10,)), USER),
        ("kmod-kthread", Accounting(kernel_tids=(11,)), KTHREAD),
        ("kmod-kthread-poll", Accounting(kernel_tids=(11,)), KTHREAD_POLL),
        ("ebpf-xdp", Accounting(bpf_prog_ids=(12,)), XDP),
        ("kmod-softirq", Accounting(), SOFTIRQ),
    ],
)
def test_the_server_model_follows_its_accounting_and_manifest(
    impl: str, accounting: Accounting, model: str
) -> None:
    assert server_model(impl, _Server(accounting), accounting) == model


def test_the_module_handler_is_its_one_encap_rcv_function(tmp_path: Path) -> None:
    kallsyms = tmp_path / "kallsyms"
    kallsyms.write_text(
        "0000000000000000 t hello_encap_rcv\t[hellobench_softirq]\n"
        "0000000000000000 t hello_reply\t[hellobench_softirq]\n"
        "0000000000000000 t other_encap_rcv\t[vxlan]\n"
        "0000000000000000 T udp_encap_rcv\n"
    )
    assert module_handler("hellobench_softirq", kallsyms) == "hello_encap_rcv"
    assert module_handler("absent", kallsyms) is None
    assert module_handler("hellobench_softirq", tmp_path / "missing") is None


def test_the_loader_s_hook_choices_are_named_as_the_result_keeps_them() -> None:
    tracer = Tracer(port=3000, every=8, handler="hello_encap_rcv", kernel_recv=True)
    tracer.ready = {
        "ready": True,
        "xdp": False,
        "enqueue": "fentry/sock_def_readable",
        "handler": "kprobe",
        "kernel_recv": "tp_btf",
    }
    assert tracer.hooks == {
        "enqueue": "fentry/sock_def_readable",
        "handler": "kprobe",
        "kernel_recv": "tp_btf/consume_skb",
    }
    tracer.ready = {"ready": True, "xdp": True, "enqueue": "tp_btf/sk_data_ready"}
    assert tracer.hooks == {
        "enqueue": "tp_btf/sk_data_ready",
        "handler": "fentry/fexit",
        "kernel_recv": "none",
    }
