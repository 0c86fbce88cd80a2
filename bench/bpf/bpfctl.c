// SPDX-License-Identifier: MIT
/*
 * hb-bpfctl: loads, attaches, queries and detaches hellobench's BPF programs
 * and reads their counters.  Each call prints one JSON line.
 *
 * The attach commands stay in the foreground after their line and hold the
 * attachment until SIGTERM, SIGINT or SIGHUP, then remove it and exit:
 *
 *   - XDP is attached through a bpf_link (Linux 5.9 or later) whose only file
 *     descriptor is this process's, so when the process dies, however it dies,
 *     the kernel detaches the program;
 *   - tc uses a tcx bpf_link on ingress where the kernel has tcx (Linux 6.6 or
 *     later), released the same way; elsewhere (or with --attach netlink) a
 *     direct-action filter on the clsact ingress, made through netlink: that
 *     one outlives the process if it is killed, and is otherwise removed at the
 *     signal.  The answer says which ("attach": "tcx" or "netlink").
 *
 * The detach commands remove netlink attachments (the tc fallback, and what
 * older versions of the suite left), for the ledger sweep: python -m bench cleanup.
 *
 *   attach-xdp --obj O --prog P --ifname I --mode skb|drv [--set VAR=N]...
 *   attach-tc  --obj O --prog P --ifname I --handle H --priority N
 *              [--attach auto|tcx|netlink] [--set ..]
 *   detach-xdp --ifname I --mode skb|drv (--prog-id N | --prefix S)
 *   detach-tc  --ifname I --handle H --priority N (--prog-id N | --prefix S)
 *   query-xdp  --ifname I --mode skb|drv
 *   query-tc   --ifname I --handle H --priority N
 *   query-tcx  --ifname I
 *   counters   --map-id N
 *
 * --netns NAME runs the command inside /run/netns/NAME.  --set writes an
 * unsigned integer into a variable of the object's .rodata before it is
 * loaded; a value that does not fit the variable's type is refused, not
 * truncated.  The attach commands also write the interface's hardware address
 * into the .rodata array hb_ifmac and 1 into hb_ifloopback for a loopback
 * interface, when the object has them.
 *
 * Needs libbpf 1.0 or later (checked below): NULL and -errno returns from
 * bpf_object__open_file() and the attach calls, bpf_xdp_attach/detach/query.
 * tcx is reached through bpf_link_create() and bpf_prog_query(), so neither a
 * libbpf nor kernel headers that know it are needed to build.
 * Detaching only ever removes the program named by id, or when the id is not
 * known, a program whose name starts with the given prefix.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#if __has_include(<bpf/libbpf_version.h>)	/* since libbpf 0.6 */
#include <bpf/libbpf_version.h>
#endif
#include <arpa/inet.h>
#include <linux/if_link.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#define HB_LIBBPF_MIN_MAJOR	1
#define HB_LIBBPF_MIN_MINOR	0

#if !defined(LIBBPF_MAJOR_VERSION) || !defined(LIBBPF_MINOR_VERSION)
#error "hb-bpfctl needs libbpf 1.0 or later (no libbpf_version.h found)"
#elif LIBBPF_MAJOR_VERSION < HB_LIBBPF_MIN_MAJOR || \
	(LIBBPF_MAJOR_VERSION == HB_LIBBPF_MIN_MAJOR && \
	 LIBBPF_MINOR_VERSION < HB_LIBBPF_MIN_MINOR)
#error "hb-bpfctl needs libbpf 1.0 or later"
#endif

#define MAX_SETS	8
#define MAX_TCX_PROGS	64

/* enum bpf_attach_type values of Linux 6.6, for headers older than tcx */
#ifdef BPF_F_BEFORE		/* came with tcx */
#define HB_TCX_INGRESS	BPF_TCX_INGRESS
#else
#define HB_TCX_INGRESS	46
#endif

enum tc_attach { TC_AUTO, TC_TCX, TC_NETLINK };

