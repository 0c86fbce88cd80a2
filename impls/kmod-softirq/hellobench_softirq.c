// SPDX-License-Identifier: GPL-2.0
/*
 * hellobench_softirq: the HELLO server answered in the receive softirq.
 *
 * The module binds a kernel UDP socket and turns it into an encapsulation
 * socket (setup_udp_tunnel_sock): every datagram for it is handed to
 * hello_encap_rcv() inside the softirq that delivers it, before it would be
 * queued.  No thread is ever woken and no system call is made.
 *
 * The reply is a fresh datagram ("GOT IT" plus the request's bytes after
 * offset 6), built here and handed to ip_local_out() as the kernel's own
 * in-softirq senders do: routed with ip_route_output_key(), UDP and IP
 * headers written by hand, the UDP checksum left to udp_set_csum() (partial,
 * completed by the device or by the stack when the device cannot).  A request
 * whose source may not be answered (hello_source_ok()) is dropped as rejected;
 * a reply routed as a broadcast or multicast is not sent and counts as a send
 * error, as udp_sendmsg() would refuse it.  Nothing
 * on the way can sleep: the socket's sendmsg is not used because
 * udp_sendmsg() takes the socket lock (lock_sock, which may sleep) when a
 * cgroup BPF sendmsg4 program is attached anywhere.  Checksums of requests
 * were verified by UDP before the handler runs.
 *
 * Parameters (hello_kmod.h, shared with hellobench_kthread):
 *   port        UDP port, 1..65535 (default 3000), read-only
 *   addr        IPv4 address to bind (default 127.0.0.1), read-only
 *   cpu         validated like hellobench_kthread's, but has no effect: the
 *               answer runs on whichever CPU receives the datagram (on lo, the
 *               sender's), read-only
 *   fault_hang  tests only, writable at run time, 0..1 (other values are
 *               refused): 0 serve; 1 stop answering (datagrams are dropped
 *               unanswered)
 *
 * The socket lives in the network namespace of the process that loads the
 * module.  Counters are under /sys/kernel/hellobench_softirq/.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/in.h>
#include <linux/ip.h>
#include <linux/kobject.h>
#include <linux/module.h>
#include <linux/net.h>
#include <linux/netdevice.h>
#include <linux/nsproxy.h>
#include <linux/skbuff.h>
#include <linux/sysfs.h>
#include <linux/udp.h>
#include <linux/version.h>
#include <net/dst.h>
#include <net/ip.h>
#include <net/net_namespace.h>
#include <net/route.h>
#include <net/sock.h>
#include <net/udp.h>
#include <net/udp_tunnel.h>

enum hello_fault {
	HELLO_FAULT_NONE,
	HELLO_FAULT_STALL,
};

#define HELLO_FAULT_MAX		HELLO_FAULT_STALL
#define HELLO_CPU_DESC		\
	"accepted for symmetry, no effect: softirqs run where packets arrive"
#define HELLO_FAULT_DESC	"tests only: 1 stop answering (default 0)"
#include "hello_kmod.h"

struct hello_server {
	struct net *net;
	struct socket *sock;
	struct kobject *kobj;
	__be32 addr;
};

static struct hello_server server;

static ssize_t running_show(struct kobject *kobj,
			    struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n", READ_ONCE(server.sock) != NULL);
}
static struct kobj_attribute running_attr = __ATTR_RO(running);

static struct attribute *hello_attrs[] = {
	HELLO_STAT_ATTRS,
	&running_attr.attr,
	NULL,
};

static const struct attribute_group hello_group = {
	.attrs = hello_attrs,
};

/*
 * The payload of @skb made linear, its length in @len; NULL (and why, in
 * @reason) when it is no request.
 */
static u8 *hello_payload(struct sk_buff *skb, int *len,
			 enum skb_drop_reason *reason)
{
	int off = skb_transport_offset(skb) + sizeof(struct udphdr);

