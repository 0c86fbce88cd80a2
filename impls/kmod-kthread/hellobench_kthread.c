// SPDX-License-Identifier: GPL-2.0
/*
 * hellobench_kthread: the HELLO server as a kernel thread.
 *
 * One kernel thread owns a kernel UDP socket, receives with kernel_recvmsg()
 * and answers with kernel_sendmsg().  No system calls are made.  With
 * wait=block (the default) every datagram still wakes the thread, as it would
 * wake a user-space server; with wait=poll the thread never sleeps: it
 * receives with MSG_DONTWAIT and, finding nothing, calls cond_resched() and
 * tries again, so it occupies its CPU even when no request comes.
 *
 * Parameters (hello_kmod.h, shared with hellobench_softirq):
 *   port        UDP port, 1..65535 (default 3000), read-only
 *   addr        IPv4 address to bind (default 127.0.0.1), read-only
 *   cpu         CPU the thread is bound to, -1 for none (default -1), read-only
 *   wait        block or poll (default block), read-only; any other value is
 *               refused at load with EINVAL
 *   fault_hang  tests only, writable at run time, 0..2 (other values are
 *               refused): 0 serve; 1 stop answering (the thread sleeps and
 *               leaves datagrams queued, rmmod still returns at once); 2 the
 *               thread exits as if it had died
 *
 * A request whose source may not be answered (hello_source_ok()) is counted
 * as rejected; udp_sendmsg() refuses a reply to a broadcast (no SO_BROADCAST),
 * counted as a send error.
 *
 * The socket lives in the network namespace of the process that loads the
 * module.  Counters and the thread id are under /sys/kernel/hellobench_kthread/,
 * present only while the thread exists.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/in.h>
#include <linux/kobject.h>
#include <linux/kthread.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/net.h>
#include <linux/nsproxy.h>
#include <linux/sched.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/socket.h>
#include <linux/string.h>
#include <linux/sysfs.h>
#include <linux/version.h>
#include <net/net_namespace.h>
#include <net/sock.h>

enum hello_fault {
	HELLO_FAULT_NONE,
	HELLO_FAULT_STALL,
	HELLO_FAULT_EXIT,
};

#define HELLO_FAULT_MAX		HELLO_FAULT_EXIT
#define HELLO_CPU_DESC		"CPU to bind the server thread to, -1 for none"
#define HELLO_FAULT_DESC	\
	"tests only: 1 stop answering, 2 the thread exits (default 0)"
#include "hello_kmod.h"

/* Large enough for any UDP datagram: bigger ones are cut and flagged MSG_TRUNC. */
#define HELLO_BUF_SIZE		65535
/* The longest a blocked receive waits before the thread looks for a stop. */
#define HELLO_RCVTIMEO		HZ
#define HELLO_STALL_MS		100

enum hello_wait {
	HELLO_WAIT_BLOCK,
	HELLO_WAIT_POLL,
};

static const char * const hello_wait_names[] = {
	[HELLO_WAIT_BLOCK] = "block",
	[HELLO_WAIT_POLL] = "poll",
};

static int wait_mode = HELLO_WAIT_BLOCK;

/* Only "block" and "poll" are taken (a trailing newline allowed); EINVAL else. */
static int hello_wait_set(const char *val, const struct kernel_param *kp)
{
	int mode = sysfs_match_string(hello_wait_names, val);

	if (mode < 0)
		return -EINVAL;
	*(int *)kp->arg = mode;
	return 0;
}

static int hello_wait_get(char *buf, const struct kernel_param *kp)
{
	return scnprintf(buf, PAGE_SIZE, "%s\n",
			 hello_wait_names[*(const int *)kp->arg]);
}

static const struct kernel_param_ops hello_wait_ops = {
	.set = hello_wait_set,
	.get = hello_wait_get,
};

module_param_cb(wait, &hello_wait_ops, &wait_mode, 0444);
MODULE_PARM_DESC(wait,
		 "block: sleep in the receive (default); poll: never sleep, receive with MSG_DONTWAIT and cond_resched() between tries");

