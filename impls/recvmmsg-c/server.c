// SPDX-License-Identifier: MIT
/*
 * HELLO server: batched recvmmsg()/sendmmsg() on a blocking UDP socket.
 *
 * One recvmmsg() takes up to --batch datagrams (1..1024, the kernel's UIO_MAXIOV).
 * MSG_WAITFORONE makes it block only for the first one and then take what is already
 * queued, so under load one call serves many requests while a lone request (pingpong)
 * is returned at once.  The valid requests of a batch are rewritten in place and sent
 * back, each to its own sender (msg_name), with as few sendmmsg() calls as the kernel
 * allows; malformed datagrams are skipped within the batch.
 *
 * Counters (answered, rejected, send_failed, batches) live in a shared memfd named
 * "hellobench-counters", so the controller reads them from /proc without a syscall on
 * the request path.
 *
 * Stopping: as in blocking-c, the signal handler also shuts the socket's receive side
 * down, which wakes a blocked recvmmsg() and makes every later one return at once (with
 * zero-length datagrams), so a signal landing just before the call is never lost.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hello_proto.h"

#define MAX_BATCH	1024	/* UIO_MAXIOV: the most recvmmsg() takes at once */
#define DEFAULT_BATCH	32
#define SLOT_SIZE	2048	/* > HELLO_MAX_REQUEST: a longer datagram shows up truncated */

struct counters {
	uint64_t answered;
	uint64_t rejected;
	uint64_t send_failed;
	uint64_t batches;
};

static volatile sig_atomic_t stopping;
static volatile sig_atomic_t serving_fd = -1;

static char bufs[MAX_BATCH][SLOT_SIZE];
static struct sockaddr_storage names[MAX_BATCH];
static struct iovec in_iov[MAX_BATCH], out_iov[MAX_BATCH];
static struct mmsghdr in[MAX_BATCH], out[MAX_BATCH];

static void on_signal(int sig)
{
	int saved_errno = errno;

	(void)sig;
	stopping = 1;
	if (serving_fd >= 0)
		shutdown(serving_fd, SHUT_RD);	/* async-signal-safe */
	errno = saved_errno;
}

static struct counters *open_counters(void)
{
	static struct counters fallback;
	struct counters *c;
	int fd;

	fd = memfd_create("hellobench-counters", MFD_CLOEXEC);
	if (fd < 0)
		return &fallback;
	if (ftruncate(fd, sizeof(*c)) < 0) {
		close(fd);
		return &fallback;
	}
	c = mmap(NULL, sizeof(*c), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (c == MAP_FAILED) {
		close(fd);
		return &fallback;
	}
	return c;	/* fd stays open: the controller finds it in /proc/PID/fd */
}

static int open_socket(const char *addr, int port)
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
	fd = socket(ss.ss_family, SOCK_DGRAM, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static void setup_slots(unsigned int batch)
{
	unsigned int i;

	for (i = 0; i < batch; i++) {
		in_iov[i].iov_base = bufs[i];
		in_iov[i].iov_len = SLOT_SIZE;
		in[i].msg_hdr.msg_iov = &in_iov[i];
		in[i].msg_hdr.msg_iovlen = 1;
		in[i].msg_hdr.msg_name = &names[i];
		out[i].msg_hdr.msg_iov = &out_iov[i];
		out[i].msg_hdr.msg_iovlen = 1;
	}
}

static int is_request(const struct mmsghdr *m, const char *buf)
{
	return !(m->msg_hdr.msg_flags & MSG_TRUNC) &&
	       m->msg_len >= HELLO_MIN_REQUEST &&
	       m->msg_len <= HELLO_MAX_REQUEST &&
	       memcmp(buf, HELLO_MAGIC, HELLO_MAGIC_LEN) == 0;
}

/* Rewrite the batch's requests in place; returns how many replies are queued in out[]. */
static unsigned int build_replies(unsigned int got, struct counters *c)
{
	unsigned int i, n = 0;

	for (i = 0; i < got; i++) {
		if (!is_request(&in[i], bufs[i])) {
			c->rejected++;
			continue;
		}
		memcpy(bufs[i], HELLO_REPLY, HELLO_REPLY_LEN);
		out_iov[n].iov_base = bufs[i];
		out_iov[n].iov_len = in[i].msg_len;
		out[n].msg_hdr.msg_name = &names[i];
		out[n].msg_hdr.msg_namelen = in[i].msg_hdr.msg_namelen;
		n++;
	}
	return n;
}

static void send_replies(int fd, unsigned int n, struct counters *c)
{
	unsigned int i = 0;
	int sent;

	while (i < n) {
		sent = sendmmsg(fd, &out[i], n - i, 0);
		if (sent < 0) {
			if (errno == EINTR && !stopping)
				continue;
			/* This reply cannot go (a vanished client): skip it, not the rest. */
			c->send_failed++;
			i++;
			continue;
		}
		c->answered += (unsigned int)sent;
		i += (unsigned int)sent;
	}
}

static int serve(int fd, unsigned int batch, struct counters *c)
{
	unsigned int i, n;
	int got;

	setup_slots(batch);
	while (!stopping) {
		for (i = 0; i < batch; i++)
			in[i].msg_hdr.msg_namelen = sizeof(names[i]);
		got = recvmmsg(fd, in, batch, MSG_WAITFORONE, NULL);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			perror("recvmmsg");
			return 1;
		}
		if (stopping)
			break;	/* receive side shut down by the handler */
		c->batches++;
		n = build_replies((unsigned int)got, c);
		if (n)
			send_replies(fd, n, c);
	}
	return 0;
}

static int parse_uint(const char *s, unsigned long lo, unsigned long hi,
		      unsigned long *out_val)
{
	char *end;

	errno = 0;
	*out_val = strtoul(s, &end, 10);
	return !(errno || !*s || *end || s[0] == '-' || *out_val < lo || *out_val > hi);
}

static void usage(const char *prog)
{
	fprintf(stderr, "usage: %s [--addr A] [--port N] [--batch 1..%d]\n",
		prog, MAX_BATCH);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "addr", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "batch", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	const char *addr = "127.0.0.1";
	unsigned long port = HELLO_DEFAULT_PORT, batch = DEFAULT_BATCH;
	struct counters *counters;
	struct sigaction sa;
	int fd, c;

	while ((c = getopt_long(argc, argv, "a:p:b:", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			addr = optarg;
			break;
		case 'p':
			if (!parse_uint(optarg, 1, 65535, &port)) {
				fprintf(stderr, "--port must be 1..65535\n");
				return 2;
			}
			break;
		case 'b':
			if (!parse_uint(optarg, 1, MAX_BATCH, &batch)) {
				fprintf(stderr, "--batch must be 1..%d, got '%s'\n",
					MAX_BATCH, optarg);
				return 2;
			}
			break;
		default:
			usage(argv[0]);
			return 2;
		}
	}
	if (optind < argc) {
		usage(argv[0]);
		return 2;
	}
	fd = open_socket(addr, (int)port);
	if (fd < 0) {
		fprintf(stderr, "cannot bind %s:%lu: %s\n", addr, port, strerror(-fd));
		return 1;
	}
	counters = open_counters();
	/* Handlers only once the socket exists: until then a signal's default action ends us. */
	serving_fd = fd;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0) {
		perror("sigaction");
		return 1;
	}
	printf("READY\n");
	fflush(stdout);
	return serve(fd, (unsigned int)batch, counters);
}