struct options {
	const char *cmd;
	const char *obj;
	const char *prog;
	const char *ifname;
	const char *netns;
	const char *prefix;
	const char *sets[MAX_SETS];
	int nsets;
	int skb_mode;
	enum tc_attach tc_attach;
	unsigned int handle;
	unsigned int priority;
	unsigned int prog_id;
	unsigned int map_id;
	int ifindex;
};

static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "hb-bpfctl: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static int quiet_print(enum libbpf_print_level level, const char *fmt,
		       va_list ap)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static unsigned int parse_uint(const char *s, const char *what)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || *end || v > 0xffffffffUL)
		fail("bad %s: %s", what, s);
	return (unsigned int)v;
}

static void enter_netns(const char *name)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "/run/netns/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail("netns %s: %s", name, strerror(errno));
	if (setns(fd, CLONE_NEWNET))
		fail("setns %s: %s", name, strerror(errno));
	close(fd);
}

/* Store an integer of size bytes in host byte order (it fits: checked). */
static void store_host(__u8 *dst, unsigned long long value, size_t size)
{
	__u8 v1 = value;
	__u16 v2 = value;
	__u32 v4 = value;

	switch (size) {
	case 1:
		memcpy(dst, &v1, 1);
		break;
	case 2:
		memcpy(dst, &v2, 2);
		break;
	case 4:
		memcpy(dst, &v4, 4);
		break;
	default:
		memcpy(dst, &value, 8);
	}
}

static struct bpf_map *rodata_map(struct bpf_object *obj)
{
	struct bpf_map *map, *rodata = NULL;

	bpf_object__for_each_map(map, obj) {
		const char *mname = bpf_map__name(map);
		size_t n = strlen(mname);

		if (n >= 7 && !strcmp(mname + n - 7, ".rodata"))
			rodata = map;
	}
	return rodata;
}

/*
 * Where the .rodata variable called name lies in the map's initial value
 * (writable until load), with its BTF type id; NULL when there is none.
 */
static __u8 *find_rodata_var(struct bpf_object *obj, const char *name,
			     __u32 *size, __u32 *type_id)
{
	const struct btf_var_secinfo *vs;
	const struct btf_type *sec, *var;
	struct bpf_map *rodata = rodata_map(obj);
	struct btf *btf = bpf_object__btf(obj);
	size_t map_size;
	__u8 *data;
	int id, i;

	if (!rodata || !btf)
		return NULL;
	/* libbpf before 1.2 declares the initial value const */
	data = (__u8 *)bpf_map__initial_value(rodata, &map_size);
	id = btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC);
	if (!data || id < 0)
		return NULL;
	sec = btf__type_by_id(btf, id);
	vs = btf_var_secinfos(sec);
	for (i = 0; i < btf_vlen(sec); i++, vs++) {
		var = btf__type_by_id(btf, vs->type);
		if (strcmp(btf__name_by_offset(btf, var->name_off), name))
			continue;
		if (vs->offset + vs->size > map_size)
			fail("variable %s lies outside .rodata", name);
		*size = vs->size;
		*type_id = var->type;
		return data + vs->offset;
	}
	return NULL;
}

/*
 * Parse text as a value of the unsigned integer (or enum) type type_id of size
 * bytes; refuses what does not fit instead of truncating it.
 */
static unsigned long long parse_value(const struct btf *btf, __u32 type_id,
				      __u32 size, const char *name,
				      const char *text)
{
	const struct btf_type *t = btf__type_by_id(btf, type_id);
	unsigned int bits = size * 8;
	unsigned long long v;
	const char *p = text;
	char *end;

	/* const, volatile and typedefs around the integer */
	while (t && (btf_is_mod(t) || btf_is_typedef(t)))
		t = btf__type_by_id(btf, t->type);
	if (!t || !size || size > 8 || size & (size - 1) ||
	    !(btf_is_int(t) || btf_is_enum(t)) ||
	    (btf_is_int(t) && (btf_int_encoding(t) & BTF_INT_SIGNED)))
		fail("variable %s is not an unsigned integer", name);
	while (*p == ' ' || *p == '\t')
		p++;
	errno = 0;
	v = strtoull(p, &end, 0);
	if (end == p || *end)
		fail("bad value %s for %s (want an integer)", text, name);
	/* strtoull() takes "-1" for ULLONG_MAX */
	if (*p == '-' || errno || (bits < 64 && v >> bits))
		fail("value %s does not fit %s (%u-bit unsigned)", text, name,
		     bits);
	return v;
}

