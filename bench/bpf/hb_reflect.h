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
 * The source must be one a reply can go to as a unicast datagram, as
 * udp_sendmsg() insists for a socket's reply: not a group MAC (the Ethernet
 * source with the group bit set, ff:ff:.. or 01:..: the reply would flood the
 * segment), not UDP source port 0, and - off lo - an address whose route back
 * is a unicast route through the receiving interface (hb_route_back(): a
 * directed broadcast such as 198.18.0.3 of a /30 is refused).
 *
 * With a wildcard address (hb_addr == 0) only datagrams addressed to this host
 * are answered, never transit traffic: see hb_local_dst() and
 * hb_local_on_lo().
 *
 * The UDP checksum is verified where the program cannot know the checksum
 * state; see the programs' own comments (hello_xdp.bpf.c, hello_tc.bpf.c).
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
/*
 * The broadcast address of the interface's IPv4 subnet (network byte order,
 * SIOCGIFBRDADDR), written by a loader that knows it; 0: unknown.  It lets
 * the program refuse a directed broadcast source where the route lookup
 * answers nothing (hb_route_back()).
 */
const volatile __u32 hb_ifbcast = 0;

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
	/*
	 * Appended: a UDP checksum that does not verify where the program
	 * cannot tell that the skb carries a partial one (passed to the stack,
	 * which drops it and counts UdpInCsumErrors).
	 */
	__u64 declined_udp_csum;
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
	HB_DECLINE_UDP_CSUM,	/* the UDP checksum does not verify */
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
	case HB_DECLINE_UDP_CSUM:
		c->declined_udp_csum++;
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

#ifndef AF_INET
#define AF_INET 2
#endif
#define HB_FIB_LOOKUP_OUTPUT	(1U << 1)	/* BPF_FIB_LOOKUP_OUTPUT, 4.18 */
#define HB_FIB_LOOKUP_SRC	(1U << 4)	/* BPF_FIB_LOOKUP_SRC, 6.8 */
#define HB_FIB_SUCCESS		0		/* BPF_FIB_LKUP_RET_SUCCESS */
#define HB_FIB_NOT_FWDED	4		/* BPF_FIB_LKUP_RET_NOT_FWDED */
#define HB_FIB_FWD_DISABLED	5		/* BPF_FIB_LKUP_RET_FWD_DISABLED */
#define HB_FIB_NO_NEIGH		7		/* BPF_FIB_LKUP_RET_NO_NEIGH */

/* The output route to dst through ifindex; the bpf_fib_lookup() verdict. */
static __always_inline long hb_fib_out(void *ctx, __u32 ifindex, __be32 dst,
				       __u32 flags, __be32 *src)
{
	struct bpf_fib_lookup fib = {};
	long rc;

	fib.family = AF_INET;
	fib.l4_protocol = IPPROTO_UDP;
	fib.ipv4_dst = dst;
	fib.ifindex = ifindex;
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), HB_FIB_LOOKUP_OUTPUT | flags);
	if (src)
		*src = fib.ipv4_src;
	return rc;
}

/*
 * Off lo: can a reply go back to src as a unicast datagram out of this
 * interface?  The output route to it must be a unicast route through ifindex
 * (SUCCESS, or NO_NEIGH: the route is unicast, the neighbour merely not
 * resolved; the reply reuses the request's MACs).  A broadcast route (the
 * subnet's directed broadcast), a local one (an address of this host), an
 * unreachable, blackhole or prohibit route, or one through another interface
 * (a source the strict reverse-path filter would refuse) is not.  This is
 * the route udp_sendmsg() would look up for a socket's reply; a socket
 * without SO_BROADCAST gets EACCES for a broadcast one.
 *
 * bpf_fib_lookup() looks nothing up for an interface without IPv4 forwarding
 * (FWD_DISABLED, whatever the flags; the default on a host and in a new
 * namespace).  There the source is checked by its address class only
 * (hb_unicast_addr()) and against the interface's broadcast address when the
 * loader wrote it (hb_ifbcast); without either, a directed broadcast source,
 * which only the routing table can tell from a unicast address, is not
 * recognised.
 */
static __always_inline int hb_route_back(void *ctx, __u32 ifindex, __be32 src)
{
	long rc = hb_fib_out(ctx, ifindex, src, 0, NULL);

	/* the helper answers only where forwarding is on: see below */
	return rc == HB_FIB_SUCCESS || rc == HB_FIB_NO_NEIGH ||
	       rc == HB_FIB_FWD_DISABLED;
}

