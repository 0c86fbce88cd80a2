// SPDX-License-Identifier: MIT
/*
 * afxdp-c: a HELLO server on an AF_XDP socket.
 *
 * The XDP program (afxdp_hello.bpf.c) redirects HELLO requests for --addr and
 * --port into this process's AF_XDP socket; the frame is rewritten in place
 * in the UMEM into its reply (MACs, addresses and ports swapped, TTL reset,
 * "GOT IT" over the first six payload bytes, both checksums recomputed) and
 * put on the TX ring.  In copy mode (generic XDP on lo, or native XDP on veth
 * without zero-copy) the kernel transmits only when asked: by a sendto() kick,
 * or by poll() on the socket, which transmits what the TX ring holds before it
 * sleeps.  The server waits for frames in poll() (--wait poll: that poll() is
 * then the one syscall a lone request costs) or spins on the RX ring and kicks
 * every batch (--wait spin).  No socket read or write is made for a request.
 *
 * A UDP socket is bound to the address and port as well: it holds the port,
 * and the datagrams for it that are not requests (passed to the stack by the
 * XDP program) land there and are discarded, as a HELLO server does.
 *
 * The program is attached through a bpf_link held only by this process, and
 * the socket is this process's file: when the process dies, however it dies,
 * the kernel detaches the program and frees the socket and its UMEM.
 *
 * Usage: hello-afxdp-c --obj FILE [--addr A] [--port P] [--ifname I]
 *        [--queue Q] [--xdp-mode auto|skb|drv] [--bind auto|copy|zerocopy]
 *        [--wait poll|spin] [--info FILE]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "hb_server.h"
#include "hello_proto.h"

#ifndef SOL_XDP
#define SOL_XDP 283
#endif
#ifndef AF_XDP
#define AF_XDP 44
#endif

#define NUM_FRAMES	4096
#define FRAME_SIZE	4096
#define RX_SIZE		2048
#define TX_SIZE		2048
#define FILL_SIZE	4096
#define COMP_SIZE	4096
#define BATCH		64
#define TX_BUDGET	32	/* frames one copy-mode kick sends (TX_BATCH_SIZE) */
#define MAX_KICKS	(TX_SIZE / TX_BUDGET)
#define REPLY_TTL	64
#define POLL_MS		500
#define POLL_PENDING_MS	1
#define PROG_NAME	"hb_xdp_afxdp"
#define XSKMAP_NAME	"hb_xsks"

struct ring {
	__u32 *producer;
	__u32 *consumer;
	__u32 *flags;
	void *desc;
	__u32 mask;
	__u32 size;
	void *map;
	size_t map_len;
};

struct options {
	const char *obj;
	const char *addr;
	const char *ifname;
	const char *xdp_mode;
	const char *bind_mode;
	const char *info;
	int port;
	int queue;
	int spin;
};

