// SPDX-License-Identifier: MIT
/*
 * hb-anatomyctl: loads hb_anatomy.bpf.o, attaches every program through a
 * bpf_link that only this process holds (so the kernel detaches them all when it
 * dies, however it dies: it also asks for SIGTERM when its parent dies), and
 * copies the ring buffer's records, unchanged, to --out.
 *
 *   hb-anatomyctl --obj O --out FILE [--port N] [--every N] [--max-events N]
 *                 [--xdp-prog-id ID] [--handler FUNC] [--kernel-recv] [--kprobes]
 *                 [--max-seconds S] [--without PROG]...
 *
 * Prints one JSON line once attached ({"ready": ..., "progs": {name: id}, "xdp": ...,
 * "enqueue": hook, "handler": hook, "kernel_recv": ..., "notes": ...}) and reads
 * commands from stdin, one a line:
 *   role TGID client|server    track a process (its threads) in that role
 *   stop                       drain the ring buffer, print the stats line, exit
 * End of input, SIGTERM, SIGINT or --max-seconds (default 120) stop it the same way.
 *
 * With --xdp-prog-id (of an XDP program; any other is left alone), fentry/fexit
 * programs are attached to that program's entry and exit (the target is named by
 * the program's own name); when the kernel refuses them the rest is loaded
 * without, and the ready line says why.
 *
 * The socket enqueue hook is chosen from the kernel's BTF: the sk_data_ready
 * tracepoint where there is one, else fentry on sock_def_readable, else a kprobe
 * there.  --handler FUNC hooks a module's handler (encap_rcv's arguments) by
 * fentry, or by kprobe when the kernel refuses that (a module without BTF).
 * --kernel-recv traces the receives of kernel threads tracked as the server
 * (the datagram freed once read, or copied: tracepoints).  --kprobes takes
 * kprobes where fentry would be used: attaching a BPF trampoline waits for an
 * RCU Tasks grace period on some kernels (6.1), which a kernel thread that
 * polls without ever sleeping holds off for as long as it runs.  No return
 * probe is used: with a kretprobe on udp_recvmsg, a 6.1 guest's polling thread
 * returned to address 0.  The ready line names every choice ("enqueue",
 * "handler", "kernel_recv": tp_btf/..., fentry, kprobe or none) and why a
 * preferred hook was not used ("notes").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "hb_anatomy.h"

#define MAX_LINKS	16
#define POLL_MS		20

struct options {
	const char *obj;
	const char *out;
	const char *handler;
	unsigned long port, every, max_events, xdp_prog_id, max_seconds;
	int kernel_recv, kprobes;
	const char *without[MAX_LINKS];
	int nwithout;
};

enum hook { HOOK_NONE, HOOK_TP, HOOK_FENTRY, HOOK_KPROBE };

static const char *const hook_names[] = {
	[HOOK_NONE] = "none",
	[HOOK_TP] = "tp_btf",
	[HOOK_FENTRY] = "fentry",
	[HOOK_KPROBE] = "kprobe",
};

/* which programs one load attempt asks for */
struct plan {
	int xdp_fd;
	const char *xdp_name;
	enum hook enqueue;
	enum hook handler;
	enum hook kernel_recv;	/* tp_btf (consume_skb, skb_copy_datagram_iovec) or none */
};

static volatile sig_atomic_t stopping;
static int load_errno;	/* why the last bpf_object__load() failed */
static char notes[512];	/* why preferred hooks were not used, for the ready line */
static FILE *out;
static unsigned long long written;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static void fail(const char *fmt, const char *arg)
{
	fprintf(stderr, "hb-anatomyctl: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	exit(1);
}

static int quiet_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG && !getenv("HB_ANATOMY_DEBUG"))
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static unsigned long number(const char *s, const char *what)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || *end || !*s)
		fail("bad %s", what);
	return v;
}

/* Where the global variable name lies in the data section map secname, or NULL. */
static void *global_var(struct bpf_object *obj, const char *secname, const char *name,
			__u32 *size)
{
	const struct btf_var_secinfo *vs;
	const struct btf_type *sec, *var;
	struct btf *btf = bpf_object__btf(obj);
	struct bpf_map *map;
	size_t msize;
	char *base;
	int id, i;

	map = bpf_object__find_map_by_name(obj, secname);
	id = btf ? btf__find_by_name_kind(btf, secname, BTF_KIND_DATASEC) : -1;
	if (!map || id < 0)
		return NULL;
	base = (char *)bpf_map__initial_value(map, &msize);
	if (!base)
		return NULL;
	sec = btf__type_by_id(btf, id);
	vs = btf_var_secinfos(sec);
	for (i = 0; i < btf_vlen(sec); i++, vs++) {
		var = btf__type_by_id(btf, vs->type);
		if (strcmp(btf__name_by_offset(btf, var->name_off), name))
			continue;
		if (vs->offset + vs->size > msize)
			return NULL;
		*size = vs->size;
		return base + vs->offset;
	}
	return NULL;
}

