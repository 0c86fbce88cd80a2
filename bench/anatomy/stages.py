"""One sampled request's stages: milestones along its path, each stage the time from the
previous milestone to its own, so that the stages partition the traced round trip (the
client's send syscall entry to the return of the receive that got the reply) and sum to
it exactly.

A milestone that was not seen (a hook that did not fire, an event over the window's cap)
takes the previous one's time: its stage is 0 and the request lists it as missing.  A
milestone seen out of order is clamped into [previous milestone, end], so every stage is
>= 0 and the sum stays exact.

User-space server (blocking-c, spin-c, ...): client send (send syscall entry -> the request
leaves the device), stack to the server socket (-> queued to the server's socket, with the
CPU that ran receive processing), server socket queue (-> the server's wake-up is issued,
or, for a server that never slept, the entry of the receive that got it), server wake-up
(sched_waking -> switched in), server receive (-> the receive returns), server user space
(-> the send syscall's entry), server send (-> the reply leaves the device), stack to the
client socket (-> queued to the client's socket), client socket queue, client wake-up and
client receive, the same as the server's.

Kernel-side server (XDP): client send, stack to the handler (-> the XDP program's entry),
in-kernel handler (-> its exit), stack to the client socket, then the client's stages.
Where the program's entry and exit cannot be traced, the stack stage is split at the
request's receive processing (netif_receive_skb) and the rest, handler included, runs to
the reply's queueing at the client socket.

Kernel module answering in softirq (a UDP encap_rcv handler): the same stage names, the
handler's entry (fentry or kprobe) ending the stack stage and the handler running to the
reply's transmit, which it makes itself (its return comes after: the reply is queued to a
backlog, delivered once the handler is done, inside "stack to the client socket").  Where
its entry cannot be traced, the unhooked stages above.

Kernel thread serving with kernel_recvmsg/kernel_sendmsg (kthread): client send, stack to
the server socket, server socket queue (-> the thread's wake-up is issued), server wake-up
(-> switched in), kernel receive (-> its receive has read the datagram), in-kernel
handler (-> the reply leaves the device: the answer and kernel_sendmsg's way down), then
stack to the client socket and the client's stages.  A polling thread (kthread-poll) never
sleeps: its socket queue runs to the receive that returned the datagram, and it has no
wake-up nor kernel receive stage.  A thread that was running when the datagram came (no
wake-up in the window) gets a zero wake-up, its queue running to its receive's return.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.anatomy.events import RECV_SYSCALLS, SEND_SYSCALLS, Dir, Kind, Role, Window

CLIENT_STAGES = ("client socket queue", "client wake-up", "client receive")
USER_STAGES = (
    "client send", "stack to server socket", "server socket queue", "server wake-up",
    "server receive", "server user space", "server send", "stack to client socket",
    *CLIENT_STAGES,
)  # fmt: skip
HANDLER_STAGES = (
    "client send", "stack to handler", "in-kernel handler", "stack to client socket",
    *CLIENT_STAGES,
)  # fmt: skip
UNHOOKED_STAGES = (
    "client send", "stack to receive processing", "receive, handler and way back",
    *CLIENT_STAGES,
)  # fmt: skip
KTHREAD_STAGES = (
    "client send", "stack to server socket", "server socket queue", "server wake-up",
    "kernel receive", "in-kernel handler", "stack to client socket", *CLIENT_STAGES,
)  # fmt: skip
KTHREAD_POLL_STAGES = (
    "client send", "stack to server socket", "server socket queue", "in-kernel handler",
    "stack to client socket", *CLIENT_STAGES,
)  # fmt: skip

# the server models: how the request is served, and so which milestones it has
USER = "user-space"
XDP = "xdp"
SOFTIRQ = "softirq"
KTHREAD = "kthread"
KTHREAD_POLL = "kthread-poll"
MODELS = (USER, XDP, SOFTIRQ, KTHREAD, KTHREAD_POLL)


def stage_names(
    server_in_user_space: bool, handler_hooked: bool, model: str | None = None
) -> tuple[str, ...]:
    model = model or (USER if server_in_user_space else XDP)
    if model == USER:
        return USER_STAGES
    if model == KTHREAD:
        return KTHREAD_STAGES
    if model == KTHREAD_POLL:
        return KTHREAD_POLL_STAGES
    return HANDLER_STAGES if handler_hooked else UNHOOKED_STAGES


@dataclass(frozen=True)
class RequestAnatomy:
    """One sampled request: its traced round trip and stages (ns, in path order)."""

    seq: int
    rtt_ns: int
    stages: dict[str, int]
    missing: tuple[str, ...]
    rx_cpu: int | None  # where the request's receive processing ran
    server_cpu: int | None  # where the server (or the handler) handled it
    server_polls: int  # empty (EAGAIN) receives of the server in the window
    client_polls: int


Milestone = tuple[str, int | None]


def partition(
    t0: int, end: int, milestones: Sequence[Milestone]
) -> tuple[dict[str, int], list[str]]:
    """Stages from milestones (name, time the stage ends); the last ends at ``end``."""
    stages: dict[str, int] = {}
    missing: list[str] = []
    prev = t0
    for i, (name, at) in enumerate(milestones):
        if i == len(milestones) - 1:
            at = end
        if at is None:
            missing.append(name)
            at = prev
        at = min(max(at, prev), end)
        stages[name] = at - prev
        prev = at
    return stages, missing


def _ts(event: object) -> int | None:
    return getattr(event, "ts", None)


def _client_side(w: Window, enqueued: int | None) -> list[Milestone]:
    after = enqueued if enqueued is not None else w.t0
    waking = w.first(Kind.WAKING, role=Role.CLIENT, after=after)
    switched = waking and w.first(Kind.SWITCH_IN, role=Role.CLIENT, after=waking.ts)
    entered = w.close.aux
    queue = waking.ts if waking else max(after, entered)
    woken = switched.ts if waking and switched else queue
    return [
        ("stack to client socket", enqueued),
        ("client socket queue", queue),
        ("client wake-up", woken),
        ("client receive", w.end),
    ]


def user_space(w: Window) -> RequestAnatomy:
    xmit = w.first(Kind.XMIT, direction=Dir.REQUEST)
    enq = w.first(Kind.ENQUEUE, direction=Dir.REQUEST, after=_ts(xmit))
    rx = w.first(Kind.RX, direction=Dir.REQUEST, after=_ts(xmit))
    recv = w.first(Kind.SYSCALL, role=Role.SERVER, syscalls=RECV_SYSCALLS, after=_ts(enq))
    queue = wake = None
    if recv is not None:
        waking = w.first(Kind.WAKING, role=Role.SERVER, after=_ts(enq), before=recv.ts)
        switched = waking and w.first(
            Kind.SWITCH_IN, role=Role.SERVER, after=waking.ts, before=recv.ts
        )
        start = _ts(enq) or w.t0
        queue = waking.ts if waking else max(start, recv.aux)
        wake = switched.ts if waking and switched else queue
    # the send's entry event: its return can come after the window closed (the reply
    # handled in the server's own send, the client done before it returns)
    send = recv and w.first(Kind.SEND_ENTER, role=Role.SERVER, after=recv.ts)
    sent = recv and w.first(Kind.SYSCALL, role=Role.SERVER, syscalls=SEND_SYSCALLS, after=recv.ts)
    send_at = send.ts if send else sent.aux if sent else None
    reply = w.first(Kind.XMIT, direction=Dir.REPLY, after=send_at) if send_at else None
    enq_reply = w.first(Kind.ENQUEUE, direction=Dir.REPLY, after=_ts(reply) or _ts(recv))
    milestones: list[Milestone] = [
        ("client send", _ts(xmit)),
        ("stack to server socket", _ts(enq)),
        ("server socket queue", queue),
        ("server wake-up", wake),
        ("server receive", _ts(recv)),
        ("server user space", send_at),
        ("server send", _ts(reply)),
        *_client_side(w, _ts(enq_reply)),
    ]
    stages, missing = partition(w.t0, w.end, milestones)
    polls = sum(e.polls for e in w.events if e.kind == Kind.SYSCALL and e.role == Role.SERVER)
    return RequestAnatomy(
        seq=w.seq,
        rtt_ns=w.end - w.t0,
        stages=stages,
        missing=tuple(missing),
        rx_cpu=rx.cpu if rx else None,
        server_cpu=recv.cpu if recv else None,
        server_polls=polls,
        client_polls=w.close.polls,
    )


def kernel_side(w: Window, handler_hooked: bool, model: str = XDP) -> RequestAnatomy:
    """An XDP program (entry and exit traced) or a module's softirq handler (entry traced,
    running to the reply's transmit); unhooked, the stack stages around them."""
    xmit = w.first(Kind.XMIT, direction=Dir.REQUEST)
    rx = w.first(Kind.RX, direction=Dir.REQUEST, after=_ts(xmit))
    if model == SOFTIRQ:
        enter = w.first(Kind.HANDLER, direction=Dir.REQUEST, after=_ts(xmit))
        leave = enter and w.first(Kind.XMIT, direction=Dir.REPLY, after=enter.ts)
    else:
        enter = w.first(Kind.XDP_ENTER, direction=Dir.REQUEST, after=_ts(xmit))
        leave = enter and w.first(Kind.XDP_EXIT, after=enter.ts)
    enq_reply = w.first(Kind.ENQUEUE, direction=Dir.REPLY, after=_ts(leave) or _ts(rx))
    client = _client_side(w, _ts(enq_reply))
    head: list[Milestone]
    if handler_hooked:
        head = [
            ("client send", _ts(xmit)),
            ("stack to handler", _ts(enter)),
            ("in-kernel handler", _ts(leave)),
        ]
    else:
        head = [
            ("client send", _ts(xmit)),
            ("stack to receive processing", _ts(rx)),
        ]
        client[0] = ("receive, handler and way back", client[0][1])
    stages, missing = partition(w.t0, w.end, [*head, *client])
    handled = enter or rx
    return RequestAnatomy(
        seq=w.seq,
        rtt_ns=w.end - w.t0,
        stages=stages,
        missing=tuple(missing),
        rx_cpu=rx.cpu if rx else None,
        server_cpu=handled.cpu if handled else None,
        server_polls=0,
        client_polls=w.close.polls,
    )


