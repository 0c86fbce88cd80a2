// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * The kernel half of afxdp-c: hand HELLO requests to an AF_XDP socket.
 *
 * Exactly what hb_parse() (bench/bpf/hb_reflect.h) calls a request - IPv4,
 * UDP, to the configured address and port, a valid length, "HELLO" - is
 * redirected into hb_xsks at the receive queue's index, when a socket sits
 * there.  Everything else, datagrams for the port that are not requests
 * included, goes on to the stack (XDP_PASS), where the server's UDP socket
 * takes them and throws them away.  The user-space server rewrites the frame
 * into the reply; nothing is changed here.
 *
 * Counters (hb_counters): answered = redirected to the socket, rejected = for
 * the port but not a request (passed), passed and declined_* as in
 * hb_reflect.h.
 */
#include "hb_reflect.h"

#define HB_MAX_QUEUES	64

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, HB_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} hb_xsks SEC(".maps");

SEC("xdp")
int hb_xdp_afxdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 queue = ctx->rx_queue_index;
	enum hb_verdict verdict;
	struct hb_pkt pkt;

	verdict = hb_parse(ctx, ctx->ingress_ifindex, data, data_end, 0, &pkt);
	if (verdict == HB_ANSWER) {
		if (bpf_map_lookup_elem(&hb_xsks, &queue)) {
			hb_count(HB_ANSWER);
			return bpf_redirect_map(&hb_xsks, queue, XDP_PASS);
		}
		verdict = HB_PASS;	/* no socket on this queue */
	}
	hb_count(verdict);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