static void set_rodata(struct bpf_object *obj, const char *name, unsigned long value)
{
	__u32 size = 0;
	void *p = global_var(obj, ".rodata", name, &size);

	if (!p)
		fail("no .rodata variable %s", name);
	if (size == 2 && value <= 0xffff) {
		__u16 v = value;
		memcpy(p, &v, 2);
	} else if (size == 4 && value <= 0xffffffffUL) {
		__u32 v = value;
		memcpy(p, &v, 4);
	} else {
		fail("value out of range for %s", name);
	}
}

static void note(const char *fmt, const char *arg, int err)
{
	size_t used = strlen(notes);
	char one[192];

	snprintf(one, sizeof(one), fmt, arg, strerror(err));
	snprintf(notes + used, sizeof(notes) - used, "%s%s", used ? "; " : "", one);
}

static void autoload(struct bpf_object *obj, const char *name, bool on)
{
	struct bpf_program *p = bpf_object__find_program_by_name(obj, name);

	if (!p)
		fail("the object lacks the program %s", name);
	bpf_program__set_autoload(p, on);
}

/* Whether the kernel's BTF has name of kind (a tracepoint's btf_trace_ typedef, a function). */
static bool kernel_has(struct btf *vmlinux, const char *name, int kind)
{
	return vmlinux && btf__find_by_name_kind(vmlinux, name, kind) >= 0;
}

static struct bpf_object *open_object(const struct options *o, const struct plan *pl)
{
	struct bpf_object *obj = bpf_object__open_file(o->obj, NULL);
	struct bpf_program *enter, *exit_, *handler;

	if (!obj)
		fail("cannot open %s", o->obj);
	set_rodata(obj, "hb_port", o->port);
	set_rodata(obj, "hb_every", o->every);
	set_rodata(obj, "hb_max_events", o->max_events);
	enter = bpf_object__find_program_by_name(obj, "hba_xdp_enter");
	exit_ = bpf_object__find_program_by_name(obj, "hba_xdp_exit");
	handler = bpf_object__find_program_by_name(obj, "hba_handler_fentry");
	if (!enter || !exit_ || !handler)
		fail("%s lacks the XDP entry/exit or handler programs", o->obj);
	/* a target the kernel lacks fails here already: a refusal, as a load's */
	if (pl->xdp_fd >= 0 &&
	    (bpf_program__set_attach_target(enter, pl->xdp_fd, pl->xdp_name) ||
	     bpf_program__set_attach_target(exit_, pl->xdp_fd, pl->xdp_name)))
		goto refused;
	if (pl->handler == HOOK_FENTRY && bpf_program__set_attach_target(handler, 0, o->handler))
		goto refused;
	bpf_program__set_autoload(enter, pl->xdp_fd >= 0);
	bpf_program__set_autoload(exit_, pl->xdp_fd >= 0);
	bpf_program__set_autoload(handler, pl->handler == HOOK_FENTRY);
	autoload(obj, "hba_handler_kprobe", pl->handler == HOOK_KPROBE);
	autoload(obj, "hba_enqueue", pl->enqueue == HOOK_TP);
	autoload(obj, "hba_enqueue_fentry", pl->enqueue == HOOK_FENTRY);
	autoload(obj, "hba_enqueue_kprobe", pl->enqueue == HOOK_KPROBE);
	autoload(obj, "hba_krecv", pl->kernel_recv == HOOK_TP);
	autoload(obj, "hba_krecv_copy", pl->kernel_recv == HOOK_TP);
	for (int i = 0; i < o->nwithout; i++) {
		struct bpf_program *p = bpf_object__find_program_by_name(obj, o->without[i]);

		if (p)
			bpf_program__set_autoload(p, false);
	}
	load_errno = 0;
	if (!bpf_object__load(obj))
		return obj;
refused:
	load_errno = errno;
	bpf_object__close(obj);
	return NULL;
}