/* struct sockaddr_unsized replaced struct sockaddr in kernel_bind() in 6.19. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 19, 0)
#define HELLO_SOCKADDR(sa)	((struct sockaddr_unsized *)(sa))
#else
#define HELLO_SOCKADDR(sa)	((struct sockaddr *)(sa))
#endif

struct hello_server {
	struct net *net;
	struct socket *sock;
	struct task_struct *task;
	struct kobject *kobj;
	u8 *buf;
	pid_t tid;		/* the thread's, kept for sysfs */
	__be32 addr;
	unsigned int recv_flags;	/* MSG_DONTWAIT when polling */
	bool poll;
	bool running;
};

static struct hello_server server;

static ssize_t thread_pid_show(struct kobject *kobj,
			       struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n", server.tid);
}
static struct kobj_attribute thread_pid_attr = __ATTR_RO(thread_pid);

static ssize_t running_show(struct kobject *kobj,
			    struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n", READ_ONCE(server.running));
}
static struct kobj_attribute running_attr = __ATTR_RO(running);

static struct attribute *hello_attrs[] = {
	HELLO_STAT_ATTRS,
	&thread_pid_attr.attr,
	&running_attr.attr,
	NULL,
};

static const struct attribute_group hello_group = {
	.attrs = hello_attrs,
};

static bool hello_is_request(const u8 *data, int len, unsigned int flags)
{
	if (flags & MSG_TRUNC)
		return false;
	if (len < HELLO_MIN_REQUEST || len > HELLO_MAX_REQUEST)
		return false;
	return !memcmp(data, HELLO_MAGIC, HELLO_MAGIC_LEN);
}

static void hello_answer(struct hello_server *srv, struct sockaddr_in *to,
			 int len)
{
	struct msghdr msg = {
		.msg_name = to,
		.msg_namelen = sizeof(*to),
		.msg_flags = MSG_DONTWAIT,
	};
	struct kvec vec = {
		.iov_base = srv->buf,
		.iov_len = len,
	};

	memcpy(srv->buf, HELLO_REPLY, HELLO_REPLY_LEN);
	if (kernel_sendmsg(srv->sock, &msg, &vec, 1, len) == len)
		this_cpu_inc(hello_stats.answered);
	else
		this_cpu_inc(hello_stats.send_errors);
}

static bool hello_shut_down(struct hello_server *srv)
{
	return READ_ONCE(srv->sock->sk->sk_shutdown) & RCV_SHUTDOWN;
}

static void hello_serve_one(struct hello_server *srv)
{
	struct sockaddr_in from = {};
	struct msghdr msg = {
		.msg_name = &from,
		.msg_namelen = sizeof(from),
	};
	struct kvec vec = {
		.iov_base = srv->buf,
		.iov_len = HELLO_BUF_SIZE,
	};
	int len;

	len = kernel_recvmsg(srv->sock, &msg, &vec, 1, HELLO_BUF_SIZE,
			     srv->recv_flags);
	if (len < 0)
		return;		/* nothing queued, timeout, signal: look for a stop */
	if (len == 0 && hello_shut_down(srv))
		return;

	this_cpu_inc(hello_stats.received);
	if (READ_ONCE(fault_hang))
		return;		/* set while we were blocked: stall from this one on */
	if (!hello_is_request(srv->buf, len, msg.msg_flags) ||
	    !hello_source_ok(from.sin_addr.s_addr, from.sin_port)) {
		this_cpu_inc(hello_stats.rejected);
		return;
	}
	hello_answer(srv, &from, len);
}

static int hello_thread(void *data)
{
	struct hello_server *srv = data;

	while (!kthread_should_stop()) {
		switch (READ_ONCE(fault_hang)) {
		case HELLO_FAULT_NONE:
			hello_serve_one(srv);
			/* Polling: the only place that lets others have the CPU. */
			if (srv->poll)
				cond_resched();
			break;
		case HELLO_FAULT_EXIT:
			goto out;
		default:
			msleep_interruptible(HELLO_STALL_MS);
			break;
		}
	}
out:
	WRITE_ONCE(srv->running, false);
	return 0;
}

