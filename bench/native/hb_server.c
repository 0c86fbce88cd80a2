// SPDX-License-Identifier: MIT
/*
 * The scaffold of the C socket servers (see hb_server.h): options, socket,
 * counters memfd, stop signals.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hb_server.h"
#include "hello_proto.h"

#define HB_MAX_OPTIONS		32
#define HB_OPT_COUNTERS		0x100	/* no short form */

volatile sig_atomic_t hb_stopping;
static volatile sig_atomic_t hb_serving_fd = -1;

int hb_parse_ulong(const char *s, unsigned long lo, unsigned long hi,
		   unsigned long *val)
{
	char *end;

	errno = 0;
	*val = strtoul(s, &end, 10);
	return !(errno || !*s || *end || s[0] == '-' || *val < lo || *val > hi);
}

static void hb_usage(const struct hb_server *s, const char *prog)
{
	fprintf(stderr, "usage: %s [--addr A] [--port N]%s%s\n", prog,
		s->usage ? " " : "", s->usage ? s->usage : "");
}

/* The short options of @opts: every printable key, with ':' if it takes a value. */
static void hb_short_options(const struct option *opts, char *buf, size_t len)
{
	size_t n = 0;

	for (; opts->name && n + 2 < len; opts++) {
		if (opts->val <= ' ' || opts->val > '~')
			continue;
		buf[n++] = (char)opts->val;
		if (opts->has_arg == required_argument)
			buf[n++] = ':';
	}
	buf[n] = '\0';
}

int hb_server_args(struct hb_server *s, int argc, char **argv,
		   const struct option *opts, hb_option_fn fn, void *ctx)
{
	struct option all[HB_MAX_OPTIONS] = {
		{ "addr", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "counters", no_argument, NULL, HB_OPT_COUNTERS },
	};
	char shorts[2 * HB_MAX_OPTIONS + 1];
	int n = 3, counters = 0, c;
	size_t i;

	if (!s->addr)
		s->addr = "127.0.0.1";
	if (!s->port)
		s->port = HELLO_DEFAULT_PORT;
	for (; opts && opts->name && n < HB_MAX_OPTIONS - 1; opts++)
		all[n++] = *opts;
	hb_short_options(all, shorts, sizeof(shorts));
	while ((c = getopt_long(argc, argv, shorts, all, NULL)) != -1) {
		switch (c) {
		case 'a':
			s->addr = optarg;
			break;
		case 'p':
			if (!hb_parse_ulong(optarg, 1, 65535, &s->port)) {
				fprintf(stderr, "--port must be 1..65535\n");
				return 2;
			}
			break;
		case HB_OPT_COUNTERS:
			counters = 1;
			break;
		case '?':
		case ':':
			hb_usage(s, argv[0]);
			return 2;
		default:
			if (!fn) {
				hb_usage(s, argv[0]);
				return 2;
			}
			if (fn(c, optarg, ctx) < 0)
				return 2;
			break;
		}
	}
	if (optind < argc) {
		hb_usage(s, argv[0]);
		return 2;
	}
	if (counters) {
		for (i = 0; i < s->ncounters; i++)
			printf("%s\n", s->counters[i]);
		exit(fflush(stdout) ? 1 : 0);
	}
	return 0;
}

static int hb_bind(const char *addr, int port, int type_flags)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	memset(&ss, 0, sizeof(ss));
	if (strchr(addr, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1)
			return -EINVAL;
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1)
			return -EINVAL;
		len = sizeof(*s4);
	}
	fd = socket(ss.ss_family, SOCK_DGRAM | type_flags, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

int hb_server_socket(const struct hb_server *s, int type_flags)
{
	int fd = hb_bind(s->addr, (int)s->port, type_flags);

	if (fd < 0) {
		fprintf(stderr, "cannot bind %s:%lu: %s\n", s->addr, s->port,
			strerror(-fd));
		return -1;
	}
	return fd;
}

void *hb_counters_open(size_t size, void *fallback)
{
	void *c;
	int fd;

	fd = memfd_create("hellobench-counters", MFD_CLOEXEC);
	if (fd < 0)
		return fallback;
	if (ftruncate(fd, (off_t)size) < 0) {
		close(fd);
		return fallback;
	}
	c = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (c == MAP_FAILED) {
		close(fd);
		return fallback;
	}
	return c;	/* fd stays open: the controller finds it in /proc/PID/fd */
}

static void hb_on_signal(int sig)
{
	int saved_errno = errno;

	(void)sig;
	hb_stopping = 1;
	if (hb_serving_fd >= 0)
		shutdown(hb_serving_fd, SHUT_RD);	/* async-signal-safe */
	errno = saved_errno;
}

int hb_stop_on_signal(int fd)
{
	struct sigaction sa;

	hb_serving_fd = fd;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = hb_on_signal;
	if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
		return -1;
	return 0;
}

int hb_stop_signalfd(int flags)
{
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -1;
	return signalfd(-1, &mask, flags);
}
