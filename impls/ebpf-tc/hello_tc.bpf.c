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
 *
 * A partial field is trusted only when the skb says it is one, as the stack
 * trusts it: a field equal to the folded pseudo-header sum may also be a wrong
 * checksum (a forged or corrupted frame).  The program cannot read
 * skb->ip_summed, so it asks the helper that does (hb_skb_partial()); a
 * request that is not CHECKSUM_PARTIAL has its full checksum verified, and
 * one that does not verify is declined (TC_ACT_UNSPEC: the stack drops it and
 * counts UdpInCsumErrors, as it would without the program).
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
	if ((void *)(pkt->payload + HELLO_REPLY_LEN) > data_end)
		return -1;
	pkt->udp_len = udp_len;
	return 0;
}

HB_UDP_SUM(hb_tc_udp_sum, struct __sk_buff)

/*
 * Is the skb CHECKSUM_PARTIAL?  bpf_l4_csum_replace() without
 * BPF_F_PSEUDO_HDR leaves the field of a partial skb alone (its payload is
 * summed later, on transmit) and updates any other; a trial update of 0 to 1
 * tells which, and the field is put back as it was.  1, 0, or -1 on failure.
 */
static __always_inline int hb_skb_partial(struct __sk_buff *skb, __u32 off)
{
	__u16 before, after;

	if (bpf_skb_load_bytes(skb, off, &before, sizeof(before)))
		return -1;
	if (bpf_l4_csum_replace(skb, off, 0, bpf_htons(1), sizeof(__u16)))
		return -1;
	if (bpf_skb_load_bytes(skb, off, &after, sizeof(after)))
		return -1;
	if (after == before)
		return 1;
	if (bpf_skb_store_bytes(skb, off, &before, sizeof(before), 0))
		return -1;
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
	sum = hb_tc_udp_sum(skb, (void *)pkt->udp - (void *)pkt->eth, udp_len);
	if (sum < 0)
		return -1;
	check = ~hb_fold(hb_pseudo_sum(pkt->ip, pkt->udp) + (__u64)sum);
	if (!check)
		check = 0xffff;
	return bpf_skb_store_bytes(skb, udp_csum_off, &check, sizeof(check),
				   BPF_F_RECOMPUTE_CSUM);
}

/*
 * Rewrite the request into its reply, or say why not.  Each path sums the
 * datagram at most once (a request without checksum after the rewrite, any
 * other that is not CHECKSUM_PARTIAL before it, to verify it).
 */
static __always_inline enum hb_verdict hb_answer(struct __sk_buff *skb,
						 struct hb_pkt *pkt)
{
	__u32 ihl = pkt->ip->ihl * 4;
	__u32 udp_csum_off = (void *)&pkt->udp->check - (void *)pkt->eth;
	__u16 check = pkt->udp->check;
	__u16 *words, *ttl_word;
	__u16 old_ttl, new_ttl, old0, old1, old2;
	__u32 diff;
	__s64 sum;
	int partial = 0;

	if (check) {
		if (check == hb_fold(hb_pseudo_sum(pkt->ip, pkt->udp))) {
			partial = hb_skb_partial(skb, udp_csum_off);
			if (partial < 0 ||
			    hb_relocate(skb, ihl, pkt->udp_len, pkt))
				return HB_REJECT;
		}
		if (!partial) {
			sum = hb_tc_udp_sum(skb, udp_csum_off - 6,
					    pkt->udp_len);
			if (sum < 0)
				return HB_REJECT;
			if (hb_fold(hb_pseudo_sum(pkt->ip, pkt->udp) +
				    (__u64)sum) != 0xffff)
				return HB_DECLINE_UDP_CSUM;
		}
	}

	words = (__u16 *)pkt->payload;
	ttl_word = (__u16 *)&pkt->ip->ttl;
	old_ttl = *ttl_word;
	old0 = words[0];
	old1 = words[1];
	old2 = words[2];
	hb_swap_addresses(pkt);
	pkt->ip->ttl = HB_REPLY_TTL;
	new_ttl = *ttl_word;

	if (!check) {
		if (hb_answer_unsummed(skb, pkt))
			return HB_REJECT;
	} else {
		__builtin_memcpy(pkt->payload, HELLO_REPLY, HELLO_REPLY_LEN);
		diff = (__u16)~old0 + (__u32)words[0];
		diff += (__u16)~old1 + (__u32)words[1];
		diff += (__u16)~old2 + (__u32)words[2];
		if (bpf_l4_csum_replace(skb, udp_csum_off, 0, diff,
					BPF_F_MARK_MANGLED_0))
			return HB_REJECT;
	}
	if (bpf_l3_csum_replace(skb, HB_IP_CSUM_OFF, old_ttl, new_ttl,
				sizeof(__u16)))
		return HB_REJECT;
	return HB_ANSWER;
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

	verdict = hb_parse(skb, skb->ifindex, data, data_end, not_host, &pkt);
	if (verdict == HB_REJECT && skb->len > data_end - data &&
	    !bpf_skb_pull_data(skb, skb->len)) {
		/* part of the datagram was not in the linear area */
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
		verdict = hb_parse(skb, skb->ifindex, data, data_end, not_host,
				   &pkt);
	}
	if (verdict == HB_ANSWER)
		verdict = hb_answer(skb, &pkt);
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
