/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the hellobench kernel modules share: their parameters, which request
 * sources may be answered, per-CPU counters and the sysfs attributes that show them.  Each module includes it once, from its only
 * source file, after defining:
 *
 *   HELLO_FAULT_MAX    the highest fault_hang value it understands
 *   HELLO_CPU_DESC     the description of its cpu parameter
 *   HELLO_FAULT_DESC   the description of its fault_hang parameter
 *
 * The definitions are static: every module gets its own copy.
 */
#ifndef HELLO_KMOD_H
#define HELLO_KMOD_H

#include <linux/cpumask.h>
#include <linux/in.h>
#include <linux/inet.h>
#include <linux/kernel.h>
#include <linux/kobject.h>
#include <linux/moduleparam.h>
#include <linux/percpu.h>
#include <linux/stddef.h>
#include <linux/sysfs.h>

#include "hello_proto.h"

#if !defined(HELLO_FAULT_MAX) || !defined(HELLO_CPU_DESC) || !defined(HELLO_FAULT_DESC)
#error "define HELLO_FAULT_MAX, HELLO_CPU_DESC and HELLO_FAULT_DESC before hello_kmod.h"
#endif

static int port = HELLO_DEFAULT_PORT;
module_param(port, int, 0444);
MODULE_PARM_DESC(port, "UDP port to serve, 1..65535 (default 3000)");

static char *addr = "127.0.0.1";
module_param(addr, charp, 0444);
MODULE_PARM_DESC(addr, "IPv4 address to bind (default 127.0.0.1)");

static int cpu = -1;
module_param(cpu, int, 0444);
MODULE_PARM_DESC(cpu, HELLO_CPU_DESC);

/*
 * fault_hang is read while the module runs, so every write (at load or through
 * /sys/module/NAME/parameters/fault_hang) is checked here: a value out of range is
 * refused with EINVAL and the old one stays.
 */
static int fault_hang;

static int hello_fault_set(const char *val, const struct kernel_param *kp)
{
	int v, err;

	err = kstrtoint(val, 0, &v);
	if (err)
		return err;
	if (v < 0 || v > HELLO_FAULT_MAX)
		return -EINVAL;
	WRITE_ONCE(*(int *)kp->arg, v);
	return 0;
}

static const struct kernel_param_ops hello_fault_ops = {
	.set = hello_fault_set,
	.get = param_get_int,
};

module_param_cb(fault_hang, &hello_fault_ops, &fault_hang, 0644);
MODULE_PARM_DESC(fault_hang, HELLO_FAULT_DESC);

/* port, addr and cpu as given at load; the address parsed into @sin_addr. */
static int hello_check_params(__be32 *sin_addr)
{
	if (port < 1 || port > 65535) {
		pr_err("invalid port %d: must be 1..65535\n", port);
		return -EINVAL;
	}
	if (!addr || !in4_pton(addr, -1, (u8 *)sin_addr, -1, NULL)) {
		pr_err("invalid addr '%s': not an IPv4 address\n",
		       addr ? addr : "");
		return -EINVAL;
	}
	if (cpu < -1 || cpu >= (int)nr_cpu_ids || (cpu >= 0 && !cpu_online(cpu))) {
		pr_err("invalid cpu %d: must be -1 or an online CPU\n", cpu);
		return -EINVAL;
	}
	return 0;
}

/*
 * Whether a request from @saddr:@sport may be answered at all: never to port 0
 * (udp_sendmsg() refuses it), nor to an address no host can have as its own:
 * 0.0.0.0 (ipv4_is_zeronet(); the rest of 0.0.0.0/8 may be assigned), the
 * limited broadcast, multicast.  The receive path's martian checks keep such
 * sources from coming in through a device, but not from a local raw socket
 * over lo, whose datagram keeps its output route.  A directed broadcast shows
 * only once the reply is routed.
 */
static bool hello_source_ok(__be32 saddr, __be16 sport)
{
	return sport && !ipv4_is_zeronet(saddr) && !ipv4_is_lbcast(saddr) &&
	       !ipv4_is_multicast(saddr);
}

struct hello_stats {
	unsigned long received;
	unsigned long answered;
	unsigned long rejected;
	unsigned long send_errors;
};

static DEFINE_PER_CPU(struct hello_stats, hello_stats);

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

/* The counters' entries of a module's attribute list. */
#define HELLO_STAT_ATTRS						\
	&received_attr.attr,						\
	&answered_attr.attr,						\
	&rejected_attr.attr,						\
	&send_errors_attr.attr

#endif /* HELLO_KMOD_H */
