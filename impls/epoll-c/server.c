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
 * Counters (HB_COUNTERS_EPOLL in hb_counters.h: answered, rejected, send_dropped,
 * send_failed, wakeups) live in a shared memfd named "hellobench-counters", which the
 * controller reads from /proc.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#include "hb_counters.h"
#include "hb_server.h"
#include "hello_proto.h"

#define DRAIN_BUDGET	256
#define SLOT_SIZE	2048	/* > HELLO_MAX_REQUEST: a longer datagram shows up truncated */

HB_DEFINE_COUNTERS(HB_COUNTERS_EPOLL);

static void answer(int fd, char *buf, ssize_t n, const struct sockaddr_storage *peer,
		   socklen_t plen, struct hb_counters *c)
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
static int drain(int fd, struct hb_counters *c)
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

static int add_fd(int ep, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static int serve(int ep, int fd, int sfd, struct hb_counters *c)
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
	static struct hb_counters fallback;
	struct hb_server s = {
		.counters = hb_counter_names,
		.ncounters = HB_NCOUNTERS,
	};
	struct hb_counters *counters;
	int fd, sfd, ep, ret;

	ret = hb_server_args(&s, argc, argv, NULL, NULL, NULL);
	if (ret)
		return ret;
	fd = hb_server_socket(&s, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return 1;
	/* Signals blocked only once the socket exists: until then their default ends us. */
	sfd = hb_stop_signalfd(SFD_NONBLOCK | SFD_CLOEXEC);
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
	counters = hb_counters_open(sizeof(*counters), &fallback);
	printf("READY\n");
	fflush(stdout);
	return serve(ep, fd, sfd, counters);
}
