// SPDX-License-Identifier: GPL-2.0
/*
 * hellobench_softirq: the HELLO server answered in the receive softirq.
 *
 * The module binds a kernel UDP socket and turns it into an encapsulation
 * socket (setup_udp_tunnel_sock): every datagram for it is handed to
 * hello_encap_rcv() inside the softirq that delivers it, before it would be
 * queued.  The reply is sent from there with the socket's own sendmsg, so no
 * thread is ever woken and no system call is made.
 *
 * The reply is a fresh datagram ("GOT IT" plus the request's bytes after
 * offset 6) rather than the request rewritten in place: udp_sendmsg() builds
 * its headers and checksum (full or partial, as the route wants), so nothing
 * depends on the checksum state the request arrived with.  Checksums of
 * requests were verified by UDP before the handler runs.
 *
 * The socket allocates with GFP_ATOMIC, as the kernel's own ICMP sockets do,
 * because it sends from softirq context.  A cgroup BPF sendmsg4 program, if
 * one is attached anywhere, would take the socket lock from softirq; the
 * suite's guests attach none.
 *
 * Parameters (read-only once loaded):
 *   port        UDP port, 1..65535 (default 3000)
 *   addr        IPv4 address to bind (default 127.0.0.1)
 *   cpu         validated like hellobench_kthread's, but has no effect: the
 *               answer runs on whichever CPU receives the datagram (on lo, the
 *               sender's)
 *   fault_hang  tests only, writable at run time: 0 serve; 1 stop answering
 *               (datagrams are dropped unanswered)
 *
 * The socket lives in the network namespace of the process that loads the
 * module.  Counters are under /sys/kernel/hellobench_softirq/.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cpumask.h>
#include <linux/in.h>
#include <linux/inet.h>
#include <linux/ip.h>
#include <linux/kobject.h>
#include <linux/module.h>
#include <linux/net.h>
#include <linux/nsproxy.h>
#include <linux/percpu.h>
#include <linux/skbuff.h>
#include <linux/socket.h>
#include <linux/sysfs.h>
#include <linux/udp.h>
#include <linux/uio.h>
#include <net/net_namespace.h>
#include <net/sock.h>
#include <net/udp_tunnel.h>

#include "hello_proto.h"

/* ITER_SOURCE replaced WRITE as an iov_iter direction in 6.1. */
#ifndef ITER_SOURCE
#define ITER_SOURCE	WRITE
#endif

enum hello_fault {
	HELLO_FAULT_NONE,
	HELLO_FAULT_STALL,
};

static int port = HELLO_DEFAULT_PORT;
module_param(port, int, 0444);
MODULE_PARM_DESC(port, "UDP port to serve, 1..65535 (default 3000)");

static char *addr = "127.0.0.1";
module_param(addr, charp, 0444);
MODULE_PARM_DESC(addr, "IPv4 address to bind (default 127.0.0.1)");

static int cpu = -1;
module_param(cpu, int, 0444);
MODULE_PARM_DESC(cpu,
		 "accepted for symmetry, no effect: softirqs run where packets arrive");

static int fault_hang;
module_param(fault_hang, int, 0644);
MODULE_PARM_DESC(fault_hang, "tests only: 1 stop answering (default 0)");

struct hello_stats {
	unsigned long received;
	unsigned long answered;
	unsigned long rejected;
	unsigned long send_errors;
};

static DEFINE_PER_CPU(struct hello_stats, hello_stats);

struct hello_server {
	struct net *net;
	struct socket *sock;
	struct kobject *kobj;
	__be32 addr;
};

static struct hello_server server;

static unsigned long hello_stat_sum(size_t offset)
{
	unsigned long sum = 0;
	int c;

	for_each_possible_cpu(c) {
		const u8 *stats = (const u8 *)per_cpu_ptr(&hello_stats, c);

		sum += *(const unsigned long *)(stats + offset);
	}
	return sum;
}

#define HELLO_STAT_ATTR(field)						\
static ssize_t field##_show(struct kobject *kobj,			\
			    struct kobj_attribute *attr, char *buf)	\
{									\
	return sysfs_emit(buf, "%lu\n",					\
			  hello_stat_sum(offsetof(struct hello_stats, field))); \
}									\
static struct kobj_attribute field##_attr = __ATTR_RO(field)

HELLO_STAT_ATTR(received);
HELLO_STAT_ATTR(answered);
HELLO_STAT_ATTR(rejected);
HELLO_STAT_ATTR(send_errors);