def kernel_thread(w: Window, polls: bool) -> RequestAnatomy:
    """A kernel thread's request: see the module's docstring (``polls``: kthread-poll)."""
    xmit = w.first(Kind.XMIT, direction=Dir.REQUEST)
    enq = w.first(Kind.ENQUEUE, direction=Dir.REQUEST, after=_ts(xmit))
    rx = w.first(Kind.RX, direction=Dir.REQUEST, after=_ts(xmit))
    recv = w.first(Kind.KRECV, role=Role.SERVER, after=_ts(enq))
    reply = w.first(Kind.XMIT, direction=Dir.REPLY, after=_ts(recv) or _ts(enq))
    start = _ts(enq) or w.t0
    waking = w.first(Kind.WAKING, role=Role.SERVER, after=start, before=_ts(reply))
    switched = waking and w.first(
        Kind.SWITCH_IN, role=Role.SERVER, after=waking.ts, before=_ts(reply)
    )
    enq_reply = w.first(Kind.ENQUEUE, direction=Dir.REPLY, after=_ts(reply) or _ts(recv))
    head: list[Milestone] = [("client send", _ts(xmit)), ("stack to server socket", _ts(enq))]
    if polls:
        head.append(("server socket queue", _ts(recv)))
    else:
        # without a wake-up in the window the thread was running: queued until its receive
        queue = waking.ts if waking else _ts(recv)
        woken = switched.ts if waking and switched else queue
        head += [
            ("server socket queue", queue),
            ("server wake-up", woken),
            ("kernel receive", _ts(recv)),
        ]
    head.append(("in-kernel handler", _ts(reply)))
    stages, missing = partition(w.t0, w.end, [*head, *_client_side(w, _ts(enq_reply))])
    served = recv or switched or None
    return RequestAnatomy(
        seq=w.seq,
        rtt_ns=w.end - w.t0,
        stages=stages,
        missing=tuple(missing),
        rx_cpu=rx.cpu if rx else None,
        server_cpu=served.cpu if served else None,
        server_polls=recv.polls if recv else 0,
        client_polls=w.close.polls,
    )


def anatomy(
    w: Window, server_in_user_space: bool, handler_hooked: bool, model: str | None = None
) -> RequestAnatomy:
    """One window's stages by the server's model (default: user space or XDP)."""
    model = model or (USER if server_in_user_space else XDP)
    if model == USER:
        return user_space(w)
    if model in (KTHREAD, KTHREAD_POLL):
        return kernel_thread(w, polls=model == KTHREAD_POLL)
    return kernel_side(w, handler_hooked, model)