struct server {
	int ifindex;
	int xsk;
	int udp;
	int link;
	int zerocopy;
	const char *xdp_mode;
	struct bpf_object *obj;
	__u8 *umem;
	struct ring fill, comp, rx, tx;
	__u32 tx_outstanding;
	__u64 answered, dropped, stack_discarded;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("hello-afxdp-c: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* -- checksums (RFC 1071), summed in memory byte order -------------------- */

static __u16 fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

static __u64 sum_bytes(const __u8 *p, size_t len)
{
	__u64 sum = 0;
	__u32 w32;
	__u16 w16 = 0;

	while (len >= 4) {
		memcpy(&w32, p, 4);
		sum += w32;
		p += 4;
		len -= 4;
	}
	if (len >= 2) {
		memcpy(&w16, p, 2);
		sum += w16;
		p += 2;
		len -= 2;
	}
	if (len) {
		w16 = 0;
		((__u8 *)&w16)[0] = *p;	/* padded with a zero byte */
		sum += w16;
	}
	return sum;
}

static __u64 pseudo_sum(const struct iphdr *ip, const struct udphdr *udp)
{
	return (__u64)ip->saddr + ip->daddr + htons(IPPROTO_UDP) + udp->len;
}

/* -- the reply ------------------------------------------------------------- */

/*
 * Could a reply go back to the request's source as a unicast datagram, as
 * udp_sendmsg() insists for a socket's reply?  Not to a group MAC (the group
 * bit of the Ethernet source: broadcast ff:ff:.. or multicast 01:..; the reply
 * would flood the segment), not to UDP port 0, not to 0.0.0.0/8, a multicast
 * group or the limited broadcast.  A directed broadcast source (the subnet's
 * broadcast address) is declined by the XDP program's route lookup
 * (hb_reflect.h) before the frame ever reaches this socket.
 */
static int unicast_source(const struct ethhdr *eth, const struct iphdr *ip,
			  const struct udphdr *udp)
{
	__u32 src = ntohl(ip->saddr);

	if (eth->h_source[0] & 1)
		return 0;
	if (!udp->source)
		return 0;
	if ((src >> 24) == 0 || (src >> 28) == 0xe || src == 0xffffffff)
		return 0;
	return 1;
}

/*
 * Rewrite the request in frame (len bytes) into its reply; returns the reply's
 * frame length, or 0 when the frame is not to be answered.  The XDP program
 * has checked the request; the bounds are checked again here all the same.
 *
 * The request's UDP checksum is either full (verified: a bad one is dropped,
 * as the stack would), zero (none), or partial: a datagram sent by a local
 * socket over lo or veth carries only the folded pseudo-header sum
 * (CHECKSUM_PARTIAL), recognised by value.  The reply leaves the TX ring as a
 * plain frame without checksum state, so it always gets the full checksum.
 * Recognised by value only, which is a known gap: a forged or corrupted
 * request whose field holds that sum gets a reply with a valid checksum where
 * the stack would have dropped the request.  A frame in the UMEM carries no
 * checksum state to tell it from a partial one, and verifying it would refuse
 * every request a local socket sends over lo or veth.
 */
static __u32 make_reply(__u8 *frame, __u32 len)
{
	struct ethhdr *eth = (struct ethhdr *)frame;
	struct iphdr *ip = (struct iphdr *)(eth + 1);
	struct udphdr *udp = (struct udphdr *)(ip + 1);
	__u8 *payload = (__u8 *)(udp + 1);
	__u8 mac[ETH_ALEN];
	__u16 check, full, ulen, tot;
	__u64 pseudo, sum;
	__u32 addr;
	__u16 port;
	__u16 old[3], new[3];

	if (len < sizeof(*eth) + sizeof(*ip) + sizeof(*udp) + HELLO_MIN_REQUEST)
		return 0;
	if (ip->version != 4 || ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		return 0;
	tot = ntohs(ip->tot_len);
	ulen = ntohs(udp->len);
	if (tot > len - sizeof(*eth) || ulen != tot - sizeof(*ip) ||
	    ulen < sizeof(*udp) + HELLO_MIN_REQUEST ||
	    ulen > sizeof(*udp) + HELLO_MAX_REQUEST ||
	    memcmp(payload, HELLO_MAGIC, HELLO_MAGIC_LEN))
		return 0;

	if (!unicast_source(eth, ip, udp))
		return 0;

	pseudo = pseudo_sum(ip, udp);	/* the same after the swap */
	check = udp->check;
	udp->check = 0;
	sum = sum_bytes((__u8 *)udp, ulen);
	if (check) {
		full = ~fold(pseudo + sum);
		if (!full)
			full = 0xffff;
		if (check != full && check != fold(pseudo))
			return 0;
	}

	memcpy(mac, eth->h_source, ETH_ALEN);
	memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	memcpy(eth->h_dest, mac, ETH_ALEN);
	addr = ip->saddr;
	ip->saddr = ip->daddr;
	ip->daddr = addr;
	ip->ttl = REPLY_TTL;
	ip->check = 0;
	ip->check = ~fold(sum_bytes((__u8 *)ip, sizeof(*ip)));
	port = udp->source;
	udp->source = udp->dest;
	udp->dest = port;

	/* RFC 1624: the sum changes by the six rewritten payload bytes only */
	memcpy(old, payload, sizeof(old));
	memcpy(payload, HELLO_REPLY, HELLO_REPLY_LEN);
	memcpy(new, payload, sizeof(new));
	sum += (__u64)(__u16)~old[0] + (__u16)~old[1] + (__u16)~old[2];
	sum += (__u64)new[0] + new[1] + new[2];
	full = ~fold(pseudo + sum);
	udp->check = full ? full : 0xffff;
	return sizeof(*eth) + tot;
}

/* -- rings ------------------------------------------------------------------ */

static __u32 load_acquire(__u32 *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void store_release(__u32 *p, __u32 v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static int map_ring(int fd, struct ring *r, const struct xdp_ring_offset *off,
		    __u32 size, size_t desc_size, off_t pgoff)
{
	r->map_len = off->desc + size * desc_size;
	r->map = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_POPULATE, fd, pgoff);
	if (r->map == MAP_FAILED) {
		r->map = NULL;
		return -errno;
	}
	r->producer = (__u32 *)((__u8 *)r->map + off->producer);
	r->consumer = (__u32 *)((__u8 *)r->map + off->consumer);
	r->flags = (__u32 *)((__u8 *)r->map + off->flags);
	r->desc = (__u8 *)r->map + off->desc;
	r->size = size;
	r->mask = size - 1;
	return 0;
}

static void unmap_ring(struct ring *r)
{
	if (r->map)
		munmap(r->map, r->map_len);
	r->map = NULL;
}

static void close_xsk(struct server *s)
{
	unmap_ring(&s->fill);
	unmap_ring(&s->comp);
	unmap_ring(&s->rx);
	unmap_ring(&s->tx);
	if (s->xsk >= 0)
		close(s->xsk);
	s->xsk = -1;
}

static int set_ring_size(int fd, int opt, __u32 size)
{
	return setsockopt(fd, SOL_XDP, opt, &size, sizeof(size)) ? -errno : 0;
}

/* A socket with its UMEM and four rings, bound with flags; -errno on error. */
static int open_xsk(struct server *s, int queue, __u16 flags)
{
	struct xdp_umem_reg reg = {
		.addr = (__u64)(uintptr_t)s->umem,
		.len = (__u64)NUM_FRAMES * FRAME_SIZE,
		.chunk_size = FRAME_SIZE,
		.headroom = 0,
	};
	struct sockaddr_xdp sxdp = {
		.sxdp_family = AF_XDP,
		.sxdp_ifindex = s->ifindex,
		.sxdp_queue_id = queue,
		.sxdp_flags = flags,
	};
	struct xdp_mmap_offsets off;
	socklen_t optlen = sizeof(off);
	__u64 *fill;
	__u32 i;
	int err;

	s->xsk = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (s->xsk < 0)
		return -errno;
	if (setsockopt(s->xsk, SOL_XDP, XDP_UMEM_REG, &reg, sizeof(reg))) {
		err = -errno;
		goto fail;
	}
	err = set_ring_size(s->xsk, XDP_UMEM_FILL_RING, FILL_SIZE);
	if (!err)
		err = set_ring_size(s->xsk, XDP_UMEM_COMPLETION_RING,
				    COMP_SIZE);
	if (!err)
		err = set_ring_size(s->xsk, XDP_RX_RING, RX_SIZE);
	if (!err)
		err = set_ring_size(s->xsk, XDP_TX_RING, TX_SIZE);
	if (err)
		goto fail;
	if (getsockopt(s->xsk, SOL_XDP, XDP_MMAP_OFFSETS, &off, &optlen)) {
		err = -errno;
		goto fail;
	}
	err = map_ring(s->xsk, &s->fill, &off.fr, FILL_SIZE, sizeof(__u64),
		       XDP_UMEM_PGOFF_FILL_RING);
	if (!err)
		err = map_ring(s->xsk, &s->comp, &off.cr, COMP_SIZE,
			       sizeof(__u64), XDP_UMEM_PGOFF_COMPLETION_RING);
	if (!err)
		err = map_ring(s->xsk, &s->rx, &off.rx, RX_SIZE,
			       sizeof(struct xdp_desc), XDP_PGOFF_RX_RING);
	if (!err)
		err = map_ring(s->xsk, &s->tx, &off.tx, TX_SIZE,
			       sizeof(struct xdp_desc), XDP_PGOFF_TX_RING);
	if (err)
		goto fail;

	/* every frame starts on the fill ring */
	fill = s->fill.desc;
	for (i = 0; i < NUM_FRAMES; i++)
		fill[i & s->fill.mask] = (__u64)i * FRAME_SIZE;
	store_release(s->fill.producer, NUM_FRAMES);

	if (bind(s->xsk, (struct sockaddr *)&sxdp, sizeof(sxdp))) {
		err = -errno;
		goto fail;
	}
	return 0;
fail:
	close_xsk(s);
	return err;
}

/* Give frames back to the fill ring (it has room for every frame). */
static void refill(struct server *s, const __u64 *addrs, __u32 n)
{
	__u64 *fill = s->fill.desc;
	__u32 prod = *s->fill.producer;
	__u32 i;

	for (i = 0; i < n; i++)
		fill[(prod + i) & s->fill.mask] = addrs[i];
	store_release(s->fill.producer, prod + n);
}

/* Move transmitted frames from the completion ring back to the fill ring. */
static void complete_tx(struct server *s)
{
	__u64 *comp = s->comp.desc;
	__u32 cons = *s->comp.consumer;
	__u32 n = load_acquire(s->comp.producer) - cons;
	__u64 addrs[BATCH];
	__u32 i;

	if (n > BATCH)
		n = BATCH;
	if (!n)
		return;
	for (i = 0; i < n; i++)
		addrs[i] = comp[(cons + i) & s->comp.mask];
	store_release(s->comp.consumer, cons + n);
	refill(s, addrs, n);
	s->tx_outstanding -= n;
}

/* Descriptors on the TX ring the kernel has not taken yet. */
static __u32 tx_pending(struct server *s)
{
	return *s->tx.producer - load_acquire(s->tx.consumer);
}

static void kick_tx(struct server *s)
{
	if (s->zerocopy && !(*s->tx.flags & XDP_RING_NEED_WAKEUP))
		return;
	if (sendto(s->xsk, NULL, 0, MSG_DONTWAIT, NULL, 0) < 0 &&
	    errno != EAGAIN && errno != EBUSY && errno != ENOBUFS &&
	    errno != ENETDOWN && errno != EINTR)
		die("TX kick: %s", strerror(errno));
}

/*
 * Whether to kick now.  poll() on the socket transmits what the TX ring holds
 * before it sleeps (copy mode: up to TX_BUDGET frames; zero-copy: it wakes the
 * driver), so while waiting in poll() a separate sendto() is needed only for
 * more than one poll() sends; spinning, every reply is kicked.
 */
static int must_kick(struct server *s, int spin)
{
	__u32 pending = tx_pending(s);

	return spin ? pending > 0 : pending >= TX_BUDGET;
}

/* Answer what the RX ring holds; returns the number of frames taken. */
static __u32 serve_batch(struct server *s)
{
	struct xdp_desc *rx = s->rx.desc, *tx = s->tx.desc;
	__u32 cons = *s->rx.consumer;
	__u32 n = load_acquire(s->rx.producer) - cons;
	__u32 tx_prod = *s->tx.producer;
	__u32 tx_free = s->tx.size - (tx_prod - load_acquire(s->tx.consumer));
	__u64 drop[BATCH];
	__u32 i, sent = 0, dropped = 0;

	if (n > BATCH)
		n = BATCH;
	for (i = 0; i < n; i++) {
		struct xdp_desc d = rx[(cons + i) & s->rx.mask];
		__u32 len = 0;

		if (sent < tx_free && d.len <= FRAME_SIZE &&
		    d.addr <= (__u64)(NUM_FRAMES - 1) * FRAME_SIZE +
			      (FRAME_SIZE - d.len))
			len = make_reply(s->umem + d.addr, d.len);
		if (!len) {
			drop[dropped++] = d.addr;
			continue;
		}
		tx[(tx_prod + sent) & s->tx.mask] =
			(struct xdp_desc){ .addr = d.addr, .len = len };
		sent++;
	}
	if (!n)
		return 0;
	store_release(s->rx.consumer, cons + n);
	if (dropped)
		refill(s, drop, dropped);
	s->dropped += dropped;
	if (sent) {
		store_release(s->tx.producer, tx_prod + sent);
		s->tx_outstanding += sent;
		s->answered += sent;
	}
	return n;
}

/* Datagrams for the port that the XDP program passed to the stack. */
static void discard_stack(struct server *s)
{
	char buf[64];

	while (recv(s->udp, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC) >= 0)
		s->stack_discarded++;
}

static void wait_for_work(struct server *s)
{
	struct pollfd fds[2] = {
		{ .fd = s->xsk, .events = POLLIN },
		{ .fd = s->udp, .events = POLLIN },
	};

	/*
	 * poll() transmits what is pending before it sleeps, but a transmit
	 * can stop early (the receiver's backlog full: EBUSY), so with
	 * frames pending it sleeps briefly and the next call tries again.
	 */
	if (poll(fds, 2, tx_pending(s) ? POLL_PENDING_MS : POLL_MS) < 0) {
		if (errno != EINTR)
			die("poll: %s", strerror(errno));
		return;
	}
	if (fds[1].revents & POLLIN)
		discard_stack(s);
}

static void serve(struct server *s, int spin)
{
	__u32 idle = 0, kicks = 0;
	int polled = 0;

	while (!hb_stopping) {
		if (s->tx_outstanding)
			complete_tx(s);
		if (serve_batch(s)) {
			if (must_kick(s, spin))
				kick_tx(s);
			idle = 0;
			polled = 0;
			continue;
		}
		/*
		 * A kick sends at most TX_BUDGET frames: repeat, boundedly.
		 * Frames a poll() already tried to send are kicked too.
		 */
		if ((must_kick(s, spin) || (polled && tx_pending(s))) &&
		    kicks++ < MAX_KICKS) {
			kick_tx(s);
			continue;
		}
		kicks = 0;
		if (!spin) {
			polled = tx_pending(s) > 0;
			wait_for_work(s);
			continue;
		}
		if (*s->fill.flags & XDP_RING_NEED_WAKEUP)
			recvfrom(s->xsk, NULL, 0, MSG_DONTWAIT, NULL, NULL);
		if (++idle % 4096 == 0)
			discard_stack(s);
		__builtin_ia32_pause();
	}
}

/* -- the XDP program -------------------------------------------------------- */

static __u8 *rodata_var(struct bpf_object *obj, const char *name, __u32 size)
{
	struct btf *btf = bpf_object__btf(obj);
	const struct btf_var_secinfo *vs;
	const struct btf_type *sec, *var;
	struct bpf_map *map, *rodata = NULL;
	size_t map_size;
	__u8 *data;
	int id, i;

	bpf_object__for_each_map(map, obj) {
		const char *mname = bpf_map__name(map);
		size_t n = strlen(mname);

		if (n >= 7 && !strcmp(mname + n - 7, ".rodata"))
			rodata = map;
	}
	if (!rodata || !btf)
		die("%s: no .rodata with BTF", PROG_NAME);
	/* libbpf before 1.2 declares the initial value const */
	data = (__u8 *)bpf_map__initial_value(rodata, &map_size);
	id = btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC);
	if (!data || id < 0)
		die("%s: no .rodata section", PROG_NAME);
	sec = btf__type_by_id(btf, id);
	vs = btf_var_secinfos(sec);
	for (i = 0; i < btf_vlen(sec); i++, vs++) {
		var = btf__type_by_id(btf, vs->type);
		if (strcmp(btf__name_by_offset(btf, var->name_off), name))
			continue;
		if (vs->size != size || vs->offset + vs->size > map_size)
			die("%s: %s has the wrong size", PROG_NAME, name);
		return data + vs->offset;
	}
	die("%s: no variable %s", PROG_NAME, name);
	return NULL;
}

static void configure_program(struct bpf_object *obj, const struct options *o,
			      __u32 addr)
{
	struct ifreq ifr = { 0 };
	__u16 port = (__u16)o->port;
	__u32 loopback, bcast = 0;
	int fd;

	memcpy(rodata_var(obj, "hb_port", 2), &port, 2);
	memcpy(rodata_var(obj, "hb_addr", 4), &addr, 4);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", o->ifname);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr))
		die("flags of %s: %s", o->ifname, strerror(errno));
	loopback = !!(ifr.ifr_flags & IFF_LOOPBACK);
	memcpy(rodata_var(obj, "hb_ifloopback", 4), &loopback, 4);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr))
		die("address of %s: %s", o->ifname, strerror(errno));
	memcpy(rodata_var(obj, "hb_ifmac", 6), ifr.ifr_hwaddr.sa_data, 6);
	/*
	 * The broadcast address of the primary address's subnet, as the kernel
	 * routes it (a broadcast route for prefixes up to /30, whether or not
	 * the address was given a brd): never a source.  0 without an address.
	 */
	if (!ioctl(fd, SIOCGIFADDR, &ifr)) {
		struct sockaddr_in sin;
		__u32 addr4, mask;

		memcpy(&sin, &ifr.ifr_addr, sizeof(sin));
		addr4 = sin.sin_addr.s_addr;
		if (!ioctl(fd, SIOCGIFNETMASK, &ifr)) {
			memcpy(&sin, &ifr.ifr_netmask, sizeof(sin));
			mask = sin.sin_addr.s_addr;
			if (ntohl(mask) < 0xfffffffe)	/* shorter than /31 */
				bcast = addr4 | ~mask;
		}
	}
	memcpy(rodata_var(obj, "hb_ifbcast", 4), &bcast, 4);
	close(fd);
}

static int attach_link(int prog_fd, int ifindex, __u32 flags)
{
	LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = flags);
	int fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &opts);

	return fd < 0 ? -errno : fd;
}

