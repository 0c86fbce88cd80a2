/* SPDX-License-Identifier: MIT */
/*
 * One record of the anatomy ring buffer, shared by hb_anatomy.bpf.c (the writer),
 * anatomyctl.c (which copies records to a file as they are) and bench/anatomy/events.py
 * (the reader: struct format "<QQQqIIIHHII", 56 bytes).  Plain types only, so that BPF
 * and user space include it alike.
 */
#ifndef HB_ANATOMY_H
#define HB_ANATOMY_H

enum hb_anat_kind {
	HBA_OPEN = 1,		/* window opened: aux = the client's send syscall entry */
	HBA_SYSCALL = 2,	/* a send/receive returned: aux = its entry, ret, polls */
	HBA_WAKING = 3,		/* sched_waking of a tracked task (on the waker's CPU) */
	HBA_WAKEUP = 4,		/* sched_wakeup of a tracked task */
	HBA_SWITCH_IN = 5,	/* sched_switch to a tracked task */
	HBA_XMIT = 6,		/* net_dev_start_xmit of the datagram */
	HBA_BACKLOG = 7,	/* netif_rx: queued to a CPU's backlog (RPS or lo) */
	HBA_RX = 8,		/* netif_receive_skb: receive processing */
	HBA_ENQUEUE = 9,	/* sk_data_ready: queued to the socket (by port) */
	HBA_XDP_ENTER = 10,	/* the XDP program's entry (fentry) */
	HBA_XDP_EXIT = 11,	/* the XDP program's exit (fexit): ret = the action */
	HBA_CLOSE = 12,		/* the client's receive returned: the window ends */
	HBA_SEND_ENTER = 13,	/* the server entered a send syscall (its exit may
				 * come after the window closed) */
	HBA_KRECV = 14,		/* a tracked kernel thread has read the request
				 * out of its socket */
	HBA_HANDLER = 15,	/* a module's in-kernel handler was entered with
				 * the datagram (fentry or kprobe) */
};

enum hb_anat_role { HBA_DATAGRAM = 0, HBA_CLIENT = 1, HBA_SERVER = 2 };
enum hb_anat_dir { HBA_REQUEST = 1, HBA_REPLY = 2 };

struct hb_anat_event {
	__u64 ts;	/* bpf_ktime_get_ns() */
	__u64 seq;	/* the sampled request's sequence number */
	__u64 aux;	/* OPEN, SYSCALL, CLOSE: the syscall's entry time */
	__s64 ret;	/* SYSCALL, CLOSE: return value; XDP_EXIT: action */
	__u32 kind;
	__u32 cpu;
	__u32 tid;
	__u16 role;	/* enum hb_anat_role */
	__u16 nr;	/* SYSCALL, CLOSE: syscall number; datagram events: enum hb_anat_dir */
	__u32 polls;	/* SYSCALL, CLOSE: EAGAIN returns of this task since its last return */
	__u32 pad;
};

/* what the BPF side counts about itself (.bss, read by anatomyctl at the end) */
struct hb_anat_stats {
	__u64 windows;		/* sampled requests (windows opened) */
	__u64 closed;		/* windows closed by the client's receive */
	__u64 abandoned;	/* windows a new request replaced before they closed */
	__u64 capped;		/* events not written: the window's event cap */
	__u64 lost;		/* events not written: ring buffer full */
};

#endif /* HB_ANATOMY_H */
