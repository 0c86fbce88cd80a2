// SPDX-License-Identifier: MIT
/*
 * HELLO server: a non-blocking UDP socket in an epoll_wait() loop, the shape of most
 * production UDP servers.
 *
 * The socket is registered level-triggered.  Each readiness report is drained with
 * recvfrom() until EAGAIN, or until DRAIN_BUDGET datagrams have been taken: under a
 * flood that never empties the queue the loop still returns to epoll_wait(), where the
 * signalfd is, and level triggering reports the rest of the queue at once.  A reply that
 * would block (EAGAIN on sendto(): the send buffer is full) is dropped and counted, never
 * waited for.
 *
 * SIGTERM and SIGINT are blocked and read from a signalfd in the same epoll set, so a
 * stop can never land between a check and a sleep.
 *
 * Counters (answered, rejected, send_dropped, send_failed, wakeups) live in a shared
 * memfd named "hellobench-counters", which the controller reads from /proc.
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
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hello_proto.h"

#define DRAIN_BUDGET	256
#define SLOT_SIZE	2048	/* > HELLO_MAX_REQUEST: a longer datagram shows up truncated */

struct counters {
	uint64_t answered;
	uint64_t rejected;
	uint64_t send_dropped;
	uint64_t send_failed;
	uint64_t wakeups;
};

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
	fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static void answer(int fd, char *buf, ssize_t n, const struct sockaddr_storage *peer,
		   socklen_t plen, struct counters *c)
{
	if (n < HELLO_MIN_REQUEST || n > HELLO_MAX_REQUEST ||
	    memcmp(buf, HELLO_MAGIC, HELLO_MAGIC_LEN) != 0) {
		c->rejected++;
		return;
	}
	memcpy(buf, HELLO_REPLY, HELLO_REPLY_LEN);
	if (sendto(fd, buf, (size_t)n, 0, (const struct sockaddr *)peer, plen) >= 0)
		c->answered++;
	else if (errno == EAGAIN || errno == EWOULDBLOCK)
		c->send_dropped++;
	else
		c->send_failed++;	/* a vanished client must not stop the server */
}

/* Take what is queued; returns 0, or -1 on an error that ends the server. */
static int drain(int fd, struct counters *c)
{
	static char buf[SLOT_SIZE];
	struct sockaddr_storage peer;
	socklen_t plen;
	ssize_t n;
	int i;

	for (i = 0; i < DRAIN_BUDGET; i++) {
		plen = sizeof(peer);
		/* MSG_TRUNC: the datagram's real length, so an oversized one is rejected. */
		n = recvfrom(fd, buf, sizeof(buf), MSG_TRUNC, (struct sockaddr *)&peer, &plen);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EINTR)
				continue;
			perror("recvfrom");
			return -1;
		}
		answer(fd, buf, n, &peer, plen, c);
	}
	return 0;
}

static int open_signalfd(void)
{
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -1;
	return signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
}

static int add_fd(int ep, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static int serve(int ep, int fd, int sfd, struct counters *c)
{
	struct epoll_event events[2];
	int i, n;

	for (;;) {
		n = epoll_wait(ep, events, 2, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("epoll_wait");
			return 1;
		}
		c->wakeups++;
		for (i = 0; i < n; i++) {
			if (events[i].data.fd == sfd)
				return 0;	/* SIGTERM or SIGINT */
			if (drain(fd, c) < 0)
				return 1;
		}
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "addr", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	const char *addr = "127.0.0.1";
	unsigned long port = HELLO_DEFAULT_PORT;
	struct counters *counters;
	int fd, sfd, ep, c;
	char *end;

	while ((c = getopt_long(argc, argv, "a:p:", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			addr = optarg;
			break;
		case 'p':
			errno = 0;
			port = strtoul(optarg, &end, 10);
			if (errno || !*optarg || *end || port < 1 || port > 65535) {
				fprintf(stderr, "--port must be 1..65535\n");
				return 2;
			}
			break;
		default:
			fprintf(stderr, "usage: %s [--addr A] [--port N]\n", argv[0]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "usage: %s [--addr A] [--port N]\n", argv[0]);
		return 2;
	}
	fd = open_socket(addr, (int)port);
	if (fd < 0) {
		fprintf(stderr, "cannot bind %s:%lu: %s\n", addr, port, strerror(-fd));
		return 1;
	}
	/* Signals blocked only once the socket exists: until then their default ends us. */
	sfd = open_signalfd();
	if (sfd < 0) {
		perror("signalfd");
		return 1;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		perror("epoll_create1");
		return 1;
	}
	if (add_fd(ep, sfd) < 0 || add_fd(ep, fd) < 0) {
		perror("epoll_ctl");
		return 1;
	}
	counters = open_counters();
	printf("READY\n");
	fflush(stdout);
	return serve(ep, fd, sfd, counters);
}