/* Write VAR=VALUE into the .rodata variable VAR (before load). */
static void set_rodata(struct bpf_object *obj, const char *assignment)
{
	unsigned long long value;
	char name[128];
	const char *eq;
	__u32 size, type_id;
	__u8 *dst;

	eq = strchr(assignment, '=');
	if (!eq || eq == assignment ||
	    (size_t)(eq - assignment) >= sizeof(name))
		fail("bad --set %s (want VAR=VALUE)", assignment);
	memcpy(name, assignment, eq - assignment);
	name[eq - assignment] = '\0';
	if (!bpf_object__btf(obj) || !rodata_map(obj))
		fail("object has no .rodata with BTF");
	dst = find_rodata_var(obj, name, &size, &type_id);
	if (!dst)
		fail("no variable %s in .rodata", name);
	value = parse_value(bpf_object__btf(obj), type_id, size, name, eq + 1);
	store_host(dst, value, size);
}

/*
 * The broadcast address of the interface's primary IPv4 subnet, as the kernel
 * routes it (a broadcast route for prefixes up to /30, whether or not the
 * address was given a brd), in network byte order; 0 without an address.
 */
static __u32 subnet_broadcast(int fd, const char *ifname)
{
	struct ifreq ifr = {};
	struct sockaddr_in sin;
	__u32 addr4, mask;

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFADDR, &ifr))
		return 0;
	memcpy(&sin, &ifr.ifr_addr, sizeof(sin));
	addr4 = sin.sin_addr.s_addr;
	if (ioctl(fd, SIOCGIFNETMASK, &ifr))
		return 0;
	memcpy(&sin, &ifr.ifr_netmask, sizeof(sin));
	mask = sin.sin_addr.s_addr;
	if (ntohl(mask) >= 0xfffffffe)	/* /31 and /32 have no broadcast */
		return 0;
	return addr4 | ~mask;
}

/* The interface's hardware address, loopback flag and subnet broadcast. */
static void set_interface(struct bpf_object *obj, const struct options *o)
{
	struct ifreq ifr = {};
	__u32 size, type_id, bcast;
	__u8 *mac, *loopback, *ifbcast;
	int fd;

	mac = find_rodata_var(obj, "hb_ifmac", &size, &type_id);
	if (mac && size != 6)
		fail("hb_ifmac in %s is not 6 bytes", o->obj);
	loopback = find_rodata_var(obj, "hb_ifloopback", &size, &type_id);
	if (loopback && size != 4)
		fail("hb_ifloopback in %s is not 4 bytes", o->obj);
	ifbcast = find_rodata_var(obj, "hb_ifbcast", &size, &type_id);
	if (ifbcast && size != 4)
		fail("hb_ifbcast in %s is not 4 bytes", o->obj);
	if (!mac && !loopback && !ifbcast)
		return;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fail("socket: %s", strerror(errno));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", o->ifname);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr))
		fail("flags of %s: %s", o->ifname, strerror(errno));
	if (loopback)
		store_host(loopback, !!(ifr.ifr_flags & IFF_LOOPBACK), 4);
	if (mac) {
		if (ioctl(fd, SIOCGIFHWADDR, &ifr))
			fail("address of %s: %s", o->ifname, strerror(errno));
		memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	}
	if (ifbcast) {
		bcast = subnet_broadcast(fd, o->ifname);
		memcpy(ifbcast, &bcast, 4);
	}
	close(fd);
}

static unsigned int map_id_of(struct bpf_object *obj, const char *name)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	struct bpf_map *map = bpf_object__find_map_by_name(obj, name);

	if (!map || bpf_obj_get_info_by_fd(bpf_map__fd(map), &info, &len))
		return 0;
	return info.id;
}

