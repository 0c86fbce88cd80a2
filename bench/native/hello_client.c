// SPDX-License-Identifier: MIT
/*
 * hello-client: the measuring end of hellobench.  Sends HELLO requests to one server
 * and measures what comes back; Python (bench/driver/client.py) only orchestrates.
 *
 * Its parts, one responsibility a file:
 *   hc_options.c    the option table: argv, the usage text, --limits (JSON)
 *   hc_modes.c      the pingpong, rate and flood loops and the phases they run in
 *   hc_requests.c   requests in flight, replies matched, timeouts
 *   hc_io.c         socket I/O: sends, receives, waits, backoffs
 *   hc_histogram.c  the latency histogram and reservoir
 *   hc_ordered.c    the ordered sample stream: (send time, latency) in send order
 *   hc_results.c    the results JSON and the raw samples
 *   hello_client.c  setup (socket, buffers), the stdin/stdout handshake, main
 *
 * How the client waits (--wait): block (the default) sleeps in the kernel;
 * spin never sleeps: every receive is non-blocking (MSG_DONTWAIT) and retried until a
 * reply comes or the clock says the timeout (or the next send) is due, ppoll() is called
 * with a zero timeout only, and the backoff after a refused send watches the clock.  Same
 * deadlines, same counts; the client's CPU stays busy and it is never woken.
 * --busy-poll is --wait=spin, for pingpong only.
 *
 * Phases, driven over stdin/stdout unless --no-handshake:
 *   warmup (requests flagged HELLO_FLAG_WARMUP, not recorded) -> "READY" -> wait for
 *   "GO" -> measure (--duration or --max-requests, whichever first) -> drain replies
 *   for up to --timeout -> "DONE" -> wait for "EXIT" or EOF -> write results.
 *
 * Memory is bounded whatever the duration or rate: latencies go into a fixed-size
 * histogram plus a reservoir sample and an ordered stream thinned evenly (at most
 * --ordered-cap entries); in-flight requests live in a ring indexed by sequence number.
 *
 * Counts: a request unanswered after --timeout is a timeout (pingpong replaces it); a
 * reply that still comes later counts as a (late) reply, so lost = requests - replies is
 * what never came back.
 *
 * Exit status: 0 success, 1 runtime failure, 2 bad arguments.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hc_client.h"
#include "hc_histogram.h"
#include "hc_modes.h"
#include "hc_options.h"
#include "hc_requests.h"
#include "hc_results.h"
#include "hc_util.h"
#include "hello_proto.h"

#define MAX_TICK_NS		20000000ull
#define RING_MIN		1024ull
#define RING_MAX		(1ull << 20)
#define SOCKET_BUF_BYTES	(4 << 20)

/* ---- setup ---------------------------------------------------------------------- */

static int resolve(const char *addr, int port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	if (strchr(addr, ':')) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*s6);
		return inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1 ? 0 : -1;
	}
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	*len = sizeof(*s4);
	return inet_pton(AF_INET, addr, &s4->sin_addr) == 1 ? 0 : -1;
}

