// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * The anatomy of a round trip: stage timestamps of sampled pingpong requests.
 *
 * A window opens when the client's request with seq % hb_every == 0 reaches the
 * device (net_dev_start_xmit, in the client's send syscall) and closes when the
 * client's next receive returns data.  With one request in flight, everything a
 * tracked task (client or server, by tgid in the roles map, written by anatomyctl)
 * does inside the window belongs to that request; datagram events are matched to
 * it by the driver's seq read from the UDP payload (bounded reads, no packet
 * pointer arithmetic outside the fixed header), socket enqueues by the socket's
 * port.  Outside a window every program returns after one load, except the
 * syscall hooks, which keep each tracked task's last send/receive entry time and
 * its count of EAGAIN returns, so that a window sees the entry of a call that
 * began before it and a spinning task's empty polls are told apart from the
 * return that carried data.
 *
 * Events go to a ring buffer, at most hb_max_events per window (the closing event
 * is always written), without waking the reader (it polls on a timer, so that it
 * never competes with the traced tasks for a CPU mid-request); nothing is
 * printed.  x86-64 syscall numbers.
 *
 * Kernel-side servers: a server kernel thread is tracked like a process (its
 * wake-ups and switch-ins by its tgid, its own), and its receives by the
 * datagram's release or copy (hba_krecv*, loaded only for it); a module's handler in softirq by its
 * entry (hba_handler_*), an XDP program by its entry and exit.  anatomyctl loads
 * one enqueue hook of three, by what the kernel has (6.1 lacks sk_data_ready),
 * and kprobes instead of fentry/fexit when asked (--kprobes).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "hello_proto.h"
#include "hb_anatomy.h"

#define HB_EAGAIN	11
#define HB_ETH_HLEN	14
#define HB_ETH_P_IP	0x0800
#define HB_IPPROTO_UDP	17

#define NR_SENDTO	44
#define NR_RECVFROM	45
#define NR_SENDMSG	46
#define NR_RECVMSG	47
#define NR_RECVMMSG	299
#define NR_SENDMMSG	307

char LICENSE[] SEC("license") = "Dual MIT/GPL";

const volatile __u16 hb_port = HELLO_DEFAULT_PORT;
const volatile __u32 hb_every = 16;
const volatile __u32 hb_max_events = 128;

struct window {
	__u64 seq;
	__u64 send_ts;		/* the client's latest send syscall entry */
	__u32 active;
	__u32 nevents;
	__u16 client_port;	/* the request's source port: the client socket's */
};

struct window hb_win;
struct hb_anat_stats hb_stats;

struct entry {
	__u64 ts;
	__u32 nr;
	__u32 polls;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} hb_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);	/* tgid */
	__type(value, __u32);	/* enum hb_anat_role */
} hb_roles SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);	/* tid */
	__type(value, struct entry);
} hb_entered SEC(".maps");

struct dgram {
	__u64 seq;
	__u16 dir;
	__u16 sport;
};

/* the UDP header and the first 16 payload bytes: "HELLO " | flags | seq */
struct udp_head {
	struct udphdr uh;
	char magic[8];
	__be64 seq;
};

static __always_inline __u32 role_of(__u32 tgid)
{
	__u32 *role = bpf_map_lookup_elem(&hb_roles, &tgid);

	return role ? *role : 0;
}

static __always_inline int is_send(long nr)
{
	return nr == NR_SENDTO || nr == NR_SENDMSG || nr == NR_SENDMMSG;
}

static __always_inline int is_recv(long nr)
{
	return nr == NR_RECVFROM || nr == NR_RECVMSG || nr == NR_RECVMMSG;
}