static unsigned int prog_id_of(int fd)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return 0;
	return info.id;
}

/* Opens and loads the object; returns the program's fd. */
static int load(const struct options *o, struct bpf_object **objp)
{
	struct bpf_program *prog;
	struct bpf_object *obj;
	int i, err;

	obj = bpf_object__open_file(o->obj, NULL);
	if (!obj)
		fail("cannot open %s: %s", o->obj, strerror(errno));
	set_interface(obj, o);
	for (i = 0; i < o->nsets; i++)
		set_rodata(obj, o->sets[i]);
	prog = bpf_object__find_program_by_name(obj, o->prog);
	if (!prog)
		fail("no program %s in %s", o->prog, o->obj);
	err = bpf_object__load(obj);
	if (err)
		fail("loading %s failed: %s", o->obj, strerror(-err));
	*objp = obj;
	return bpf_program__fd(prog);
}

static __u32 xdp_mode_flag(const struct options *o)
{
	return o->skb_mode ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
}

static unsigned int link_id_of(int fd)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return 0;
	return info.id;
}

static sigset_t stop_signals;

/*
 * The attach commands block the signals that stop them from the start, so that
 * one arriving while the program is being attached is taken here, after the
 * answer, and the attachment is removed all the same.
 */
static void block_stop_signals(void)
{
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGTERM);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &stop_signals, NULL))
		fail("sigprocmask: %s", strerror(errno));
	/* nothing is written after the answer but errors: never die of it */
	signal(SIGPIPE, SIG_IGN);
}

/* Hold what was attached until SIGTERM, SIGINT or SIGHUP. */
static void wait_for_stop(void)
{
	int sig;

	fflush(stdout);
	do
		sig = sigwaitinfo(&stop_signals, NULL);
	while (sig < 0 && errno == EINTR);
}

static int attach_xdp(const struct options *o)
{
	LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = xdp_mode_flag(o));
	struct bpf_object *obj;
	int fd, link;

	fd = load(o, &obj);
	link = bpf_link_create(fd, o->ifindex, BPF_XDP, &opts);
	if (link < 0)
		link = -errno;
	if (link == -EBUSY || link == -EEXIST)
		fail("%s already has an XDP program; not replacing it", o->ifname);
	if (link < 0)
		fail("attaching XDP to %s through a bpf_link failed: %s "
		     "(XDP links need Linux 5.9 or later)", o->ifname,
		     strerror(-link));
	printf("{\"prog_id\": %u, \"map_id\": %u, \"ifindex\": %d, "
	       "\"link_id\": %u, \"attach\": \"link\"}\n",
	       prog_id_of(fd), map_id_of(obj, "hb_counters"), o->ifindex,
	       link_id_of(link));
	bpf_object__close(obj);	/* the link holds the program */
	wait_for_stop();
	close(link);		/* the last reference: the kernel detaches */
	return 0;
}

/* Does the program with this id carry the name prefix? */
static int prog_has_prefix(unsigned int id, const char *prefix)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	int fd, match;

	fd = bpf_prog_get_fd_by_id(id);
	if (fd < 0)
		return 0;
	match = !bpf_obj_get_info_by_fd(fd, &info, &len) &&
		!strncmp(info.name, prefix, strlen(prefix));
	close(fd);
	return match;
}

static int ours(const struct options *o, unsigned int id)
{
	if (!id)
		return 0;
	if (o->prog_id)
		return id == o->prog_id;
	return o->prefix && *o->prefix && prog_has_prefix(id, o->prefix);
}

