/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The HELLO reflector shared by the XDP and the tc program: configuration,
 * counters, header parsing and the checksum arithmetic both of them need.
 *
 * A request is an IPv4 UDP datagram to the configured port (and address, when
 * one is set), not fragmented, whose payload is HELLO_MIN_REQUEST ..
 * HELLO_MAX_REQUEST bytes long and starts with HELLO_MAGIC.  It is answered in
 * place: the first six payload bytes become HELLO_REPLY, MAC and IP addresses
 * and the ports are swapped, the TTL is reset and both checksums are kept
 * valid.  A datagram to the port that is not a request is rejected (dropped
 * and counted); everything else passes untouched.
 *
 * Only what a socket bound to the address and port would be given, and would
 * answer with a unicast datagram from that address, is answered.  A datagram
 * to the port is declined (passed to the stack, which does with it what it
 * always does, and counted by reason) when its IPv4 header carries options
 * (a socket's reply would not echo them), its header checksum is wrong, its
 * destination is not a unicast address (multicast, broadcast, 0/8, a loopback
 * address off lo), its source is a martian (the same classes, or the
 * destination itself arriving from outside), or the frame is not addressed to
 * the interface's own MAC (promiscuous mode, bridges, broadcast frames).
 *
 * Every sum below is kept in memory byte order: the one's complement sum is
 * byte-order independent (RFC 1071), so loading 16-bit words as they lie in the
 * packet and storing the folded result back gives the right field.
 */
#ifndef HB_REFLECT_H
#define HB_REFLECT_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "hello_proto.h"

#define HB_REPLY_TTL		64
#define HB_IP_MF		0x2000
#define HB_IP_OFFSET		0x1fff
#define HB_CHUNK		512	/* bpf_csum_diff takes at most 512 bytes */

/* hb_flags: what the program may assume about the checksum state. */
#define HB_F_FULL_CSUM		0x1	/* the reply leaves without skb checksum state */

/* Set by the loader before the program is loaded (see bench/bpf/bpfctl.c). */
const volatile __u16 hb_port = 0;	/* host byte order; 0 answers nothing */
const volatile __u32 hb_addr = 0;	/* network byte order; 0 means any */
const volatile __u32 hb_flags = 0;
/* Written by hb-bpfctl from the interface the program is attached to. */
const volatile __u8 hb_ifmac[ETH_ALEN] = {};	/* all zero on lo */
const volatile __u32 hb_ifloopback = 0;		/* IFF_LOOPBACK was set */

/* Order and names as bench/bpf/control.py COUNTER_NAMES. */
struct hb_counters {
	__u64 answered;
	__u64 passed;		/* everything handed to the stack, declined included */
	__u64 rejected;		/* for the port, not a request: dropped */
	/* for the port, declined: passed to the stack, by reason */
	__u64 declined_ip_options;
	__u64 declined_ip_csum;
	__u64 declined_dst;
	__u64 declined_src;
	__u64 declined_not_host;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hb_counters);
} hb_counters SEC(".maps");

enum hb_verdict {
	HB_PASS,
	HB_REJECT,
	HB_ANSWER,
	HB_DECLINE_IP_OPTIONS,	/* the header carries options */
	HB_DECLINE_IP_CSUM,	/* the header checksum is wrong */
	HB_DECLINE_DST,		/* not a unicast destination */
	HB_DECLINE_SRC,		/* a martian source */
	HB_DECLINE_NOT_HOST,	/* the frame is not for this interface's MAC */
};

/* Where the parts of a packet lie, once hb_parse() has checked them. */
/* Covers every valid UDP length of a request (8 + 1472 < 2048). */
#define HB_ULEN_MASK 0x7ff

struct hb_pkt {
	struct ethhdr *eth;
	struct iphdr *ip;
	struct udphdr *udp;
	__u8 *payload;
	__u32 udp_len;		/* header and payload, host byte order */
};

static __always_inline void hb_count(enum hb_verdict verdict)
{
	__u32 key = 0;
	struct hb_counters *c = bpf_map_lookup_elem(&hb_counters, &key);

	if (!c)
		return;
	switch (verdict) {
	case HB_ANSWER:
		c->answered++;
		return;
	case HB_REJECT:
		c->rejected++;
		return;
	case HB_DECLINE_IP_OPTIONS:
		c->declined_ip_options++;
		break;
	case HB_DECLINE_IP_CSUM:
		c->declined_ip_csum++;
		break;
	case HB_DECLINE_DST:
		c->declined_dst++;
		break;
	case HB_DECLINE_SRC:
		c->declined_src++;
		break;
	case HB_DECLINE_NOT_HOST:
		c->declined_not_host++;
		break;
	default:
		break;
	}
	c->passed++;
}

