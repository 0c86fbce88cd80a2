// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * HELLO reflector at the XDP hook: a request is rewritten into its reply in
 * place and sent back out of the interface it came in on (XDP_TX).
 *
 * Checksums.  A datagram sent by a local socket over lo or veth carries a
 * partial UDP checksum (CHECKSUM_PARTIAL: the field holds the folded
 * pseudo-header sum, the payload was never summed).  XDP cannot read the skb's
 * checksum state, so the program recognises it by value: a field equal to the
 * folded pseudo-header sum is taken as partial.
 *  - generic XDP (skb mode): the skb and its checksum state survive XDP_TX,
 *    and swapping addresses and ports keeps the pseudo-header sum, so a partial
 *    field is left as it is;
 *  - native XDP (HB_F_FULL_CSUM): XDP_TX turns the buffer into a frame without
 *    checksum state and the receiver verifies the field, so a partial field is
 *    replaced by the full checksum of the reply;
 *  - a full checksum is updated for the six rewritten payload bytes (RFC 1624);
 *  - a zero field (no checksum) gets the full checksum of the reply.
 * The IP header checksum is updated incrementally for the TTL reset.
 */
#include "hb_reflect.h"

static __always_inline int hb_answer(struct hb_pkt *pkt, void *data_end)
{
	__u16 *words = (__u16 *)pkt->payload;
	__u16 check = pkt->udp->check;
	__u16 *ttl_word = (__u16 *)&pkt->ip->ttl;
	__u16 old_ttl = *ttl_word;
	__u16 old0 = words[0], old1 = words[1], old2 = words[2];
	int partial = check == hb_fold(hb_pseudo_sum(pkt->ip, pkt->udp));
	__u64 sum;

	hb_swap_addresses(pkt);
	pkt->ip->ttl = HB_REPLY_TTL;
	pkt->ip->check = hb_csum_update(pkt->ip->check, old_ttl, *ttl_word);
	__builtin_memcpy(pkt->payload, HELLO_REPLY, HELLO_REPLY_LEN);

	if (!check || (partial && (hb_flags & HB_F_FULL_CSUM)))
		return hb_udp_full_csum(pkt, data_end);
	if (partial)
		return 0;
	sum = (__u16)~check;
	sum += (__u16)~old0 + (__u32)words[0];
	sum += (__u16)~old1 + (__u32)words[1];
	sum += (__u16)~old2 + (__u32)words[2];
	check = ~hb_fold(sum);
	pkt->udp->check = check ? check : 0xffff;
	return 0;
}

SEC("xdp")
int hb_xdp_hello(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct hb_pkt pkt;
	enum hb_verdict verdict;

	verdict = hb_parse(data, data_end, 0, &pkt);
	if (verdict == HB_ANSWER && hb_answer(&pkt, data_end) < 0)
		verdict = HB_REJECT;
	hb_count(verdict);
	switch (verdict) {
	case HB_ANSWER:
		return XDP_TX;
	case HB_REJECT:
		return XDP_DROP;
	default:
		return XDP_PASS;
	}
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
