// SPDX-License-Identifier: MIT
/*
 * hello-client: the modes' loops and the phases they run in.
 *
 *   pingpong  closed loop, --outstanding requests in flight, per-request RTT;
 *             blocking recv (as sockperf's default)
 *   rate      open loop at --rate requests/s; latency counts from the *scheduled* send
 *             time, so falling behind shows as latency (no coordinated omission);
 *             sleeps in ppoll() between sends; reads what ppoll woke it for before it
 *             sends what is due.  Also recorded: the latency from the actual send
 *             (uncorrected, as wrk2 does).  --arrivals uniform (even spacing) or poisson
 *             (exponential gaps of the same mean, drawn from --seed).  A client that
 *             falls behind sends what is due late; what is still due when the window
 *             closes is never sent: counted (schedule.dropped_due), never silent
 *   flood     as fast as possible, sendmmsg/recvmmsg batches of --batch
 *
 * Sizes below 24 bytes have no room for the header: pingpong with one request in
 * flight only, matched by order; after a timeout the replies already queued are
 * flushed, yet below 16 bytes (no seq bytes) a reply arriving later still could be
 * taken for the next one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "hc_client.h"
#include "hc_io.h"
#include "hc_modes.h"
#include "hc_requests.h"
#include "hc_util.h"
#include "hello_proto.h"

/* Sleeps after a send the kernel refused (ECONNREFUSED, ENOBUFS): polling would spin. */
#define RATE_BACKOFF_NS		20000ull
#define FLOOD_BACKOFF_NS	1000000ull
#define PINGPONG_BACKOFF_NS	20000ull
/* Stamps drawn at most to count the Poisson requests due at the end; the rest by mean. */
#define DUE_WALK_MAX		(1ull << 24)

static bool phase_over(const struct client *cl, uint64_t now, uint64_t end, uint64_t max)
{
	return now >= end || (max && cl->c.requests >= max);
}

static int refill(struct client *cl, uint64_t end, uint64_t max)
{
	uint64_t stamp;
	int err;

	while (cl->pending < cl->o->outstanding) {
		stamp = now_ns();
		if (phase_over(cl, stamp, end, max))
			return 0;
		err = io_send_one(cl, stamp);
		if (err <= 0)
			return err;
	}
	return 0;
}

/*
 * Spinning, one non-blocking attempt: the caller's loop retries it, checking the clock
 * for timeouts and the phase end in between.
 */
static int pingpong_wait(struct client *cl, uint64_t *now)
{
	if (cl->o->wait == WAIT_SPIN)
		return cl->o->outstanding == 1 ? io_receive_one(cl, MSG_DONTWAIT, now) :
						 io_receive(cl, false, now);
	/* Blocks, bounded by SO_RCVTIMEO so that timeouts and the phase end are seen. */
	return cl->o->outstanding == 1 ? io_receive_one(cl, 0, now) : io_receive(cl, true, now);
}

static int run_pingpong(struct client *cl, uint64_t end, uint64_t max)
{
	uint64_t now;

	for (;;) {
		if (refill(cl, end, max) < 0)
			return -1;
		if (!cl->pending) {
			/* Nothing went out (a refused send) or the phase is over. */
			if (phase_over(cl, now_ns(), end, max))
				return 0;
			if (io_backoff(cl, PINGPONG_BACKOFF_NS) < 0)
				return -1;
			continue;
		}
		if (pingpong_wait(cl, &now) < 0)
			return -1;
		req_expire(cl, now);
		if (phase_over(cl, now, end, max))
			return 0;
	}
}

/* An exponential draw of mean 1 (inverse transform of a uniform in (0, 1]). */
static double exponential(uint64_t *rng)
{
	double u = (double)((splitmix64(rng) >> 11) + 1) * 0x1.0p-53;

	return -log(u);
}

static void start_schedule(struct client *cl, uint64_t t0, double period_ns)
{
	struct schedule *sc = &cl->sched;

	sc->t0 = t0;
	sc->period_ns = period_ns;
	sc->poisson = cl->o->arrivals == ARRIVALS_POISSON;
	sc->rng = cl->o->seed ^ 0x5851f42d4c957f2dull;
	sc->generated = 0;
	sc->next_ns = 0.0;
	sc->due = 0;
	sc->due_estimated = false;
	sc->lag_sum_ns = 0.0;
	sc->lag_max_ns = 0;
}