/* Attach through a bpf_link in the mode asked for (auto: skb on lo). */
static void attach_program(struct server *s, const struct options *o,
			   int loopback)
{
	struct bpf_program *prog;
	const char *mode = o->xdp_mode;
	int prog_fd, fd;

	prog = bpf_object__find_program_by_name(s->obj, PROG_NAME);
	if (!prog)
		die("no program %s", PROG_NAME);
	prog_fd = bpf_program__fd(prog);
	if (!strcmp(mode, "auto"))
		mode = loopback ? "skb" : "drv";
	fd = attach_link(prog_fd, s->ifindex, !strcmp(mode, "skb") ?
			 XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE);
	if (fd < 0 && !strcmp(o->xdp_mode, "auto") && !strcmp(mode, "drv")) {
		mode = "skb";
		fd = attach_link(prog_fd, s->ifindex, XDP_FLAGS_SKB_MODE);
	}
	if (fd == -EBUSY || fd == -EEXIST)
		die("%s already has an XDP program (%s)", o->ifname,
		    strerror(-fd));
	if (fd < 0)
		die("attaching %s to %s (%s mode): %s", PROG_NAME, o->ifname,
		    mode, strerror(-fd));
	s->link = fd;
	s->xdp_mode = mode;
}

static unsigned int id_of_prog(struct bpf_object *obj)
{
	struct bpf_program *prog = bpf_object__find_program_by_name(obj,
								    PROG_NAME);
	struct bpf_prog_info info = { 0 };
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len))
		return 0;
	return info.id;
}

