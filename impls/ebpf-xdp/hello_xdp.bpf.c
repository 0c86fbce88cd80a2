// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * HELLO reflector at the XDP hook: a request is rewritten into its reply in
 * place and sent back out of the interface it came in on (XDP_TX).
 *
 * Checksums.  A datagram sent by a local socket over lo or veth carries a
 * partial UDP checksum (CHECKSUM_PARTIAL: the field holds the folded
 * pseudo-header sum, the payload was never summed).  XDP cannot read the skb's
 * checksum state, so a field equal to the folded pseudo-header sum may be a
 * partial checksum the kernel trusts or a wrong one the kernel would drop (a
 * forged frame, or a corrupted one from a wire).  Every other field is
 * verified:
 *  - a zero field (no checksum) gets the full checksum of the reply;
 *  - any other field that is not the pseudo-header sum is verified in full,
 *    and one that does not verify is declined (XDP_PASS: the stack drops it
 *    and counts UdpInCsumErrors, as it would without the program); a verified
 *    one is updated for the six rewritten payload bytes (RFC 1624);
 *  - a field equal to the pseudo-header sum, generic XDP (skb mode): the reply
 *    is the request's own skb, and its checksum state goes with it through
 *    XDP_TX; the field is left as it is (the swap keeps that sum).  If the skb
 *    was CHECKSUM_PARTIAL the receiver trusts the reply as it trusted the
 *    request; if it was not, the receiver verifies the reply, finds the same
 *    unverifiable field and drops it: no request the kernel would drop gets a
 *    reply the kernel accepts;
 *  - the same field, native XDP (HB_F_FULL_CSUM): XDP_TX turns the buffer into
 *    a frame without checksum state and the receiver verifies the field, so
 *    the reply gets the full checksum.  This vouches for a payload nobody has
 *    verified when the request was not really partial: a known gap.  Verifying
 *    it would decline every request a socket sends over veth (they arrive
 *    partial, measured on 6.18); closing it needs the skb's checksum state in
 *    XDP (no such metadata kfunc in 6.18) or clients that send full checksums.
 * The IP header checksum is updated incrementally for the TTL reset.
 */
#include "hb_reflect.h"

/*
 * Rewrite the request into its reply, or say why not.  The datagram is summed
 * at most once (the sum of the request, its checksum field included, both
 * verifies a full checksum and, updated for the six rewritten bytes, gives the
 * full checksum of a reply to a request without one): one summing site keeps
 * the verifier's paths few.
 */
HB_UDP_SUM(hb_xdp_udp_sum, struct xdp_md)

static __always_inline enum hb_verdict hb_answer(struct xdp_md *ctx,
						 struct hb_pkt *pkt)
{
	__u16 *words = (__u16 *)pkt->payload;
	__u16 check = pkt->udp->check;
	__u16 *ttl_word = (__u16 *)&pkt->ip->ttl;
	__u16 old_ttl = *ttl_word;
	__u16 old0 = words[0], old1 = words[1], old2 = words[2];
	__u32 udp_off = (void *)pkt->udp - (void *)pkt->eth;
	__u64 pseudo = hb_pseudo_sum(pkt->ip, pkt->udp);	/* kept by the swap */
	int pseudo_field = check && check == hb_fold(pseudo);
	int datagram = 0;
	__u64 sum;

	if (!pseudo_field) {
		datagram = hb_xdp_udp_sum(ctx, udp_off, pkt->udp_len);
		if (datagram < 0)
			return HB_REJECT;
		if (check && hb_fold(pseudo + (__u64)datagram) != 0xffff)
			return HB_DECLINE_UDP_CSUM;
	}

	hb_swap_addresses(pkt);
	pkt->ip->ttl = HB_REPLY_TTL;
	pkt->ip->check = hb_csum_update(pkt->ip->check, old_ttl, *ttl_word);
	__builtin_memcpy(pkt->payload, HELLO_REPLY, HELLO_REPLY_LEN);

	if (pseudo_field) {
		if (!(hb_flags & HB_F_FULL_CSUM))
			return HB_ANSWER;
		/* the full checksum of the reply, its field counted as zero */
		pkt->udp->check = 0;
		datagram = hb_xdp_udp_sum(ctx, udp_off, pkt->udp_len);
		if (datagram < 0)
			return HB_REJECT;
		check = ~hb_fold(pseudo + (__u64)datagram);
		pkt->udp->check = check ? check : 0xffff;
		return HB_ANSWER;
	}

	/* RFC 1624: ~HC + ~m + m' for the six rewritten bytes */
	sum = (__u16)~old0 + (__u32)words[0];
	sum += (__u16)~old1 + (__u32)words[1];
	sum += (__u16)~old2 + (__u32)words[2];
	if (check)
		check = ~hb_fold((__u16)~check + sum);
	else	/* the request's sum had a zero field: the reply's full sum */
		check = ~hb_fold(pseudo + (__u64)datagram + sum);
	pkt->udp->check = check ? check : 0xffff;
	return HB_ANSWER;
}

SEC("xdp")
int hb_xdp_hello(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct hb_pkt pkt;
	enum hb_verdict verdict;

	verdict = hb_parse(ctx, ctx->ingress_ifindex, data, data_end, 0, &pkt);
	if (verdict == HB_ANSWER)
		verdict = hb_answer(ctx, &pkt);
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