/* The hooks this kernel should take, from its BTF. */
static void first_plan(const struct options *o, struct plan *pl)
{
	struct btf *vmlinux = btf__load_vmlinux_btf();

	if (!vmlinux)
		note("%s: %s", "the kernel's BTF could not be read", errno);
	if (kernel_has(vmlinux, "btf_trace_sk_data_ready", BTF_KIND_TYPEDEF)) {
		pl->enqueue = HOOK_TP;
	} else if (o->kprobes) {
		pl->enqueue = HOOK_KPROBE;
		note("%s (%s): socket enqueue by kprobe on sock_def_readable",
		     "no sk_data_ready tracepoint", ENOENT);
	} else if (kernel_has(vmlinux, "sock_def_readable", BTF_KIND_FUNC)) {
		pl->enqueue = HOOK_FENTRY;
		note("%s (%s): socket enqueue by fentry on sock_def_readable",
		     "no sk_data_ready tracepoint", ENOENT);
	} else {
		pl->enqueue = HOOK_KPROBE;
		note("%s (%s): socket enqueue by kprobe on sock_def_readable",
		     "no sk_data_ready tracepoint nor sock_def_readable BTF", ENOENT);
	}
	pl->kernel_recv = HOOK_NONE;
	if (o->kernel_recv &&
	    kernel_has(vmlinux, "btf_trace_consume_skb", BTF_KIND_TYPEDEF) &&
	    kernel_has(vmlinux, "btf_trace_skb_copy_datagram_iovec", BTF_KIND_TYPEDEF))
		pl->kernel_recv = HOOK_TP;
	else if (o->kernel_recv)
		note("%s (%s): kernel threads' receives are not traced",
		     "no consume_skb or skb_copy_datagram_iovec tracepoint", ENOENT);
	pl->handler = !o->handler ? HOOK_NONE : o->kprobes ? HOOK_KPROBE : HOOK_FENTRY;
	btf__free(vmlinux);
}

/*
 * Loads by the plan, giving up preferred hooks one at a time when the kernel
 * refuses the object (which program it refused is not told): the handler's
 * fentry for its kprobe, the kernel threads' receive hook, the XDP program's
 * fentry/fexit, the handler's kprobe, then the enqueue's fentry for a kprobe
 * and that for none.
 */
static struct bpf_object *load(const struct options *o, struct plan *pl, char *xdp_note,
			       size_t xdp_note_len)
{
	struct bpf_object *obj;

	for (;;) {
		obj = open_object(o, pl);
		if (obj)
			return obj;
		if (pl->handler == HOOK_FENTRY) {
			note("fentry on %s refused (%s): kprobe instead", o->handler, load_errno);
			pl->handler = HOOK_KPROBE;
		} else if (pl->kernel_recv == HOOK_TP) {
			note("%s refused (%s): kernel threads' receives are not traced",
			     "tp_btf/consume_skb", load_errno);
			pl->kernel_recv = HOOK_NONE;
		} else if (pl->xdp_fd >= 0) {
			snprintf(xdp_note, xdp_note_len,
				 "the kernel refused fentry/fexit on the XDP program: %s",
				 strerror(load_errno));
			pl->xdp_fd = -1;
		} else if (pl->handler == HOOK_KPROBE) {
			note("the kprobe on %s refused (%s): handler not traced", o->handler,
			     load_errno);
			pl->handler = HOOK_NONE;
		} else if (pl->enqueue == HOOK_FENTRY) {
			note("%s refused (%s): kprobe instead", "fentry on sock_def_readable",
			     load_errno);
			pl->enqueue = HOOK_KPROBE;
		} else if (pl->enqueue == HOOK_KPROBE) {
			note("%s refused (%s): socket enqueues not traced",
			     "the kprobe on sock_def_readable", load_errno);
			pl->enqueue = HOOK_NONE;
		} else {
			return NULL;
		}
	}
}

/* Attaches prog; a handler kprobe that fails is left out (noted), anything else is fatal. */
static struct bpf_link *attach(struct bpf_program *prog, const struct options *o,
			       struct plan *pl)
{
	struct bpf_link *link;

	if (strcmp(bpf_program__name(prog), "hba_handler_kprobe")) {
		link = bpf_program__attach(prog);
		if (!link)
			fail("attaching %s failed", bpf_program__name(prog));
		return link;
	}
	link = bpf_program__attach_kprobe(prog, false, o->handler);
	if (!link) {
		note("the kprobe on %s did not attach (%s): handler not traced", o->handler, errno);
		pl->handler = HOOK_NONE;
	}
	return link;
}