	*len = skb->len - off;
	if (*len < HELLO_MIN_REQUEST) {
		*reason = SKB_DROP_REASON_PKT_TOO_SMALL;
		return NULL;
	}
	if (*len > HELLO_MAX_REQUEST) {
		*reason = SKB_DROP_REASON_PKT_TOO_BIG;
		return NULL;
	}
	if (!pskb_may_pull(skb, off + *len)) {
		*reason = SKB_DROP_REASON_NOMEM;
		return NULL;
	}
	if (memcmp(skb->data + off, HELLO_MAGIC, HELLO_MAGIC_LEN)) {
		*reason = SKB_DROP_REASON_NOT_SPECIFIED;
		return NULL;
	}
	return skb->data + off;
}

/*
 * Sends the answer to @req (whose payload, @len bytes, is at @payload) from
 * the address and port it was sent to.  Softirq context: allocates atomically,
 * takes no lock that may sleep.  Returns 0 or a negative errno.
 */
static int hello_reply(struct sock *sk, struct sk_buff *req, const u8 *payload,
		       int len)
{
	const struct iphdr *rih = ip_hdr(req);
	const struct udphdr *ruh = udp_hdr(req);
	struct net *net = sock_net(sk);
	struct flowi4 fl4 = {};
	struct sk_buff *skb;
	struct udphdr *uh;
	struct iphdr *iph;
	struct rtable *rt;
	int ulen = sizeof(*uh) + len;
	int hlen, err;

	fl4.daddr = rih->saddr;
	fl4.saddr = rih->daddr;
	fl4.flowi4_proto = IPPROTO_UDP;
	fl4.fl4_dport = ruh->source;
	fl4.fl4_sport = ruh->dest;
	fl4.flowi4_uid = sock_net_uid(net, NULL);
	rt = ip_route_output_key(net, &fl4);
	if (IS_ERR(rt))
		return PTR_ERR(rt);
	/*
	 * Never to a broadcast (a directed one is known only here) nor to a
	 * multicast group: udp_sendmsg() refuses a broadcast to a socket
	 * without SO_BROADCAST, and a server must not answer a whole subnet.
	 */
	if (rt->rt_flags & (RTCF_BROADCAST | RTCF_MULTICAST)) {
		ip_rt_put(rt);
		return -EACCES;
	}

	hlen = LL_RESERVED_SPACE(rt->dst.dev) + sizeof(*iph) + sizeof(*uh);
	skb = alloc_skb(hlen + len, GFP_ATOMIC);
	if (!skb) {
		ip_rt_put(rt);
		return -ENOMEM;
	}
	skb_reserve(skb, hlen);
	skb_put_data(skb, HELLO_REPLY, HELLO_REPLY_LEN);
	skb_put_data(skb, payload + HELLO_REPLY_LEN, len - HELLO_REPLY_LEN);

	uh = skb_push(skb, sizeof(*uh));
	skb_reset_transport_header(skb);
	uh->source = fl4.fl4_sport;
	uh->dest = fl4.fl4_dport;
	uh->len = htons(ulen);
	/* CHECKSUM_PARTIAL with the pseudo-header sum, as udp_sendmsg() leaves it. */
	udp_set_csum(false, skb, fl4.saddr, fl4.daddr, ulen);

	iph = skb_push(skb, sizeof(*iph));
	skb_reset_network_header(skb);
	iph->version = 4;
	iph->ihl = sizeof(*iph) >> 2;
	iph->tos = 0;
	iph->tot_len = htons(skb->len);
	iph->frag_off = skb->len <= dst_mtu(&rt->dst) ? htons(IP_DF) : 0;
	iph->ttl = ip4_dst_hoplimit(&rt->dst);
	iph->protocol = IPPROTO_UDP;
	iph->saddr = fl4.saddr;
	iph->daddr = fl4.daddr;
	ip_select_ident(net, skb, NULL);

	skb->protocol = htons(ETH_P_IP);
	skb_dst_set(skb, &rt->dst);
	/*
	 * ip_local_out() computes the header checksum and consumes @skb.  Its
	 * result is kept apart: net_xmit_eval() evaluates its argument twice.
	 */
	err = ip_local_out(net, sk, skb);
	return net_xmit_eval(err);
}