static int hello_socket_open(struct hello_server *srv)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_addr.s_addr = srv->addr,
		.sin_port = htons(port),
	};
	int err;

	err = sock_create_kern(srv->net, AF_INET, SOCK_DGRAM, IPPROTO_UDP,
			       &srv->sock);
	if (err) {
		pr_err("cannot create a UDP socket: %d\n", err);
		return err;
	}
	srv->sock->sk->sk_rcvtimeo = HELLO_RCVTIMEO;

	err = kernel_bind(srv->sock, HELLO_SOCKADDR(&sin), sizeof(sin));
	if (err) {
		pr_err("cannot bind %pI4:%d: %d\n", &srv->addr, port, err);
		sock_release(srv->sock);
		srv->sock = NULL;
	}
	return err;
}

static int hello_thread_start(struct hello_server *srv)
{
	struct task_struct *task;

	task = kthread_create(hello_thread, srv, "hellokt/%d", port);
	if (IS_ERR(task)) {
		pr_err("cannot create the server thread: %ld\n", PTR_ERR(task));
		return PTR_ERR(task);
	}
	/* Held so that kthread_stop() is safe after a fault_hang=2 exit. */
	get_task_struct(task);
	if (cpu >= 0)
		kthread_bind(task, cpu);
	srv->task = task;
	srv->tid = task_pid_nr(task);
	WRITE_ONCE(srv->running, true);
	wake_up_process(task);
	return 0;
}

static void hello_thread_stop(struct hello_server *srv)
{
	/* Shutdown wakes a thread blocked in kernel_recvmsg() at once. */
	kernel_sock_shutdown(srv->sock, SHUT_RDWR);
	kthread_stop(srv->task);
	put_task_struct(srv->task);
	srv->task = NULL;
}

static int __init hello_init(void)
{
	struct hello_server *srv = &server;
	int err;

	err = hello_check_params(&srv->addr);
	if (err)
		return err;
	srv->poll = wait_mode == HELLO_WAIT_POLL;
	srv->recv_flags = srv->poll ? MSG_DONTWAIT : 0;

	srv->buf = kvmalloc(HELLO_BUF_SIZE, GFP_KERNEL);
	if (!srv->buf)
		return -ENOMEM;

	srv->net = get_net(current->nsproxy->net_ns);
	err = hello_socket_open(srv);
	if (err)
		goto err_net;

	err = hello_thread_start(srv);
	if (err)
		goto err_sock;

	/* Anyone may read the attributes: they appear once the thread exists. */
	srv->kobj = kobject_create_and_add(KBUILD_MODNAME, kernel_kobj);
	if (!srv->kobj) {
		err = -ENOMEM;
		goto err_thread;
	}
	err = sysfs_create_group(srv->kobj, &hello_group);
	if (err)
		goto err_kobj;

	pr_info("serving %pI4:%d (wait=%s)\n", &srv->addr, port,
		hello_wait_names[wait_mode]);
	return 0;

err_kobj:
	kobject_put(srv->kobj);
err_thread:
	hello_thread_stop(srv);
err_sock:
	sock_release(srv->sock);
err_net:
	put_net(srv->net);
	kvfree(srv->buf);
	return err;
}

static void __exit hello_exit(void)
{
	struct hello_server *srv = &server;

	/*
	 * The attributes go before the thread: kobject_del() returns once no
	 * read is under way, and none can start after it.
	 */
	kobject_del(srv->kobj);
	kobject_put(srv->kobj);
	hello_thread_stop(srv);
	sock_release(srv->sock);
	put_net(srv->net);
	kvfree(srv->buf);
	pr_info("stopped\n");
}

module_init(hello_init);
module_exit(hello_exit);

MODULE_DESCRIPTION("hellobench: HELLO server in a kernel thread");
MODULE_LICENSE("GPL");