static int open_socket(const struct options *o)
{
	int buf = SOCKET_BUF_BYTES, fd;
	struct sockaddr_storage ss;
	struct timeval tv;
	uint64_t tick;
	socklen_t len;

	if (resolve(o->addr, o->port, &ss, &len) < 0) {
		fprintf(stderr, "hello-client: bad address '%s'\n", o->addr);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_DGRAM, 0);
	if (fd < 0)
		goto fail;
	/* Blocking waits wake at least this often to notice timeouts and the phase end. */
	tick = secs_to_ns(o->size < HELLO_HEADER_SIZE ? o->timeout_s : o->timeout_s / 8);
	if (tick < 1000000)
		tick = 1000000;
	if (tick > MAX_TICK_NS && o->size >= HELLO_HEADER_SIZE)
		tick = MAX_TICK_NS;
	tv.tv_sec = (time_t)(tick / NSEC_PER_SEC);
	tv.tv_usec = (suseconds_t)(tick % NSEC_PER_SEC / 1000);
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		goto fail_close;
	/* Best effort: the kernel caps these at net.core.[rw]mem_max. */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	if (connect(fd, (struct sockaddr *)&ss, len) < 0)
		goto fail_close;
	/* rate and flood never block in a socket call: they wait in ppoll() only. */
	if (o->mode != MODE_PINGPONG && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
		goto fail_close;
	return fd;

fail_close:
	close(fd);
fail:
	fprintf(stderr, "hello-client: socket to %s:%d: %s\n", o->addr, o->port, strerror(errno));
	return -1;
}

static uint64_t ring_size(const struct options *o)
{
	double want = RING_MIN;
	uint64_t n = RING_MIN;

	if (o->mode == MODE_PINGPONG)
		want = 4.0 * o->outstanding;
	else if (o->mode == MODE_RATE)
		want = 2.0 * o->rate_rps * (o->timeout_s + 0.05);
	else
		want = (double)(RING_MAX >> 2);
	while (n < RING_MAX && (double)n < want)
		n <<= 1;
	return n;
}

static void setup_buffers(struct client *cl)
{
	unsigned int i, size = cl->o->size;

	for (i = 0; i < cl->o->batch; i++) {
		req_fill_template(cl->tx + (size_t)i * size, size);
		cl->txv[i].iov_base = cl->tx + (size_t)i * size;
		cl->txv[i].iov_len = size;
		cl->txm[i].msg_hdr.msg_iov = &cl->txv[i];
		cl->txm[i].msg_hdr.msg_iovlen = 1;
		cl->rxv[i].iov_base = cl->rx + (size_t)i * RECV_BUF_SIZE;
		cl->rxv[i].iov_len = RECV_BUF_SIZE;
		cl->rxm[i].msg_hdr.msg_iov = &cl->rxv[i];
		cl->rxm[i].msg_hdr.msg_iovlen = 1;
	}
}

static void free_client(struct client *cl)
{
	free(cl->ring);
	free(cl->lat.hist);
	free(cl->lat.samples);
	free(cl->ord.send_ns);
	free(cl->ord.latency_ns);
	free(cl->sent_lat.hist);
	free(cl->sched.ring);
	free(cl->tx);
	free(cl->rx);
	free(cl->txm);
	free(cl->rxm);
	free(cl->txv);
	free(cl->rxv);
	if (cl->fd >= 0)
		close(cl->fd);
}

/* A power of two above twice a batch: the stamps a sender can still need. */
static uint64_t schedule_ring_size(const struct options *o)
{
	uint64_t n = 1;

	while (n < 2ull * o->batch + 2)
		n <<= 1;
	return n;
}

static int init_client(struct client *cl, const struct options *o)
{
	size_t batch = o->batch, ordered = o->ordered_cap ? o->ordered_cap : 1;

	memset(cl, 0, sizeof(*cl));
	cl->o = o;
	cl->fd = -1;
	cl->next_seq = 1;
	cl->timeout_ns = secs_to_ns(o->timeout_s);
	cl->ring_mask = ring_size(o) - 1;
	cl->ring = calloc(cl->ring_mask + 1, sizeof(*cl->ring));
	cl->lat.hist = calloc(HIST_LEN, sizeof(*cl->lat.hist));
	cl->lat.cap = o->sample_cap;
	cl->lat.samples = calloc(o->sample_cap ? o->sample_cap : 1, sizeof(*cl->lat.samples));
	cl->sent_lat.hist = calloc(HIST_LEN, sizeof(*cl->sent_lat.hist));
	cl->ord.cap = o->ordered_cap;
	cl->ord.send_ns = calloc(ordered, sizeof(*cl->ord.send_ns));
	cl->ord.latency_ns = calloc(ordered, sizeof(*cl->ord.latency_ns));
	cl->sched.mask = schedule_ring_size(o) - 1;
	cl->sched.ring = calloc(cl->sched.mask + 1, sizeof(*cl->sched.ring));
	cl->tx = calloc(batch, o->size);
	cl->rx = calloc(batch, RECV_BUF_SIZE);
	cl->txm = calloc(batch, sizeof(*cl->txm));
	cl->rxm = calloc(batch, sizeof(*cl->rxm));
	cl->txv = calloc(batch, sizeof(*cl->txv));
	cl->rxv = calloc(batch, sizeof(*cl->rxv));
	if (!cl->ring || !cl->lat.hist || !cl->lat.samples || !cl->sent_lat.hist ||
	    !cl->ord.send_ns || !cl->ord.latency_ns || !cl->sched.ring || !cl->tx ||
	    !cl->rx || !cl->txm || !cl->rxm || !cl->txv || !cl->rxv) {
		fprintf(stderr, "hello-client: out of memory\n");
		return -1;
	}
	setup_buffers(cl);
	hist_reset(&cl->lat, o->seed);
	hist_reset(&cl->sent_lat, o->seed);
	ordered_reset(&cl->ord, 0);
	cl->fd = open_socket(o);
	return cl->fd < 0 ? -1 : 0;
}

static int pin_cpu(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return 0;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0) {
		fprintf(stderr, "hello-client: cannot pin to CPU %d: %s\n", cpu, strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- handshake ------------------------------------------------------------------ */

static int say(const char *word)
{
	if (printf("%s\n", word) < 0 || fflush(stdout) != 0) {
		perror("stdout");
		return -1;
	}
	return 0;
}

/* Reads lines until @word; -1 on EOF (or error), 1 when EOF is acceptable and seen. */
static int await_word(const char *word, bool eof_ok)
{
	char line[64];

	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (strcmp(line, word) == 0)
			return 0;
		fprintf(stderr, "hello-client: ignoring '%s' while waiting for %s\n", line, word);
	}
	if (eof_ok)
		return 1;
	fprintf(stderr, "hello-client: stdin closed while waiting for %s\n", word);
	return -1;
}

/* ---- main ----------------------------------------------------------------------- */

static int run(struct client *cl)
{
	const struct options *o = cl->o;

	if (o->mode == MODE_RATE)
		prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);	/* ppoll wakes on time */
	if (mode_warmup(cl) < 0)
		return -1;
	if (o->handshake && (say("READY") < 0 || await_word("GO", false) < 0))
		return -1;
	if (mode_measure(cl) < 0)
		return -1;
	if (o->handshake && (say("DONE") < 0 || await_word("EXIT", true) < 0))
		return -1;
	return results_write(cl);
}

int main(int argc, char **argv)
{
	struct options o;
	struct client cl;
	int status = 1;

	if (opt_parse(argc, argv, &o) < 0)
		return 2;
	if (pin_cpu(o.cpu) < 0)
		return 1;
	if (init_client(&cl, &o) < 0)
		goto out;
	if (run(&cl) == 0)
		status = 0;
out:
	free_client(&cl);
	return status;
}