/* When request @index of the phase is due; @index never falls a ring behind. */
static uint64_t scheduled(struct client *cl, uint64_t index)
{
	struct schedule *sc = &cl->sched;

	if (!sc->poisson)
		return sc->t0 + (uint64_t)((double)index * sc->period_ns);
	while (sc->generated <= index) {
		sc->ring[sc->generated & sc->mask] = sc->t0 + (uint64_t)sc->next_ns;
		sc->generated++;
		sc->next_ns += exponential(&sc->rng) * sc->period_ns;
	}
	return sc->ring[index & sc->mask];
}

/* Send time of request @index of a batch: scheduled (rate) or @t0, the batch's own. */
static uint64_t batch_stamp(struct client *cl, uint64_t t0, bool rate, uint64_t index)
{
	return rate ? scheduled(cl, index) : t0;
}

static void prepare_batch(struct client *cl, unsigned int count, uint64_t t0, bool rate,
			  uint64_t index)
{
	unsigned int i;

	for (i = 0; i < count; i++)
		req_stamp(cl->tx + (size_t)i * cl->o->size, cl->flags, cl->next_seq + i,
			      batch_stamp(cl, t0, rate, index + i));
}

static void commit_batch(struct client *cl, unsigned int sent, uint64_t t0, bool rate,
			 uint64_t index, uint64_t sent_at)
{
	unsigned int i;
	uint64_t stamp;

	for (i = 0; i < sent; i++) {
		stamp = batch_stamp(cl, t0, rate, index + i);
		req_commit_sent(cl, stamp, sent_at);
		if (!rate || !cl->recording || sent_at <= stamp)
			continue;
		cl->sched.lag_sum_ns += (double)(sent_at - stamp);
		if (sent_at - stamp > cl->sched.lag_max_ns)
			cl->sched.lag_max_ns = sent_at - stamp;
	}
}

static int drain_nonblocking(struct client *cl, uint64_t *now)
{
	int n, rounds = 0;

	do {
		n = io_receive(cl, false, now);
	} while (n == (int)cl->o->batch && ++rounds < 64);
	return n < 0 ? -1 : 0;
}

/*
 * Requests @index..due-1 are scheduled at or before @now (or the phase's last instant);
 * at most a batch is looked at, which is all one send takes.
 */
static uint64_t rate_due(struct client *cl, uint64_t index, uint64_t now, uint64_t end)
{
	uint64_t last = now < end ? now : end - 1, due = index;

	while (due < index + cl->o->batch && scheduled(cl, due) <= last)
		due++;
	return due;
}

/* When the next request is due: at once if behind, else at its scheduled time. */
static uint64_t rate_next(struct client *cl, uint64_t index, uint64_t due, int sent,
			  uint64_t now, uint64_t end)
{
	uint64_t next;

	if (index < due)
		next = sent ? now : now + RATE_BACKOFF_NS;	/* behind; socket buffer full */
	else
		next = scheduled(cl, index);
	if (req_next_expiry(cl) < next)
		next = req_next_expiry(cl);
	return next < end ? next : end;
}

/*
 * How many requests were due before the phase's @end (at most @max): those sent
 * (@index of them, all due) and those a client that fell behind never sent.
 */
static void count_due(struct client *cl, uint64_t index, uint64_t end, uint64_t max)
{
	struct schedule *sc = &cl->sched;
	uint64_t due = index, walked = 0, last;

	if (!sc->poisson) {
		due = (uint64_t)((double)(end - sc->t0) / sc->period_ns);
		if (due < index)
			due = index;
		while (due > index && scheduled(cl, due - 1) >= end)
			due--;
	}
	while (walked < DUE_WALK_MAX && scheduled(cl, due) < end) {
		due++;
		walked++;
	}
	last = scheduled(cl, due);
	if (last < end) {
		due += (uint64_t)((double)(end - last) / sc->period_ns);
		sc->due_estimated = true;
	}
	sc->due = max && due > max ? max : due;
}