static int detach_xdp(const struct options *o)
{
	LIBBPF_OPTS(bpf_xdp_attach_opts, opts);
	__u32 id = 0;
	int err;

	err = bpf_xdp_query_id(o->ifindex, xdp_mode_flag(o), &id);
	if (err)
		fail("querying XDP on %s: %s", o->ifname, strerror(-err));
	if (!ours(o, id)) {
		printf("{\"detached\": false, \"attached_id\": %u}\n", id);
		return 0;
	}
	opts.old_prog_fd = bpf_prog_get_fd_by_id(id);
	if (opts.old_prog_fd < 0)
		fail("program %u: %s", id, strerror(errno));
	/* XDP_FLAGS_REPLACE: removed only if it is still that program */
	err = bpf_xdp_detach(o->ifindex, XDP_FLAGS_REPLACE | xdp_mode_flag(o),
			     &opts);
	if (err)
		fail("detaching XDP %u from %s: %s", id, o->ifname,
		     strerror(-err));
	printf("{\"detached\": true, \"attached_id\": %u}\n", id);
	return 0;
}

static int query_xdp(const struct options *o)
{
	__u32 id = 0;
	int err;

	err = bpf_xdp_query_id(o->ifindex, xdp_mode_flag(o), &id);
	if (err)
		fail("querying XDP on %s: %s", o->ifname, strerror(-err));
	printf("{\"attached_id\": %u}\n", id);
	return 0;
}

static void tc_hook_init(const struct options *o, struct bpf_tc_hook *hook)
{
	memset(hook, 0, sizeof(*hook));
	hook->sz = sizeof(*hook);
	hook->ifindex = o->ifindex;
	hook->attach_point = BPF_TC_INGRESS;
}

/* The programs on tcx ingress; -EINVAL on kernels without tcx (before 6.6). */
static int tcx_query(const struct options *o, __u32 *ids, __u32 *count)
{
	__u32 flags = 0;
	int err;

	err = bpf_prog_query(o->ifindex, (enum bpf_attach_type)HB_TCX_INGRESS,
			     0, &flags, ids, count);
	return err < 0 ? -errno : 0;
}

/* Does the kernel have tcx? */
static int tcx_available(const struct options *o)
{
	__u32 count = 0;

	return !tcx_query(o, NULL, &count);
}

static unsigned int tc_attached_id(const struct options *o,
				   struct bpf_tc_hook *hook)
{
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = o->handle,
		    .priority = o->priority);
	int err;

	err = bpf_tc_query(hook, &opts);
	if (err == -ENOENT || err == -EINVAL)
		return 0;	/* no clsact, or no filter at handle/priority */
	if (err)
		fail("querying tc on %s: %s", o->ifname, strerror(-err));
	return opts.prog_id;
}

/*
 * Remove the filter at handle/priority if it is ours; 1 when removed, 0 when
 * none of ours was there, -errno when removing failed.  *found: its program.
 */
static int remove_tc(const struct options *o, unsigned int *found)
{
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = o->handle,
		    .priority = o->priority);
	struct bpf_tc_hook hook;
	int err;

	tc_hook_init(o, &hook);
	*found = tc_attached_id(o, &hook);
	if (!ours(o, *found))
		return 0;
	err = bpf_tc_detach(&hook, &opts);
	return err ? err : 1;
}

/* A direct-action filter on clsact ingress, through netlink; *created: clsact. */
static void attach_tc_netlink(const struct options *o, int prog_fd,
			      unsigned int *prog_id, int *created)
{
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = o->handle,
		    .priority = o->priority, .prog_fd = prog_fd);
	struct bpf_tc_hook hook;
	int err;

	tc_hook_init(o, &hook);
	err = bpf_tc_hook_create(&hook);
	if (err && err != -EEXIST)
		fail("creating clsact on %s: %s", o->ifname, strerror(-err));
	*created = !err;
	err = bpf_tc_attach(&hook, &opts);
	if (err) {
		if (*created) {
			hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
			bpf_tc_hook_destroy(&hook);
		}
		fail("attaching tc filter to %s: %s", o->ifname, strerror(-err));
	}
	*prog_id = opts.prog_id;
}