static __always_inline int hb_passes(enum hb_verdict verdict)
{
	return verdict != HB_ANSWER && verdict != HB_REJECT;
}

static __always_inline __u16 hb_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* An option-less IPv4 header sums to all ones when its checksum is right. */
static __always_inline int hb_ip_csum_ok(const struct iphdr *ip)
{
	const __u16 *w = (const __u16 *)ip;
	__u64 sum = 0;
	int i;

#pragma unroll
	for (i = 0; i < (int)(sizeof(*ip) / 2); i++)
		sum += w[i];
	return hb_fold(sum) == 0xffff;
}

/*
 * Could this address be one end of a unicast exchange on this interface?  Not
 * 0.0.0.0/8 ("this network"), not 224.0.0.0/4 (multicast), not the limited
 * broadcast 255.255.255.255, and 127.0.0.0/8 only on a loopback interface and
 * not its broadcast 127.255.255.255: the classes the kernel's input route
 * calls martian or broadcast before it consults a table (ip_route_input_slow).
 * 240.0.0.0/4 is unicast to Linux, and so it is here.
 */
static __always_inline int hb_unicast_addr(__be32 be)
{
	__u32 addr = bpf_ntohl(be);
	__u32 net = addr >> 24;

	if (net == 0 || (addr >> 28) == 0xe || addr == 0xffffffff)
		return 0;
	if (net == 127)
		return hb_ifloopback && addr != 0x7fffffff;
	return 1;
}

static __always_inline int hb_frame_for_us(const struct ethhdr *eth)
{
	const __u8 *mac = eth->h_dest;

	return !((mac[0] ^ hb_ifmac[0]) | (mac[1] ^ hb_ifmac[1]) |
		 (mac[2] ^ hb_ifmac[2]) | (mac[3] ^ hb_ifmac[3]) |
		 (mac[4] ^ hb_ifmac[4]) | (mac[5] ^ hb_ifmac[5]));
}

/*
 * not_host: the hook knows that the stack would not take the frame as its own
 * (tc reads skb->pkt_type); the MAC is compared in any case.
 */
static __always_inline enum hb_verdict hb_parse(void *data, void *data_end,
						int not_host,
						struct hb_pkt *pkt)
{
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct udphdr *udp;
	__u32 ihl, ulen;
	__u8 *payload;

	if ((void *)(eth + 1) > data_end)
		return HB_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return HB_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return HB_PASS;
	if (ip->version != 4 || ip->protocol != IPPROTO_UDP)
		return HB_PASS;
	ihl = ip->ihl * 4;
	if (ihl < sizeof(*ip))
		return HB_PASS;
	if (ip->frag_off & bpf_htons(HB_IP_MF | HB_IP_OFFSET))
		return HB_PASS;
	if (hb_addr && ip->daddr != hb_addr)
		return HB_PASS;
	udp = (void *)ip + ihl;
	if ((void *)(udp + 1) > data_end)
		return HB_PASS;
	if (!hb_port || udp->dest != bpf_htons(hb_port))
		return HB_PASS;

	/* For the port: answered only if a socket bound there would be given it. */
	if (ihl != sizeof(*ip))
		return HB_DECLINE_IP_OPTIONS;
	if (!hb_ip_csum_ok(ip))
		return HB_DECLINE_IP_CSUM;
	if (!hb_unicast_addr(ip->daddr))
		return HB_DECLINE_DST;
	if (!hb_unicast_addr(ip->saddr) ||
	    (!hb_ifloopback && ip->saddr == ip->daddr))
		return HB_DECLINE_SRC;
	if (not_host || !hb_frame_for_us(eth))
		return HB_DECLINE_NOT_HOST;