static __always_inline void emit(__u32 kind, __u16 role, __u16 nr, __u32 tid, __u64 aux,
				 __s64 ret, __u32 polls, int always)
{
	struct hb_anat_event *e;

	if (!always && hb_win.nevents >= hb_max_events) {
		__sync_fetch_and_add(&hb_stats.capped, 1);
		return;
	}
	hb_win.nevents++;
	e = bpf_ringbuf_reserve(&hb_events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&hb_stats.lost, 1);
		return;
	}
	e->ts = bpf_ktime_get_ns();
	e->seq = hb_win.seq;
	e->aux = aux;
	e->ret = ret;
	e->kind = kind;
	e->cpu = bpf_get_smp_processor_id();
	e->tid = tid;
	e->role = role;
	e->nr = nr;
	e->polls = polls;
	e->pad = 0;
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);	/* the reader polls: no wake-ups */
}

static __always_inline int parse_ip(const void *ip, struct dgram *d)
{
	struct udp_head h;
	struct iphdr iph;
	__u32 ihl;

	if (bpf_probe_read_kernel(&iph, sizeof(iph), ip))
		return 0;
	if (iph.version != 4 || iph.protocol != HB_IPPROTO_UDP)
		return 0;
	ihl = iph.ihl * 4;
	if (ihl < sizeof(iph) || ihl > 60)
		return 0;
	if (bpf_probe_read_kernel(&h, sizeof(h), ip + ihl))
		return 0;
	if (bpf_ntohs(h.uh.len) < sizeof(struct udphdr) + HELLO_HEADER_SIZE)
		return 0;
	if (h.uh.dest == bpf_htons(hb_port) && h.magic[0] == 'H' && h.magic[1] == 'E' &&
	    h.magic[2] == 'L' && h.magic[3] == 'L' && h.magic[4] == 'O')
		d->dir = HBA_REQUEST;
	else if (h.uh.source == bpf_htons(hb_port) && h.magic[0] == 'G' &&
		 h.magic[1] == 'O' && h.magic[2] == 'T' && h.magic[3] == ' ' &&
		 h.magic[4] == 'I' && h.magic[5] == 'T')
		d->dir = HBA_REPLY;
	else
		return 0;
	d->seq = bpf_be64_to_cpu(h.seq);
	d->sport = bpf_ntohs(h.uh.source);
	return 1;
}

static __always_inline int parse_skb(const struct sk_buff *skb, struct dgram *d)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);

	return parse_ip(head + nh, d);
}

/* A datagram event of the open window's request or reply. */
static __always_inline void skb_event(__u32 kind, const struct sk_buff *skb)
{
	struct dgram d;

	if (!hb_win.active || !parse_skb(skb, &d) || d.seq != hb_win.seq)
		return;
	emit(kind, HBA_DATAGRAM, d.dir, 0, 0, 0, 0, 0);
}

SEC("tp_btf/sys_enter")
int BPF_PROG(hba_sys_enter, struct pt_regs *regs, long id)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct entry *old, fresh = {};
	__u32 role;

	if (!is_send(id) && !is_recv(id))
		return 0;
	role = role_of(pid_tgid >> 32);
	if (!role)
		return 0;
	fresh.ts = bpf_ktime_get_ns();
	fresh.nr = id;
	if (role == HBA_CLIENT && is_send(id))
		hb_win.send_ts = fresh.ts;
	else if (role == HBA_SERVER && is_send(id) && hb_win.active)
		emit(HBA_SEND_ENTER, role, id, tid, fresh.ts, 0, 0, 0);
	old = bpf_map_lookup_elem(&hb_entered, &tid);
	if (old) {
		old->ts = fresh.ts;
		old->nr = id;
	} else {
		bpf_map_update_elem(&hb_entered, &tid, &fresh, BPF_ANY);
	}
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(hba_sys_exit, struct pt_regs *regs, long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct entry *ent;
	__u32 role, polls;
	long nr;

	/* every task's every syscall exit comes here: the cheap test first */
	nr = BPF_CORE_READ(regs, orig_ax);
	if (!is_send(nr) && !is_recv(nr))
		return 0;
	ent = bpf_map_lookup_elem(&hb_entered, &tid);
	if (!ent || nr != ent->nr)
		return 0;	/* untracked, or another syscall of a tracked task */
	if (ret == -HB_EAGAIN) {
		ent->polls++;
		return 0;
	}
	polls = ent->polls;
	ent->polls = 0;
	if (!hb_win.active)
		return 0;
	role = role_of(pid_tgid >> 32);
	if (role == HBA_CLIENT && is_recv(nr) && ret > 0) {
		emit(HBA_CLOSE, role, nr, tid, ent->ts, ret, polls, 1);
		hb_win.active = 0;
		__sync_fetch_and_add(&hb_stats.closed, 1);
		return 0;
	}
	emit(HBA_SYSCALL, role, nr, tid, ent->ts, ret, polls, 0);
	return 0;
}