static int run_rate(struct client *cl, uint64_t t0, uint64_t end, uint64_t max)
{
	uint64_t index = 0, now = t0, due, next, sent_at;
	int sent, readable = 0;
	unsigned int count;

	start_schedule(cl, t0, 1e9 / cl->o->rate_rps);

	while (!phase_over(cl, now, end, max)) {
		/*
		 * Replies first, and only when ppoll said so (or when behind), to spare empty
		 * recvmmsg calls.  They are stamped before any send: a send on loopback runs the
		 * receiving path inline (an in-kernel server's whole reply), which would count
		 * as their latency.
		 */
		if (readable && drain_nonblocking(cl, &now) < 0)
			return -1;
		now = now_ns();
		due = rate_due(cl, index, now, end);
		if (max && due > max)
			due = max;
		count = due > index ? (unsigned int)(due - index) : 0;
		sent = 0;
		if (count) {
			prepare_batch(cl, count, t0, true, index);
			sent_at = now_ns();
			sent = io_send_batch(cl, count);
			if (sent < 0)
				return -1;
			commit_batch(cl, (unsigned int)sent, t0, true, index, sent_at);
			index += (uint64_t)sent;
		}
		if (count && !sent && cl->refused) {
			if (io_backoff(cl, RATE_BACKOFF_NS) < 0)
				return -1;
			readable = 1;
			now = now_ns();
			continue;
		}
		now = now_ns();
		req_expire(cl, now);
		next = rate_next(cl, index, due, sent, now, end);
		readable = next > now ? io_wait_socket(cl, next, count && !sent) : 1;
		if (readable < 0)
			return -1;
		now = now_ns();
	}
	if (cl->recording)
		count_due(cl, index, end, max);
	return 0;
}

static int run_flood(struct client *cl, uint64_t end, uint64_t max)
{
	uint64_t now = now_ns(), left;
	unsigned int count;
	int sent;

	while (!phase_over(cl, now, end, max)) {
		left = max ? max - cl->c.requests : UINT64_MAX;
		count = left < cl->o->batch ? (unsigned int)left : cl->o->batch;
		prepare_batch(cl, count, now, false, 0);
		sent = io_send_batch(cl, count);
		if (sent < 0)
			return -1;
		commit_batch(cl, (unsigned int)sent, now, false, 0, now);
		if (!sent && cl->refused && io_backoff(cl, FLOOD_BACKOFF_NS) < 0)
			return -1;
		if (!sent && !cl->refused && io_wait_socket(cl, now + 1000000, true) < 0)
			return -1;
		if (drain_nonblocking(cl, &now) < 0)
			return -1;
		req_expire(cl, now);
	}
	return 0;
}

/* Waits up to --timeout for the replies still due; what does not come is a timeout. */
static int drain(struct client *cl)
{
	uint64_t deadline = now_ns() + cl->timeout_ns, now;

	while (cl->pending) {
		if (io_wait_socket(cl, deadline, false) < 0)
			return -1;
		if (drain_nonblocking(cl, &now) < 0)
			return -1;
		req_expire(cl, now);
		if (now >= deadline)
			break;
	}
	req_expire(cl, UINT64_MAX - cl->timeout_ns);
	return 0;
}

/* ---- requests shorter than the header: pingpong, one in flight, matched by order ---- */