	/* Addressed to us: from here on it is a request or it is rejected. */
	ulen = bpf_ntohs(udp->len);
	if (ulen < sizeof(*udp) + HELLO_MIN_REQUEST ||
	    ulen > sizeof(*udp) + HELLO_MAX_REQUEST)
		return HB_REJECT;
	if (bpf_ntohs(ip->tot_len) < ihl + ulen)
		return HB_REJECT;
	/*
	 * Masked (a no-op: ulen <= 1480) so that the bound is on the register that meets
	 * the packet pointer: older verifiers (6.1) forget a spilled scalar's range.
	 */
	ulen &= HB_ULEN_MASK;
	if ((void *)udp + ulen > data_end)
		return HB_REJECT;
	payload = (void *)(udp + 1);
	if ((void *)(payload + HELLO_REPLY_LEN) > data_end)
		return HB_REJECT;
	if (payload[0] != 'H' || payload[1] != 'E' || payload[2] != 'L' ||
	    payload[3] != 'L' || payload[4] != 'O')
		return HB_REJECT;

	pkt->eth = eth;
	pkt->ip = ip;
	pkt->udp = udp;
	pkt->payload = payload;
	pkt->udp_len = ulen;
	return HB_ANSWER;
}

/* The pseudo-header sum (RFC 768), unfolded. */
static __always_inline __u64 hb_pseudo_sum(const struct iphdr *ip,
					   const struct udphdr *udp)
{
	return (__u64)ip->saddr + ip->daddr + bpf_htons(IPPROTO_UDP) + udp->len;
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for one 16-bit word. */
static __always_inline __u16 hb_csum_update(__u16 check, __u16 old, __u16 new)
{
	return ~hb_fold((__u16)~check + (__u16)~old + (__u64)new);
}

/* Swap source and destination of every layer: no checksum changes. */
static __always_inline void hb_swap_addresses(struct hb_pkt *pkt)
{
	__u8 mac[ETH_ALEN];
	__be32 addr;
	__be16 port;

	__builtin_memcpy(mac, pkt->eth->h_source, ETH_ALEN);
	__builtin_memcpy(pkt->eth->h_source, pkt->eth->h_dest, ETH_ALEN);
	__builtin_memcpy(pkt->eth->h_dest, mac, ETH_ALEN);
	addr = pkt->ip->saddr;
	pkt->ip->saddr = pkt->ip->daddr;
	pkt->ip->daddr = addr;
	port = pkt->udp->source;
	pkt->udp->source = pkt->udp->dest;
	pkt->udp->dest = port;
}

/*
 * The sum of the UDP datagram (header and payload) in chunks that
 * bpf_csum_diff accepts and a byte tail; returns -1 when it does not fit.
 */
static __always_inline __s64 hb_udp_sum(struct hb_pkt *pkt, void *data_end)
{
	__u8 *p = (void *)pkt->udp;
	__u32 len = pkt->udp_len;
	__u64 sum = 0;
	__u16 last = 0;

	if (len >= 2 * 1024)
		return -1;
#define HB_SUM_CHUNK(n)							\
	do {								\
		if (p + (n) > (__u8 *)data_end)				\
			return -1;					\
		sum += (__u32)bpf_csum_diff(NULL, 0, (void *)p, (n), 0); \
		p += (n);						\
	} while (0)
#define HB_SUM_STEP(n)							\
	do {								\
		if (len & (n))						\
			HB_SUM_CHUNK(n);				\
	} while (0)
	if (len & 1024) {
		HB_SUM_CHUNK(HB_CHUNK);
		HB_SUM_CHUNK(HB_CHUNK);
	}
	HB_SUM_STEP(HB_CHUNK);
	HB_SUM_STEP(256);
	HB_SUM_STEP(128);
	HB_SUM_STEP(64);
	HB_SUM_STEP(32);
	HB_SUM_STEP(16);
	HB_SUM_STEP(8);
	HB_SUM_STEP(4);
#undef HB_SUM_STEP
#undef HB_SUM_CHUNK
	if (len & 2) {
		if (p + 2 > (__u8 *)data_end)
			return -1;
		sum += *(__u16 *)p;
		p += 2;
	}
	if (len & 1) {
		if (p + 1 > (__u8 *)data_end)
			return -1;
		((__u8 *)&last)[0] = *p;	/* padded with a zero byte */
		sum += last;
	}
	return hb_fold(sum);
}

/* Compute the full UDP checksum of the (already rewritten) datagram. */
static __always_inline int hb_udp_full_csum(struct hb_pkt *pkt, void *data_end)
{
	__s64 sum;
	__u16 check;

	pkt->udp->check = 0;
	sum = hb_udp_sum(pkt, data_end);
	if (sum < 0)
		return -1;
	check = ~hb_fold(hb_pseudo_sum(pkt->ip, pkt->udp) + (__u64)sum);
	pkt->udp->check = check ? check : 0xffff;
	return 0;
}

#endif /* HB_REFLECT_H */