static int on_event(void *ctx, void *data, size_t size)
{
	(void)ctx;
	if (size != sizeof(struct hb_anat_event))
		return 0;
	if (fwrite(data, size, 1, out) == 1)
		written++;
	return 0;
}

static void command(struct bpf_object *obj, char *line)
{
	unsigned int tgid;
	char role[16];
	__u32 value;
	int fd = bpf_map__fd(bpf_object__find_map_by_name(obj, "hb_roles"));

	if (!strncmp(line, "stop", 4)) {
		stopping = 1;
		return;
	}
	if (sscanf(line, "role %u %15s", &tgid, role) != 2)
		return;
	value = !strcmp(role, "client") ? HBA_CLIENT : HBA_SERVER;
	if (bpf_map_update_elem(fd, &tgid, &value, BPF_ANY))
		fprintf(stderr, "hb-anatomyctl: role %u: %s\n", tgid, strerror(errno));
}

static void parse(int argc, char **argv, struct options *o)
{
	static const struct option opts[] = {
		{ "obj", required_argument, NULL, 'o' },
		{ "out", required_argument, NULL, 'w' },
		{ "port", required_argument, NULL, 'p' },
		{ "every", required_argument, NULL, 'e' },
		{ "max-events", required_argument, NULL, 'm' },
		{ "xdp-prog-id", required_argument, NULL, 'x' },
		{ "max-seconds", required_argument, NULL, 's' },
		{ "without", required_argument, NULL, 'n' },
		{ "handler", required_argument, NULL, 'H' },
		{ "kernel-recv", no_argument, NULL, 'k' },
		{ "kprobes", no_argument, NULL, 'K' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'o': o->obj = optarg; break;
		case 'w': o->out = optarg; break;
		case 'p': o->port = number(optarg, "--port"); break;
		case 'e': o->every = number(optarg, "--every"); break;
		case 'm': o->max_events = number(optarg, "--max-events"); break;
		case 'x': o->xdp_prog_id = number(optarg, "--xdp-prog-id"); break;
		case 's': o->max_seconds = number(optarg, "--max-seconds"); break;
		case 'H': o->handler = optarg; break;
		case 'k': o->kernel_recv = 1; break;
		case 'K': o->kprobes = 1; break;
		case 'n':
			if (o->nwithout == MAX_LINKS)
				fail("%s", "too many --without");
			o->without[o->nwithout++] = optarg;
			break;
		default: fail("%s", "usage: --obj O --out FILE [--port N] [--every N] "
			      "[--max-events N] [--xdp-prog-id ID] [--handler FUNC] "
			      "[--kernel-recv] [--kprobes] [--max-seconds S]");
		}
	}
	if (!o->obj || !o->out || !o->every || o->port > 65535 || !o->max_seconds)
		fail("%s", "--obj and --out are required; --every and --max-seconds > 0");
	if (o->handler && (!*o->handler || strlen(o->handler) >= 128 ||
			   strspn(o->handler, "abcdefghijklmnopqrstuvwxyz"
				  "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.") != strlen(o->handler)))
		fail("%s", "--handler must be a function name");
}