static ssize_t running_show(struct kobject *kobj,
			    struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n", READ_ONCE(server.sock) != NULL);
}
static struct kobj_attribute running_attr = __ATTR_RO(running);

static struct attribute *hello_attrs[] = {
	&received_attr.attr,
	&answered_attr.attr,
	&rejected_attr.attr,
	&send_errors_attr.attr,
	&running_attr.attr,
	NULL,
};

static const struct attribute_group hello_group = {
	.attrs = hello_attrs,
};

/* The payload of @skb made linear; its length in @len, NULL when unusable. */
static u8 *hello_payload(struct sk_buff *skb, int *len)
{
	int off = skb_transport_offset(skb) + sizeof(struct udphdr);

	*len = skb->len - off;
	if (*len < HELLO_MIN_REQUEST || *len > HELLO_MAX_REQUEST)
		return NULL;
	if (!pskb_may_pull(skb, off + *len))
		return NULL;
	return skb->data + off;
}

static void hello_reply(struct sock *sk, struct sk_buff *skb, u8 *payload,
			int len)
{
	struct sockaddr_in to = {
		.sin_family = AF_INET,
		.sin_addr.s_addr = ip_hdr(skb)->saddr,
		.sin_port = udp_hdr(skb)->source,
	};
	struct kvec vec[2] = {
		{ .iov_base = (void *)HELLO_REPLY, .iov_len = HELLO_REPLY_LEN },
		{ .iov_base = payload + HELLO_REPLY_LEN,
		  .iov_len = len - HELLO_REPLY_LEN },
	};
	struct msghdr msg = {
		.msg_name = &to,
		.msg_namelen = sizeof(to),
		.msg_flags = MSG_DONTWAIT,
	};

	iov_iter_kvec(&msg.msg_iter, ITER_SOURCE, vec, ARRAY_SIZE(vec), len);
	if (sk->sk_prot->sendmsg(sk, &msg, len) == len)
		this_cpu_inc(hello_stats.answered);
	else
		this_cpu_inc(hello_stats.send_errors);
}

/*
 * Runs in softirq for every datagram to the socket, under rcu_read_lock().
 * Returning 0 means the skb was consumed here.
 */
static int hello_encap_rcv(struct sock *sk, struct sk_buff *skb)
{
	u8 *payload;
	int len;

	this_cpu_inc(hello_stats.received);
	if (!rcu_dereference_sk_user_data(sk) || READ_ONCE(fault_hang))
		goto drop;

	payload = hello_payload(skb, &len);
	if (!payload || memcmp(payload, HELLO_MAGIC, HELLO_MAGIC_LEN)) {
		this_cpu_inc(hello_stats.rejected);
		goto drop;
	}
	hello_reply(sk, skb, payload, len);
	consume_skb(skb);
	return 0;

drop:
	kfree_skb(skb);
	return 0;
}

static int hello_check_params(struct hello_server *srv)
{
	if (port < 1 || port > 65535) {
		pr_err("invalid port %d: must be 1..65535\n", port);
		return -EINVAL;
	}
	if (!addr || !in4_pton(addr, -1, (u8 *)&srv->addr, -1, NULL)) {
		pr_err("invalid addr '%s': not an IPv4 address\n",
		       addr ? addr : "");
		return -EINVAL;
	}
	if (cpu < -1 || cpu >= (int)nr_cpu_ids || (cpu >= 0 && !cpu_online(cpu))) {
		pr_err("invalid cpu %d: must be -1 or an online CPU\n", cpu);
		return -EINVAL;
	}
	if (fault_hang < HELLO_FAULT_NONE || fault_hang > HELLO_FAULT_STALL) {
		pr_err("invalid fault_hang %d: must be 0 or 1\n", fault_hang);
		return -EINVAL;
	}
	return 0;
}

static int hello_socket_open(struct hello_server *srv)
{
	struct udp_port_cfg port_cfg = {
		.family = AF_INET,
		.local_ip.s_addr = srv->addr,
		.local_udp_port = htons(port),
	};
	struct udp_tunnel_sock_cfg tunnel_cfg = {
		.sk_user_data = srv,
		.encap_type = 1,
		.encap_rcv = hello_encap_rcv,
	};
	int err;

	err = udp_sock_create(srv->net, &port_cfg, &srv->sock);
	if (err) {
		pr_err("cannot bind %pI4:%d: %d\n", &srv->addr, port, err);
		srv->sock = NULL;
		return err;
	}
	/* Replies are allocated in softirq context. */
	srv->sock->sk->sk_allocation = GFP_ATOMIC;
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

	err = hello_check_params(srv);
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