static int short_flush(struct client *cl)
{
	ssize_t n;
	int i;

	/* Replies that come after their timeout must not be taken for the next one. */
	for (i = 0; i < 4096; i++) {
		n = recv(cl->fd, cl->rx, RECV_BUF_SIZE, MSG_DONTWAIT);
		if (n >= 0) {
			cl->c.stale++;
			continue;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		if (errno != EINTR && errno != ECONNREFUSED) {
			perror("recv");
			return -1;
		}
	}
	return 0;
}

static bool short_matches(const struct client *cl, size_t len)
{
	unsigned int size = cl->o->size;

	return len == size && memcmp(cl->rx, HELLO_REPLY, HELLO_REPLY_LEN) == 0 &&
	       memcmp(cl->rx + HELLO_REPLY_LEN, cl->tx + HELLO_REPLY_LEN,
		      size - HELLO_REPLY_LEN) == 0;
}

/* A reply for an earlier request (its seq, when the size holds it, is lower). */
static bool short_is_stale(const struct client *cl, size_t len)
{
	return len == cl->o->size && len >= 16 &&
	       memcmp(cl->rx, HELLO_REPLY, HELLO_REPLY_LEN) == 0 &&
	       get_be64(cl->rx + 8) < get_be64(cl->tx + 8);
}

static int short_exchange(struct client *cl)
{
	uint64_t sent_at, deadline, now;
	uint8_t full[HELLO_HEADER_SIZE];
	ssize_t n;

	req_fill_template(full, HELLO_HEADER_SIZE);
	sent_at = now_ns();
	req_stamp(full, cl->flags, cl->next_seq, sent_at);
	memcpy(cl->tx, full, cl->o->size);
	cl->c.send_calls++;
	if (send(cl->fd, cl->tx, cl->o->size, 0) < 0) {
		if (errno == EINTR)
			return 0;
		if (io_send_error(cl, "send") < 0)
			return -1;
		return io_backoff(cl, PINGPONG_BACKOFF_NS);
	}
	req_record_sent(cl, cl->next_seq, sent_at);
	cl->next_seq++;
	cl->c.requests++;
	deadline = sent_at + cl->timeout_ns;
	for (;;) {
		n = recv(cl->fd, cl->rx, RECV_BUF_SIZE,
			 cl->o->wait == WAIT_SPIN ? MSG_DONTWAIT : 0);
		now = now_ns();
		if (n >= 0 && short_matches(cl, (size_t)n)) {
			cl->c.replies++;
			if (cl->recording)
				req_record_latency(cl, cl->next_seq - 1, now - sent_at);
			return 0;
		}
		if (n >= 0 && short_is_stale(cl, (size_t)n))
			cl->c.stale++;
		else if (n >= 0)
			cl->c.corrupt++;
		else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			 errno != ECONNREFUSED) {
			perror("recv");
			return -1;
		}
		if (now >= deadline)
			break;
	}
	req_record_timeout(cl, cl->next_seq - 1);
	return short_flush(cl);
}

static int run_short(struct client *cl, uint64_t end, uint64_t max)
{
	while (!phase_over(cl, now_ns(), end, max))
		if (short_exchange(cl) < 0)
			return -1;
	return 0;
}

/* ---- phases ------------------------------------------------------------------- */

static int run_phase(struct client *cl, uint64_t duration_ns, uint64_t max)
{
	uint64_t t0 = now_ns(), end = t0 + duration_ns;

	cl->phase_first_seq = cl->next_seq;
	cl->oldest = cl->next_seq;
	cl->highest = 0;
	if (cl->recording)
		ordered_reset(&cl->ord, t0);
	if (cl->o->size < HELLO_HEADER_SIZE)
		return run_short(cl, end, max);
	switch (cl->o->mode) {
	case MODE_PINGPONG:
		return run_pingpong(cl, end, max);
	case MODE_RATE:
		return run_rate(cl, t0, end, max);
	case MODE_FLOOD:
		return run_flood(cl, end, max);
	}
	return -1;
}

static void reset_phase(struct client *cl)
{
	memset(&cl->c, 0, sizeof(cl->c));
	cl->pending = 0;
	hist_reset(&cl->lat, cl->o->seed);
	hist_reset(&cl->sent_lat, cl->o->seed);
}

int mode_warmup(struct client *cl)
{
	if (cl->o->warmup_s <= 0)
		return 0;
	cl->flags = HELLO_FLAG_WARMUP;
	cl->recording = false;
	if (run_phase(cl, secs_to_ns(cl->o->warmup_s), 0) < 0 || drain(cl) < 0)
		return -1;
	cl->flags = 0;
	return 0;
}

int mode_measure(struct client *cl)
{
	uint64_t t0;

	reset_phase(cl);
	cl->recording = true;
	getrusage(RUSAGE_SELF, &cl->ru0);
	cpustat_read(cl->o->cpu, &cl->cpu0);
	t0 = now_ns();
	if (run_phase(cl, secs_to_ns(cl->o->duration_s), cl->o->max_requests) < 0)
		return -1;
	cl->measure_ns = now_ns() - t0;
	cpustat_read(cl->o->cpu, &cl->cpu1);
	cl->window_replies = cl->c.replies;
	if (drain(cl) < 0)
		return -1;
	getrusage(RUSAGE_SELF, &cl->ru1);
	return 0;
}
