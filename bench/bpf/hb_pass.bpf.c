// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * A pass-through XDP program for the peer end of a veth pair.  A veth device
 * receives frames sent with XDP_TX from its peer only while its own NAPI runs;
 * an XDP program attached to it guarantees that.  It passes everything.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int hb_xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