static int attach_tc(const struct options *o)
{
	LIBBPF_OPTS(bpf_link_create_opts, lopts);
	struct options mine = *o;
	struct bpf_object *obj;
	unsigned int prog_id, found;
	int fd, tcx, link = -1, created = 0, err;

	if (!o->handle || !o->priority)
		fail("attach-tc needs --handle and --priority");
	tcx = o->tc_attach != TC_NETLINK && tcx_available(o);
	if (o->tc_attach == TC_TCX && !tcx)
		fail("this kernel has no tcx (Linux 6.6 or later)");
	fd = load(o, &obj);
	prog_id = prog_id_of(fd);
	if (tcx) {
		/* appended after the programs already there, none replaced */
		link = bpf_link_create(fd, o->ifindex,
				       (enum bpf_attach_type)HB_TCX_INGRESS,
				       &lopts);
		if (link < 0)
			fail("attaching tcx ingress to %s failed: %s",
			     o->ifname, strerror(errno));
	} else {
		attach_tc_netlink(o, fd, &prog_id, &created);
	}
	printf("{\"prog_id\": %u, \"map_id\": %u, \"ifindex\": %d, "
	       "\"link_id\": %u, \"attach\": \"%s\", "
	       "\"created_qdisc\": %s}\n", prog_id,
	       map_id_of(obj, "hb_counters"), o->ifindex,
	       tcx ? link_id_of(link) : 0, tcx ? "tcx" : "netlink",
	       created ? "true" : "false");
	bpf_object__close(obj);
	wait_for_stop();
	if (tcx) {
		close(link);
		return 0;
	}
	/* the filter stays unless removed; clsact is left to the caller */
	mine.prog_id = prog_id;
	err = remove_tc(&mine, &found);
	if (err < 0)
		fail("detaching tc filter %u from %s: %s", prog_id, o->ifname,
		     strerror(-err));
	return 0;
}

static int detach_tc(const struct options *o)
{
	unsigned int id;
	int err;

	err = remove_tc(o, &id);
	if (err < 0)
		fail("detaching tc filter %u from %s: %s", id, o->ifname,
		     strerror(-err));
	printf("{\"detached\": %s, \"attached_id\": %u}\n",
	       err ? "true" : "false", id);
	return 0;
}

static int query_tcx(const struct options *o)
{
	__u32 ids[MAX_TCX_PROGS], count = MAX_TCX_PROGS, i;
	int err;

	err = tcx_query(o, ids, &count);
	if (err == -EINVAL) {
		printf("{\"tcx\": false, \"attached_ids\": []}\n");
		return 0;
	}
	if (err && err != -ENOSPC)
		fail("querying tcx on %s: %s", o->ifname, strerror(-err));
	if (count > MAX_TCX_PROGS)
		count = MAX_TCX_PROGS;
	printf("{\"tcx\": true, \"attached_ids\": [");
	for (i = 0; i < count; i++)
		printf("%s%u", i ? ", " : "", ids[i]);
	printf("]}\n");
	return 0;
}

static int query_tc(const struct options *o)
{
	struct bpf_tc_hook hook;

	tc_hook_init(o, &hook);
	printf("{\"attached_id\": %u}\n", tc_attached_id(o, &hook));
	return 0;
}

/* Sums every __u64 field of entry 0 of a per-CPU array over all CPUs. */
static int counters(const struct options *o)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info), key = 0, i, field, stride;
	unsigned long long total;
	int fd, ncpus;
	__u64 *values;

	fd = bpf_map_get_fd_by_id(o->map_id);
	if (fd < 0)
		fail("map %u: %s", o->map_id, strerror(errno));
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		fail("map %u info: %s", o->map_id, strerror(errno));
	if (info.type != BPF_MAP_TYPE_PERCPU_ARRAY || info.value_size % 8)
		fail("map %u is not a per-CPU array of counters", o->map_id);
	ncpus = libbpf_num_possible_cpus();
	if (ncpus <= 0)
		fail("cannot count CPUs");
	stride = info.value_size / 8;
	values = calloc((size_t)ncpus * stride, sizeof(*values));
	if (!values)
		fail("out of memory");
	if (bpf_map_lookup_elem(fd, &key, values))
		fail("map %u lookup: %s", o->map_id, strerror(errno));
	printf("{\"values\": [");
	for (field = 0; field < stride; field++) {
		total = 0;
		for (i = 0; i < (__u32)ncpus; i++)
			total += values[i * stride + field];
		printf("%s%llu", field ? ", " : "", total);
	}
	printf("]}\n");
	free(values);
	close(fd);
	return 0;
}