static void print_stats(struct bpf_object *obj)
{
	struct bpf_map *bss = bpf_object__find_map_by_name(obj, ".bss");
	struct hb_anat_stats st = { 0 };
	__u32 size = 0, zero = 0;
	char *value = NULL;
	void *at = global_var(obj, ".bss", "hb_stats", &size);
	size_t msize = 0;
	const char *base = bss ? bpf_map__initial_value(bss, &msize) : NULL;

	/* the live values: the map's element, at the variable's offset in the section */
	if (bss && at && base && size == sizeof(st)) {
		value = calloc(1, bpf_map__value_size(bss));
		if (value && !bpf_map_lookup_elem(bpf_map__fd(bss), &zero, value))
			memcpy(&st, value + ((const char *)at - base), sizeof(st));
		free(value);
	}
	printf("{\"done\": true, \"events\": %llu, \"windows\": %llu, \"closed\": %llu, "
	       "\"abandoned\": %llu, \"capped\": %llu, \"lost\": %llu}\n",
	       written, (unsigned long long)st.windows, (unsigned long long)st.closed,
	       (unsigned long long)st.abandoned, (unsigned long long)st.capped,
	       (unsigned long long)st.lost);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct options o = { .port = 3000, .every = 16, .max_events = 128, .max_seconds = 120 };
	struct bpf_link *links[MAX_LINKS];
	struct bpf_prog_info info;
	__u32 info_len = sizeof(info);
	struct bpf_program *prog;
	struct bpf_object *obj = NULL;
	struct ring_buffer *rb;
	struct pollfd pfd = { .fd = 0, .events = POLLIN };
	char xdp_note[128] = "";
	char xdp_name[BPF_OBJ_NAME_LEN] = "";
	char progs[MAX_LINKS * 48] = "";
	struct plan plan = { 0 };
	int xdp_fd = -1, nlinks = 0;
	time_t deadline;
	char line[128];

	parse(argc, argv, &o);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		return 1;	/* the parent is already gone */
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGHUP, on_signal);
	libbpf_set_print(quiet_print);
	out = fopen(o.out, "wb");
	if (!out)
		fail("cannot write %s", o.out);

	if (o.xdp_prog_id) {
		xdp_fd = bpf_prog_get_fd_by_id(o.xdp_prog_id);
		memset(&info, 0, sizeof(info));
		if (xdp_fd < 0 || bpf_obj_get_info_by_fd(xdp_fd, &info, &info_len)) {
			snprintf(xdp_note, sizeof(xdp_note),
				 "the XDP program could not be opened: %s", strerror(errno));
			xdp_fd = -1;
		} else if (info.type != BPF_PROG_TYPE_XDP) {
			snprintf(xdp_note, sizeof(xdp_note),
				 "program %lu is not an XDP program", o.xdp_prog_id);
			close(xdp_fd);
			xdp_fd = -1;
		} else {
			memcpy(xdp_name, info.name, sizeof(xdp_name) - 1);
		}
	}
	first_plan(&o, &plan);
	plan.xdp_fd = xdp_fd;
	plan.xdp_name = xdp_name;
	obj = load(&o, &plan, xdp_note, sizeof(xdp_note));
	if (!obj)
		fail("loading the anatomy programs failed: %s", strerror(load_errno));

	bpf_object__for_each_program(prog, obj) {
		struct bpf_link *link;
		size_t used = strlen(progs);

		if (!bpf_program__autoload(prog))
			continue;
		if (nlinks == MAX_LINKS)
			fail("%s", "too many programs");
		link = attach(prog, &o, &plan);
		if (!link)
			continue;
		links[nlinks++] = link;
		memset(&info, 0, sizeof(info));
		info_len = sizeof(info);
		bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &info_len);
		snprintf(progs + used, sizeof(progs) - used, "%s\"%s\": %u", used ? ", " : "",
			 bpf_program__name(prog), info.id);
	}
	printf("{\"ready\": true, \"progs\": {%s}, \"xdp\": %s, \"xdp_note\": \"%s\", "
	       "\"enqueue\": \"%s%s\", \"handler\": \"%s\", \"kernel_recv\": \"%s\", "
	       "\"notes\": \"%s\"}\n",
	       progs, plan.xdp_fd >= 0 ? "true" : "false", xdp_note,
	       hook_names[plan.enqueue],
	       plan.enqueue == HOOK_NONE ? "" :
	       plan.enqueue == HOOK_TP ? "/sk_data_ready" : "/sock_def_readable",
	       hook_names[plan.handler], hook_names[plan.kernel_recv], notes);
	fflush(stdout);

	rb = ring_buffer__new(bpf_map__fd(bpf_object__find_map_by_name(obj, "hb_events")),
			      on_event, NULL, NULL);
	if (!rb)
		fail("%s", "ring buffer");
	deadline = time(NULL) + (time_t)o.max_seconds;
	while (!stopping && time(NULL) < deadline) {
		/* the programs never wake us (BPF_RB_NO_WAKEUP): read on a timer */
		ring_buffer__consume(rb);
		if (poll(&pfd, 1, POLL_MS) > 0) {
			if (!fgets(line, sizeof(line), stdin))
				break;	/* end of input: the parent is done */
			command(obj, line);
		}
	}
	while (nlinks)
		bpf_link__destroy(links[--nlinks]);
	ring_buffer__consume(rb);
	fflush(out);
	fclose(out);
	print_stats(obj);
	ring_buffer__free(rb);
	bpf_object__close(obj);
	if (xdp_fd >= 0)
		close(xdp_fd);
	return 0;
}