/*
 * Off lo with the wildcard address (hb_addr == 0): is dst an address of this
 * host, so that a socket bound to 0.0.0.0 would have been given the datagram?
 * Asked the upstream way, of the routing table: the source address the kernel
 * chooses for the reply to src (BPF_FIB_LOOKUP_SRC, the route's preferred
 * source, which is what such a socket would send from) must be the request's
 * destination.  That is an address of this host on this interface's route,
 * never a broadcast, a multicast or somebody else's (transit) address.  A
 * secondary address that is not the preferred source is declined too (passed
 * to the stack): on the safe side.  A kernel older than 6.8 refuses the flag
 * (-EINVAL), and then nothing is answered with a wildcard address: everything
 * goes to the stack.  The same holds where the helper looks nothing up
 * (FWD_DISABLED, IPv4 forwarding off on the interface): without the table
 * nothing tells an address of this host from a transit one, so with a
 * wildcard address such an interface answers nothing in place.  (A lookup of
 * dst itself cannot tell either: the helper returns NOT_FWDED alike for local,
 * broadcast and unroutable destinations.)
 */
static __always_inline int hb_local_dst(void *ctx, __u32 ifindex, __be32 src,
					__be32 dst)
{
	__be32 pref = 0;
	long rc = hb_fib_out(ctx, ifindex, src, HB_FIB_LOOKUP_SRC, &pref);

	return (rc == HB_FIB_SUCCESS || rc == HB_FIB_NO_NEIGH) && pref == dst;
}

/*
 * On lo with the wildcard address: every datagram on lo was routed there by
 * this host, so it is for a local address unless somebody injected it; the
 * route to dst must not lead off this host (NOT_FWDED: a local route, where
 * a unicast route - transit - would be SUCCESS or NO_NEIGH; FWD_DISABLED, no
 * answer from the helper, is not enough).  Loopback addresses are local by
 * definition (hb_unicast_addr() has refused 127.255.255.255 already).
 */
static __always_inline int hb_local_on_lo(void *ctx, __u32 ifindex, __be32 dst)
{
	if ((bpf_ntohl(dst) >> 24) == 127)
		return 1;
	return hb_fib_out(ctx, ifindex, dst, 0, NULL) == HB_FIB_NOT_FWDED;
}

static __always_inline int hb_group_mac(const __u8 *mac)
{
	return mac[0] & 1;	/* broadcast ff:ff:.. and multicast 01:.. alike */
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
 * (tc reads skb->pkt_type); the MAC is compared in any case.  ctx and ifindex
 * (the receiving interface) are for the route lookups.
 */
static __always_inline enum hb_verdict hb_parse(void *ctx, __u32 ifindex,
						void *data, void *data_end,
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
	if (hb_group_mac(eth->h_source) || !udp->source)
		return HB_DECLINE_SRC;
	if (hb_ifbcast && ip->saddr == hb_ifbcast)
		return HB_DECLINE_SRC;
	if (hb_ifbcast && ip->daddr == hb_ifbcast)
		return HB_DECLINE_DST;
	if (not_host || !hb_frame_for_us(eth))
		return HB_DECLINE_NOT_HOST;
	if (hb_ifloopback) {
		if (!hb_addr && !hb_local_on_lo(ctx, ifindex, ip->daddr))
			return HB_DECLINE_DST;
	} else {
		if (!hb_route_back(ctx, ifindex, ip->saddr))
			return HB_DECLINE_SRC;
		if (!hb_addr && !hb_local_dst(ctx, ifindex, ip->saddr, ip->daddr))
			return HB_DECLINE_DST;
	}

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

/*
 * HB_UDP_SUM(name, ctx type) defines name(ctx, off, len): the sum of the len
 * bytes of the packet at off (hb_udp_sum()), or -1.  It is a global function:
 * the verifier checks it once on its own, and its callers see an unknown
 * result, so that summing in a program does not multiply the paths the
 * verifier walks through the rest of it (a handful of sums inlined into one
 * program went from 0.15 to 0.7 million instructions processed).
 */
#define HB_UDP_SUM(name, ctx_type)					\
__attribute__((noinline)) int name(ctx_type *ctx, __u32 off, __u32 len)	\
{									\
	void *data = (void *)(long)ctx->data;				\
	void *data_end = (void *)(long)ctx->data_end;			\
	struct hb_pkt pkt = {};						\
									\
	if (off > ETH_HLEN + 60)					\
		return -1;						\
	pkt.udp = data + off;						\
	pkt.udp_len = len;						\
	return (int)hb_udp_sum(&pkt, data_end);				\
}

#endif /* HB_REFLECT_H */