static unsigned int id_of_map(struct bpf_object *obj, const char *name)
{
	struct bpf_map *map = bpf_object__find_map_by_name(obj, name);
	struct bpf_map_info info = { 0 };
	__u32 len = sizeof(info);

	if (!map || bpf_obj_get_info_by_fd(bpf_map__fd(map), &info, &len))
		return 0;
	return info.id;
}

/* -- setup -------------------------------------------------------------------- */

static void bind_socket(struct server *s, const struct options *o)
{
	int copy = !strcmp(o->bind_mode, "copy");
	int zc = !strcmp(o->bind_mode, "zerocopy");
	int err = -EOPNOTSUPP;

	/* zero-copy needs the driver's own XDP support */
	if (!copy && strcmp(s->xdp_mode, "skb")) {
		err = open_xsk(s, o->queue,
			       XDP_ZEROCOPY | XDP_USE_NEED_WAKEUP);
		if (!err) {
			s->zerocopy = 1;
			return;
		}
	}
	if (zc)
		die("zero-copy bind on %s queue %d: %s", o->ifname, o->queue,
		    strerror(-err));
	err = open_xsk(s, o->queue, XDP_COPY | XDP_USE_NEED_WAKEUP);
	if (err)
		die("AF_XDP bind on %s queue %d (copy mode, %s XDP): %s",
		    o->ifname, o->queue, s->xdp_mode, strerror(-err));
}