/*
 * Runs in softirq for every datagram to the socket, under rcu_read_lock().
 * Returning 0 means the skb was consumed here.
 */
static int hello_encap_rcv(struct sock *sk, struct sk_buff *skb)
{
	enum skb_drop_reason reason = SKB_DROP_REASON_NOT_SPECIFIED;
	u8 *payload;
	int len;

	this_cpu_inc(hello_stats.received);
	if (!rcu_dereference_sk_user_data(sk) || READ_ONCE(fault_hang))
		goto drop;

	if (!hello_source_ok(ip_hdr(skb)->saddr, udp_hdr(skb)->source)) {
		this_cpu_inc(hello_stats.rejected);
		reason = SKB_DROP_REASON_IP_INADDRERRORS;
		goto drop;
	}
	payload = hello_payload(skb, &len, &reason);
	if (!payload) {
		this_cpu_inc(hello_stats.rejected);
		goto drop;
	}
	if (hello_reply(sk, skb, payload, len))
		this_cpu_inc(hello_stats.send_errors);
	else
		this_cpu_inc(hello_stats.answered);
	consume_skb(skb);
	return 0;

drop:
	kfree_skb_reason(skb, reason);
	return 0;
}

static int hello_socket_open(struct hello_server *srv)
{
	struct udp_port_cfg port_cfg = {
		.family = AF_INET,
		.local_ip.s_addr = srv->addr,
		.local_udp_port = htons(port),
		/* Left out, udp_sock_create() would set sk_no_check_tx. */
		.use_udp_checksums = true,
	};
	struct udp_tunnel_sock_cfg tunnel_cfg = {
		.sk_user_data = srv,
		.encap_type = 1,
		.encap_rcv = hello_encap_rcv,
	};
	struct sock *sk;
	int err;

	err = udp_sock_create(srv->net, &port_cfg, &srv->sock);
	if (err) {
		pr_err("cannot bind %pI4:%d: %d\n", &srv->addr, port, err);
		srv->sock = NULL;
		return err;
	}
	/*
	 * Replies do not go through the socket's send path, but the socket is
	 * handed to ip_local_out() from softirq: should anything allocate on its
	 * behalf, it must not sleep nor take the interrupted task's page
	 * fragment (what inet_ctl_sock_create() sets up for the ICMP sockets).
	 */
	sk = srv->sock->sk;
	sk->sk_allocation = GFP_ATOMIC;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0)
	sk->sk_use_task_frag = false;
#endif
	setup_udp_tunnel_sock(srv->net, srv->sock, &tunnel_cfg);
	return 0;
}

static void hello_socket_close(struct hello_server *srv)
{
	struct socket *sock = srv->sock;

	/* From here on a handler that starts drops what it gets... */
	rcu_assign_sk_user_data(sock->sk, NULL);
	synchronize_net();
	udp_tunnel_sock_release(sock);
	/* ...and once the socket is unhashed none is left running. */
	synchronize_net();
	srv->sock = NULL;
}

static int __init hello_init(void)
{
	struct hello_server *srv = &server;
	int err;

	err = hello_check_params(&srv->addr);
	if (err)
		return err;

	srv->kobj = kobject_create_and_add(KBUILD_MODNAME, kernel_kobj);
	if (!srv->kobj)
		return -ENOMEM;
	err = sysfs_create_group(srv->kobj, &hello_group);
	if (err)
		goto err_kobj;

	srv->net = get_net(current->nsproxy->net_ns);
	err = hello_socket_open(srv);
	if (err)
		goto err_net;

	pr_info("serving %pI4:%d\n", &srv->addr, port);
	return 0;

err_net:
	put_net(srv->net);
err_kobj:
	kobject_put(srv->kobj);
	return err;
}

static void __exit hello_exit(void)
{
	struct hello_server *srv = &server;

	hello_socket_close(srv);
	put_net(srv->net);
	kobject_put(srv->kobj);
	pr_info("stopped\n");
}

module_init(hello_init);
module_exit(hello_exit);

MODULE_DESCRIPTION("hellobench: HELLO server answering in the receive softirq");
MODULE_LICENSE("GPL");