static void parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "obj", required_argument, NULL, 'o' },
		{ "prog", required_argument, NULL, 'p' },
		{ "ifname", required_argument, NULL, 'i' },
		{ "netns", required_argument, NULL, 'n' },
		{ "mode", required_argument, NULL, 'm' },
		{ "set", required_argument, NULL, 's' },
		{ "handle", required_argument, NULL, 'H' },
		{ "priority", required_argument, NULL, 'P' },
		{ "prog-id", required_argument, NULL, 'I' },
		{ "prefix", required_argument, NULL, 'x' },
		{ "map-id", required_argument, NULL, 'M' },
		{ "attach", required_argument, NULL, 'A' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	if (argc < 2)
		fail("usage: hb-bpfctl COMMAND [options] (see the source)");
	o->cmd = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'o': o->obj = optarg; break;
		case 'p': o->prog = optarg; break;
		case 'i': o->ifname = optarg; break;
		case 'n': o->netns = optarg; break;
		case 'x': o->prefix = optarg; break;
		case 'm':
			if (strcmp(optarg, "skb") && strcmp(optarg, "drv"))
				fail("--mode must be skb or drv");
			o->skb_mode = !strcmp(optarg, "skb");
			break;
		case 's':
			if (o->nsets == MAX_SETS)
				fail("too many --set");
			o->sets[o->nsets++] = optarg;
			break;
		case 'A':
			if (!strcmp(optarg, "auto"))
				o->tc_attach = TC_AUTO;
			else if (!strcmp(optarg, "tcx"))
				o->tc_attach = TC_TCX;
			else if (!strcmp(optarg, "netlink"))
				o->tc_attach = TC_NETLINK;
			else
				fail("--attach must be auto, tcx or netlink");
			break;
		case 'H': o->handle = parse_uint(optarg, "handle"); break;
		case 'P': o->priority = parse_uint(optarg, "priority"); break;
		case 'I': o->prog_id = parse_uint(optarg, "prog id"); break;
		case 'M': o->map_id = parse_uint(optarg, "map id"); break;
		default:
			fail("unknown option");
		}
	}
	if (optind != argc)
		fail("unexpected argument %s", argv[optind]);
}

int main(int argc, char **argv)
{
	struct options o = { .skb_mode = 1 };

	parse_args(argc, argv, &o);
	/* queries and detaches report absence themselves */
	libbpf_set_print(strncmp(o.cmd, "attach-", 7) ? NULL : quiet_print);
	if (!strcmp(o.cmd, "counters"))
		return counters(&o);
	if (o.netns)
		enter_netns(o.netns);
	if (!o.ifname)
		fail("%s needs --ifname", o.cmd);
	o.ifindex = if_nametoindex(o.ifname);
	if (!o.ifindex)
		fail("no interface %s", o.ifname);
	if (!strncmp(o.cmd, "attach-", 7)) {
		if (!o.obj || !o.prog)
			fail("%s needs --obj and --prog", o.cmd);
		block_stop_signals();
	}
	if (!strcmp(o.cmd, "attach-xdp"))
		return attach_xdp(&o);
	if (!strcmp(o.cmd, "attach-tc"))
		return attach_tc(&o);
	if (!strcmp(o.cmd, "detach-xdp"))
		return detach_xdp(&o);
	if (!strcmp(o.cmd, "detach-tc"))
		return detach_tc(&o);
	if (!strcmp(o.cmd, "query-xdp"))
		return query_xdp(&o);
	if (!strcmp(o.cmd, "query-tc"))
		return query_tc(&o);
	if (!strcmp(o.cmd, "query-tcx"))
		return query_tcx(&o);
	fail("unknown command %s", o.cmd);
	return 1;
}