static int open_udp(const char *addr, int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_port = htons(port) };
	int fd, size = 4096;

	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
		die("bad address %s", addr);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)))
		die("SO_RCVBUF: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)))
		die("bind %s:%d: %s", addr, port, strerror(errno));
	return fd;
}

static void write_info(const struct options *o, struct server *s)
{
	FILE *f;

	if (!o->info)
		return;
	f = fopen(o->info, "w");
	if (!f)
		die("%s: %s", o->info, strerror(errno));
	fprintf(f,
		"{\"ifname\": \"%s\", \"queue\": %d, \"xdp_mode\": \"%s\", "
		"\"bind\": \"%s\", \"prog_id\": %u, \"map_id\": %u, "
		"\"xskmap_id\": %u}\n",
		o->ifname, o->queue, s->xdp_mode,
		s->zerocopy ? "zerocopy" : "copy", id_of_prog(s->obj),
		id_of_map(s->obj, "hb_counters"),
		id_of_map(s->obj, XSKMAP_NAME));
	if (fclose(f))
		die("%s: %s", o->info, strerror(errno));
}

static void parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "obj", required_argument, NULL, 'o' },
		{ "addr", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "ifname", required_argument, NULL, 'i' },
		{ "queue", required_argument, NULL, 'q' },
		{ "xdp-mode", required_argument, NULL, 'm' },
		{ "bind", required_argument, NULL, 'b' },
		{ "wait", required_argument, NULL, 'w' },
		{ "info", required_argument, NULL, 'I' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'o': o->obj = optarg; break;
		case 'a': o->addr = optarg; break;
		case 'p': o->port = atoi(optarg); break;
		case 'i': o->ifname = optarg; break;
		case 'q': o->queue = atoi(optarg); break;
		case 'm': o->xdp_mode = optarg; break;
		case 'b': o->bind_mode = optarg; break;
		case 'w': o->spin = !strcmp(optarg, "spin");
			if (!o->spin && strcmp(optarg, "poll"))
				die("--wait must be poll or spin");
			break;
		case 'I': o->info = optarg; break;
		default: exit(2);
		}
	}
	if (!o->obj)
		die("--obj is required");
	if (o->port <= 0 || o->port > 65535)
		die("bad port");
	if (o->queue < 0 || o->queue >= 64)
		die("bad queue (0..63)");
	if (strcmp(o->xdp_mode, "auto") && strcmp(o->xdp_mode, "skb") &&
	    strcmp(o->xdp_mode, "drv"))
		die("--xdp-mode must be auto, skb or drv");
	if (strcmp(o->bind_mode, "auto") && strcmp(o->bind_mode, "copy") &&
	    strcmp(o->bind_mode, "zerocopy"))
		die("--bind must be auto, copy or zerocopy");
}

