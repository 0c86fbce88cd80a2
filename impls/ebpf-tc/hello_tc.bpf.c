// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * HELLO reflector as a tc direct-action classifier on ingress (clsact): a
 * request is rewritten into its reply in place and redirected to the egress
 * of the interface it arrived on; no program is needed anywhere else.
 *
 * Checksums.  The skb keeps its checksum state through the redirect, and the
 * kernel's checksum helpers read it: bpf_l4_csum_replace() leaves a partial
 * field (CHECKSUM_PARTIAL, the folded pseudo-header sum that the swap of
 * addresses and ports does not change) alone for payload changes and updates
 * a full one (RFC 1624).  All in-place edits keep both checksums valid, so the
 * datagram's sum and with it a CHECKSUM_COMPLETE skb->csum stay as they were.
 * A request without checksum (zero field) gets the full checksum of the reply,
 * written with BPF_F_RECOMPUTE_CSUM so that skb->csum follows.
 */
#include <linux/if_packet.h>
#include <linux/pkt_cls.h>

#include "hb_reflect.h"

#define HB_IP_CSUM_OFF	(ETH_HLEN + __builtin_offsetof(struct iphdr, check))

/* Find the datagram again after a helper invalidated the packet pointers. */
static __always_inline int hb_relocate(struct __sk_buff *skb, __u32 ihl,
				       __u32 udp_len, struct hb_pkt *pkt)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	pkt->eth = data;
	pkt->ip = data + ETH_HLEN;
	if ((void *)(pkt->ip + 1) > data_end || ihl > 60)
		return -1;
	pkt->udp = (void *)pkt->ip + ihl;
	if ((void *)(pkt->udp + 1) > data_end)
		return -1;
	pkt->payload = (void *)(pkt->udp + 1);
	pkt->udp_len = udp_len;
	return 0;
}

static __always_inline int hb_answer_unsummed(struct __sk_buff *skb,
					      struct hb_pkt *pkt)
{
	__u32 ihl = pkt->ip->ihl * 4;
	__u32 payload_off = (void *)pkt->payload - (void *)pkt->eth;
	__u32 udp_csum_off = (void *)&pkt->udp->check - (void *)pkt->eth;
	__u32 udp_len = pkt->udp_len;
	__s64 sum;
	__u16 check;

	if (bpf_skb_store_bytes(skb, payload_off, HELLO_REPLY, HELLO_REPLY_LEN,
				BPF_F_RECOMPUTE_CSUM))
		return -1;
	if (hb_relocate(skb, ihl, udp_len, pkt))
		return -1;
	sum = hb_udp_sum(pkt, (void *)(long)skb->data_end);
	if (sum < 0)
		return -1;
	check = ~hb_fold(hb_pseudo_sum(pkt->ip, pkt->udp) + (__u64)sum);
	if (!check)
		check = 0xffff;
	return bpf_skb_store_bytes(skb, udp_csum_off, &check, sizeof(check),
				   BPF_F_RECOMPUTE_CSUM);
}

static __always_inline int hb_answer(struct __sk_buff *skb, struct hb_pkt *pkt)
{
	__u16 *words = (__u16 *)pkt->payload;
	__u16 *ttl_word = (__u16 *)&pkt->ip->ttl;
	__u32 udp_csum_off = (void *)&pkt->udp->check - (void *)pkt->eth;
	__u16 old_ttl = *ttl_word, new_ttl;
	__u16 old0 = words[0], old1 = words[1], old2 = words[2];
	__u32 diff;

	hb_swap_addresses(pkt);
	pkt->ip->ttl = HB_REPLY_TTL;
	new_ttl = *ttl_word;

	if (!pkt->udp->check) {
		if (hb_answer_unsummed(skb, pkt))
			return -1;
	} else {
		__builtin_memcpy(pkt->payload, HELLO_REPLY, HELLO_REPLY_LEN);
		diff = (__u16)~old0 + (__u32)words[0];
		diff += (__u16)~old1 + (__u32)words[1];
		diff += (__u16)~old2 + (__u32)words[2];
		if (bpf_l4_csum_replace(skb, udp_csum_off, 0, diff,
					BPF_F_MARK_MANGLED_0))
			return -1;
	}
	return bpf_l3_csum_replace(skb, HB_IP_CSUM_OFF, old_ttl, new_ttl,
				   sizeof(__u16));
}

SEC("tc")
int hb_tc_hello(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct hb_pkt pkt;
	/* the stack's own verdict on the frame's destination MAC */
	int not_host = skb->pkt_type != PACKET_HOST;
	enum hb_verdict verdict;

	verdict = hb_parse(data, data_end, not_host, &pkt);
	if (verdict == HB_REJECT && skb->len > data_end - data &&
	    !bpf_skb_pull_data(skb, skb->len)) {
		/* part of the datagram was not in the linear area */
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
		verdict = hb_parse(data, data_end, not_host, &pkt);
	}
	if (verdict == HB_ANSWER && hb_answer(skb, &pkt))
		verdict = HB_REJECT;
	hb_count(verdict);
	switch (verdict) {
	case HB_ANSWER:
		return bpf_redirect(skb->ifindex, 0);
	case HB_REJECT:
		return TC_ACT_SHOT;
	default:
		return TC_ACT_UNSPEC;
	}
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
