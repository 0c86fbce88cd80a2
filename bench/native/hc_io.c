// SPDX-License-Identifier: MIT
/*
 * hello-client: socket I/O.  A send refused by the kernel (ECONNREFUSED,
 * ENOBUFS) is followed by a sleep: a UDP socket reports POLLOUT all the same,
 * so polling would spin.  A full socket buffer (EAGAIN) waits for POLLOUT.
 * With --wait=spin nothing sleeps: receives are non-blocking, ppoll() has a
 * zero timeout and the backoff watches the clock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "hc_client.h"
#include "hc_io.h"
#include "hc_requests.h"
#include "hc_util.h"

/*
 * A send that failed: a full socket buffer (EAGAIN: wait for POLLOUT) or a refusal
 * (ECONNREFUSED, ENOBUFS: POLLOUT is no use, the caller backs off) counts 0; else -1.
 */
int io_send_error(struct client *cl, const char *what)
{
	if (errno != ECONNREFUSED && errno != ENOBUFS && errno != EAGAIN) {
		perror(what);
		return -1;
	}
	cl->refused = errno != EAGAIN;
	cl->c.send_errors++;
	return 0;
}

int io_send_one(struct client *cl, uint64_t stamp)
{
	ssize_t n;

	req_stamp(cl->tx, cl->flags, cl->next_seq, stamp);
	do {
		cl->c.send_calls++;
		n = send(cl->fd, cl->tx, cl->o->size, 0);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return io_send_error(cl, "send");
	req_commit_sent(cl, stamp, stamp);
	return 1;
}

/* Sends up to @count prepared requests (tx buffers 0..count-1); returns how many went. */
int io_send_batch(struct client *cl, unsigned int count)
{
	int n;

	do {
		cl->c.send_calls++;
		n = sendmmsg(cl->fd, cl->txm, count, MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? io_send_error(cl, "sendmmsg") : n;
}

/*
 * Sleeps @ns after a refused send, replies or not: a socket would wake a poll at once.
 * Spinning, it watches the clock for as long instead.
 */
int io_backoff(struct client *cl, uint64_t ns)
{
	uint64_t until = now_ns() + ns;
	struct timespec ts = ns_to_ts(until);
	int err;

	cl->c.backoffs++;
	if (cl->o->wait == WAIT_SPIN) {
		while (now_ns() < until)
			;
		return 0;
	}
	do {
		err = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
	} while (err == EINTR);
	if (err) {
		fprintf(stderr, "hello-client: clock_nanosleep: %s\n", strerror(err));
		return -1;
	}
	return 0;
}

/*
 * A failed receive: nothing there yet (0), an ICMP error of a vanished server counted
 * as a send error (0), or a real failure (-1).
 */
static int receive_error(struct client *cl, const char *what)
{
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	if (errno == ECONNREFUSED) {
		cl->c.send_errors++;
		return 0;
	}
	perror(what);
	return -1;
}

/* Receives whatever is queued (or waits for one datagram when @wait); -1 on error. */
int io_receive(struct client *cl, bool wait, uint64_t *now)
{
	unsigned int i;
	int n;

	n = recvmmsg(cl->fd, cl->rxm, cl->o->batch, wait ? MSG_WAITFORONE : MSG_DONTWAIT, NULL);
	*now = now_ns();
	if (n < 0)
		return receive_error(cl, "recvmmsg");
	for (i = 0; i < (unsigned int)n; i++)
		req_on_reply(cl, cl->rx + (size_t)i * RECV_BUF_SIZE, cl->rxm[i].msg_len, *now);
	return n;
}

/* One blocking recv, the cheapest path when a single request is in flight. */
int io_receive_one(struct client *cl, int flags, uint64_t *now)
{
	ssize_t n = recv(cl->fd, cl->rx, RECV_BUF_SIZE, flags);

	*now = now_ns();
	if (n < 0)
		return receive_error(cl, "recv");
	req_on_reply(cl, cl->rx, (size_t)n, *now);
	return 1;
}

/*
 * Sleeps until the socket is readable (or writable, with @out) or @until passes; with
 * --wait=spin, polls it with a zero timeout until then instead, never sleeping.
 * Returns 1 when there may be something to read, 0 when not, -1 on error.
 */
int io_wait_socket(struct client *cl, uint64_t until, bool out)
{
	struct pollfd pfd = { .fd = cl->fd, .events = POLLIN | (out ? POLLOUT : 0) };
	bool spin = cl->o->wait == WAIT_SPIN;
	uint64_t now = now_ns();
	struct timespec ts = { 0, 0 };
	int n;

	if (until <= now)
		return 1;
	do {
		if (!spin)
			ts = ns_to_ts(until - now);
		pfd.revents = 0;
		n = ppoll(&pfd, 1, &ts, NULL);
		if (n < 0 && errno != EINTR) {
			perror("ppoll");
			return -1;
		}
		if (n > 0)
			break;
		now = now_ns();
	} while (spin && now < until);
	return n > 0 && (pfd.revents & (POLLIN | POLLERR)) ? 1 : 0;
}