static __always_inline void task_event(__u32 kind, struct task_struct *p)
{
	__u32 role;

	if (!hb_win.active)
		return;
	role = role_of(BPF_CORE_READ(p, tgid));
	if (role)
		emit(kind, role, 0, BPF_CORE_READ(p, pid), 0, 0, 0, 0);
}

SEC("tp_btf/sched_waking")
int BPF_PROG(hba_waking, struct task_struct *p)
{
	task_event(HBA_WAKING, p);
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(hba_wakeup, struct task_struct *p)
{
	task_event(HBA_WAKEUP, p);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(hba_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	task_event(HBA_SWITCH_IN, next);
	return 0;
}

SEC("tp_btf/net_dev_start_xmit")
int BPF_PROG(hba_xmit, const struct sk_buff *skb, const struct net_device *dev)
{
	struct dgram d;

	if (!parse_skb(skb, &d))
		return 0;
	if (d.dir == HBA_REQUEST && role_of(bpf_get_current_pid_tgid() >> 32) == HBA_CLIENT) {
		if (hb_win.active && hb_win.seq != d.seq) {
			hb_win.active = 0;	/* the last sample's reply never came */
			__sync_fetch_and_add(&hb_stats.abandoned, 1);
		}
		if (!hb_win.active && hb_every && d.seq % hb_every == 0) {
			hb_win.seq = d.seq;
			hb_win.client_port = d.sport;
			hb_win.nevents = 0;
			hb_win.active = 1;
			__sync_fetch_and_add(&hb_stats.windows, 1);
			emit(HBA_OPEN, HBA_CLIENT, 0, (__u32)bpf_get_current_pid_tgid(),
			     hb_win.send_ts, 0, 0, 1);
		}
	}
	if (hb_win.active && d.seq == hb_win.seq)
		emit(HBA_XMIT, HBA_DATAGRAM, d.dir, 0, 0, 0, 0, 0);
	return 0;
}

SEC("tp_btf/netif_rx")
int BPF_PROG(hba_backlog, struct sk_buff *skb)
{
	skb_event(HBA_BACKLOG, skb);
	return 0;
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(hba_rx, struct sk_buff *skb)
{
	skb_event(HBA_RX, skb);
	return 0;
}

/*
 * The datagram is in a socket's receive queue: sk_data_ready, which UDP calls
 * right after __udp_enqueue_schedule_skb queued it.  The socket has no skb at
 * hand, so the socket tells the direction: the server's is bound to hb_port,
 * the client's to the port its sampled request came from.
 */
static __always_inline void enqueue_event(const struct sock *sk)
{
	__u16 num;

	if (!hb_win.active || BPF_CORE_READ(sk, __sk_common.skc_family) != 2 /* AF_INET */)
		return;
	num = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (num == hb_port)
		emit(HBA_ENQUEUE, HBA_DATAGRAM, HBA_REQUEST, 0, 0, 0, 0, 0);
	else if (num == hb_win.client_port)
		emit(HBA_ENQUEUE, HBA_DATAGRAM, HBA_REPLY, 0, 0, 0, 0, 0);
}

/*
 * One of the three is loaded, chosen by anatomyctl from the kernel's BTF: the
 * sk_data_ready tracepoint where the kernel has it (6.6 on), else the entry
 * of sock_def_readable, the sk_data_ready of UDP sockets, user and kernel
 * alike (the tracepoint's own place), by fentry or, without its BTF, kprobe.
 */
SEC("tp_btf/sk_data_ready")
int BPF_PROG(hba_enqueue, const struct sock *sk)
{
	enqueue_event(sk);
	return 0;
}

SEC("fentry/sock_def_readable")
int BPF_PROG(hba_enqueue_fentry, struct sock *sk)
{
	enqueue_event(sk);
	return 0;
}

SEC("kprobe/sock_def_readable")
int BPF_KPROBE(hba_enqueue_kprobe, struct sock *sk)
{
	enqueue_event(sk);
	return 0;
}

/*
 * A server kernel thread's receive (kernel_recvmsg reaches udp_recvmsg): the
 * sampled request freed once copied out (consume_skb, which udp_recvmsg's
 * skb_consume_udp reaches for a datagram read whole), or its copy where it is
 * not linear (skb_copy_datagram_iovec; a linear one is copied without that
 * tracepoint).  Tracepoints: no trampoline, no return probe.  Loaded only when
 * a kernel thread is traced (--kernel-recv); user-space servers are seen at
 * their syscalls instead.
 */
#define HB_PF_KTHREAD	0x00200000

static __always_inline void krecv_event(const struct sk_buff *skb)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct dgram d;

	if (!hb_win.active || !(task->flags & HB_PF_KTHREAD) ||
	    role_of(pid_tgid >> 32) != HBA_SERVER)
		return;
	if (!parse_skb(skb, &d) || d.dir != HBA_REQUEST || d.seq != hb_win.seq)
		return;
	emit(HBA_KRECV, HBA_SERVER, 0, (__u32)pid_tgid, 0, 0, 0, 0);
}

SEC("tp_btf/consume_skb")
int BPF_PROG(hba_krecv, struct sk_buff *skb)
{
	krecv_event(skb);
	return 0;
}

SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(hba_krecv_copy, const struct sk_buff *skb, int len)
{
	krecv_event(skb);
	return 0;
}

/*
 * A module's in-kernel handler with encap_rcv's arguments (sk, skb), entered
 * with the sampled datagram: by fentry where the module has BTF, else by
 * kprobe; anatomyctl names the function (--handler) and loads one of the two.
 */
static __always_inline void handler_event(const struct sk_buff *skb)
{
	struct dgram d;

	if (!hb_win.active || !parse_skb(skb, &d) || d.seq != hb_win.seq)
		return;
	emit(HBA_HANDLER, HBA_DATAGRAM, d.dir, 0, 0, 0, 0, 0);
}

SEC("fentry")
int BPF_PROG(hba_handler_fentry, struct sock *sk, struct sk_buff *skb)
{
	handler_event(skb);
	return 0;
}

SEC("kprobe")
int BPF_KPROBE(hba_handler_kprobe, struct sock *sk, struct sk_buff *skb)
{
	handler_event(skb);
	return 0;
}

/* The XDP program's entry and exit; anatomyctl sets the target (or leaves them out). */
static __always_inline void xdp_event(__u32 kind, struct xdp_buff *xdp, __s64 ret)
{
	struct dgram d;
	void *data;
	__be16 proto;

	if (!hb_win.active)
		return;
	data = BPF_CORE_READ(xdp, data);
	if (bpf_probe_read_kernel(&proto, sizeof(proto), data + 12))
		return;
	if (proto != bpf_htons(HB_ETH_P_IP) || !parse_ip(data + HB_ETH_HLEN, &d))
		return;
	if (d.seq == hb_win.seq)
		emit(kind, HBA_DATAGRAM, d.dir, 0, 0, ret, 0, 0);
}

SEC("fentry")
int BPF_PROG(hba_xdp_enter, struct xdp_buff *xdp)
{
	xdp_event(HBA_XDP_ENTER, xdp, 0);
	return 0;
}

SEC("fexit")
int BPF_PROG(hba_xdp_exit, struct xdp_buff *xdp, int ret)
{
	xdp_event(HBA_XDP_EXIT, xdp, ret);
	return 0;
}