int main(int argc, char **argv)
{
	struct options o = { .addr = "127.0.0.1", .port = 3000,
			     .ifname = "lo", .xdp_mode = "auto",
			     .bind_mode = "auto" };
	struct server s = { .xsk = -1, .udp = -1, .link = -1 };
	struct bpf_map *xsks;
	struct in_addr ia;
	__u32 key;
	int loopback;

	parse_options(argc, argv, &o);
	if (inet_pton(AF_INET, o.addr, &ia) != 1)
		die("bad address %s", o.addr);
	if (hb_stop_on_signal(-1))
		die("sigaction: %s", strerror(errno));
	s.ifindex = if_nametoindex(o.ifname);
	if (!s.ifindex)
		die("no interface %s", o.ifname);
	s.udp = open_udp(o.addr, o.port);

	s.obj = bpf_object__open_file(o.obj, NULL);
	if (!s.obj)
		die("opening %s: %s", o.obj, strerror(errno));
	configure_program(s.obj, &o, ia.s_addr);
	if (bpf_object__load(s.obj))
		die("loading %s: %s", o.obj, strerror(errno));
	loopback = *rodata_var(s.obj, "hb_ifloopback", 4);

	s.umem = mmap(NULL, (size_t)NUM_FRAMES * FRAME_SIZE,
		      PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (s.umem == MAP_FAILED)
		die("UMEM: %s", strerror(errno));

	attach_program(&s, &o, loopback);
	bind_socket(&s, &o);
	xsks = bpf_object__find_map_by_name(s.obj, XSKMAP_NAME);
	key = (__u32)o.queue;
	if (!xsks || bpf_map_update_elem(bpf_map__fd(xsks), &key, &s.xsk, 0))
		die("XSKMAP entry for queue %d: %s", o.queue, strerror(errno));

	write_info(&o, &s);
	fprintf(stderr,
		"hello-afxdp-c: on %s queue %d: %s XDP, %s AF_XDP, %s:%d, wait %s\n",
		o.ifname, o.queue, s.xdp_mode,
		s.zerocopy ? "zero-copy" : "copy-mode", o.addr, o.port,
		o.spin ? "spin" : "poll");
	printf("READY\n");
	fflush(stdout);

	serve(&s, o.spin);
	fprintf(stderr, "hello-afxdp-c: answered %llu, dropped %llu, "
		"discarded from the stack %llu\n",
		(unsigned long long)s.answered, (unsigned long long)s.dropped,
		(unsigned long long)s.stack_discarded);

	close_xsk(&s);
	close(s.link);
	bpf_object__close(s.obj);
	close(s.udp);
	munmap(s.umem, (size_t)NUM_FRAMES * FRAME_SIZE);
	return 0;
}
