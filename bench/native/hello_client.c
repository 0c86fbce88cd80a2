// SPDX-License-Identifier: MIT
/*
 * hello-client: the measuring end of hellobench.  Sends HELLO requests to one server
 * and measures what comes back; Python (bench/driver/client.py) only orchestrates.
 *
 * Modes:
 *   pingpong  closed loop, --outstanding requests in flight, per-request RTT;
 *             blocking recv (as sockperf's default)
 *   rate      open loop at --rate requests/s; latency counts from the *scheduled* send
 *             time, so falling behind shows as latency (no coordinated omission);
 *             sleeps in ppoll() between sends; reads what ppoll woke it for before it
 *             sends what is due.  Also reported: the latency from the actual send
 *             (uncorrected, as wrk2 does).  --arrivals uniform (even spacing) or poisson
 *             (exponential gaps of the same mean, drawn from --seed)
 *   flood     as fast as possible, sendmmsg/recvmmsg batches of --batch
 *
 * How the client waits (--wait): block (the default) sleeps in the kernel as above;
 * spin never sleeps: every receive is non-blocking (MSG_DONTWAIT) and retried until a
 * reply comes or the clock says the timeout (or the next send) is due, ppoll() is called
 * with a zero timeout only, and the backoff after a refused send watches the clock.  Same
 * deadlines, same counts; the client's CPU stays busy and it is never woken.
 * --busy-poll is --wait=spin, for pingpong only.
 *
 * A send refused by the kernel (ECONNREFUSED, ENOBUFS) is followed by a sleep (20 us;
 * 1 ms in flood): a UDP socket reports POLLOUT all the same, so polling would spin.
 * A full socket buffer (EAGAIN) waits for POLLOUT.
 *
 * Phases, driven over stdin/stdout unless --no-handshake:
 *   warmup (requests flagged HELLO_FLAG_WARMUP, not recorded) -> "READY" -> wait for
 *   "GO" -> measure (--duration or --max-requests, whichever first) -> drain replies
 *   for up to --timeout -> "DONE" -> wait for "EXIT" or EOF -> write results.
 *
 * Memory is bounded whatever the duration or rate: latencies go into a fixed-size
 * log-linear histogram bucketed exactly like HdrHistogram (1 ns .. 60 s, 3 significant
 * digits) plus a reservoir sample (Algorithm R) of raw values; in-flight requests live
 * in a ring indexed by sequence number.
 *
 * Counts: a request unanswered after --timeout is a timeout (pingpong replaces it); a
 * reply that still comes later counts as a (late) reply, so lost = requests - replies is
 * what never came back.  Every request of the measured phase is in the latency record
 * once: at its RTT, or at the timeout when it timed out (latency_ns.timeouts of them), so
 * the tail is not cut off.  throughput_rps counts the replies received within the
 * measured window; those collected in the drain after it are counts.drained.
 *
 * Every reply is checked byte for byte (else corrupt); its seq finds duplicates and
 * reordering.  Sizes below 24 bytes have no room for the header:
 * pingpong with one request in flight only, matched by order; after a timeout the replies
 * already queued are flushed, yet below 16 bytes (no seq bytes) a reply arriving later
 * still could be taken for the next one.
 *
 * Exit status: 0 success, 1 runtime failure, 2 bad arguments.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
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

#include "hello_proto.h"

#define NSEC_PER_SEC		1000000000ull
#define RECV_BUF_SIZE		2048
#define MAX_BATCH		1024
#define MAX_OUTSTANDING		65536
#define MAX_SAMPLE_CAP		(16u << 20)
#define MAX_DURATION_S		86400.0
#define MAX_RATE		1e9
#define MAX_TICK_NS		20000000ull
#define RING_MIN		1024ull
#define RING_MAX		(1ull << 20)
#define SOCKET_BUF_BYTES	(4 << 20)
/* Sleeps after a send the kernel refused (ECONNREFUSED, ENOBUFS): polling would spin. */
#define RATE_BACKOFF_NS		20000ull
#define FLOOD_BACKOFF_NS	1000000ull
#define PINGPONG_BACKOFF_NS	20000ull

/* HdrHistogram layout for lowest 1, highest 60e9, 3 significant digits. */
#define HIST_SUB_BITS		11
#define HIST_SUB_COUNT		(1u << HIST_SUB_BITS)
#define HIST_HALF_BITS		(HIST_SUB_BITS - 1)
#define HIST_HALF_COUNT		(1u << HIST_HALF_BITS)
#define HIST_BUCKETS		26
#define HIST_LEN		((HIST_BUCKETS + 1) * HIST_HALF_COUNT)
#define HIST_HIGHEST		60000000000ull

enum mode { MODE_PINGPONG, MODE_RATE, MODE_FLOOD };

static const char *const mode_names[] = { "pingpong", "rate", "flood" };

enum wait { WAIT_BLOCK, WAIT_SPIN };

/* How rate mode schedules its requests: evenly spaced, or a Poisson process. */
enum arrivals { ARRIVALS_UNIFORM, ARRIVALS_POISSON };

static const char *const arrivals_names[] = { "uniform", "poisson" };

static const char *const wait_names[] = { "block", "spin" };

struct options {
	enum mode mode;
	const char *addr;
	int port;
	unsigned int size;
	double duration_s;
	double warmup_s;
	double timeout_s;
	double rate_rps;
	uint64_t max_requests;		/* 0: no limit */
	unsigned int outstanding;
	unsigned int batch;
	int cpu;			/* -1: not pinned */
	uint64_t seed;
	uint64_t sample_cap;
	enum wait wait;
	enum arrivals arrivals;
	bool busy_poll;			/* --busy-poll given (sets wait to spin) */
	bool wait_given;
	bool handshake;
	const char *out;
	const char *samples_out;
};

enum slot_state { SLOT_FREE, SLOT_PENDING, SLOT_EXPIRED, SLOT_ANSWERED };

/* One request in flight, at ring[seq & ring_mask]. */
struct slot {
	uint64_t seq;
	uint64_t stamp;			/* send time, or scheduled time in rate mode */
	uint64_t sent;			/* when it was actually sent */
	uint16_t flags;
	uint8_t state;
};

struct counts {
	uint64_t requests;
	uint64_t replies;		/* valid first replies, late ones included */
	uint64_t duplicates;
	uint64_t reordered;
	uint64_t corrupt;
	uint64_t timeouts;		/* requests whose reply missed --timeout */
	uint64_t late;			/* replies that came after their timeout */
	uint64_t stale;			/* replies to requests no longer tracked */
	uint64_t send_errors;		/* sends refused (ICMP errors, full buffers) */
	uint64_t send_calls;		/* send() and sendmmsg() calls */
	uint64_t backoffs;		/* sleeps after a refused send */
};

struct latency {
	uint64_t *hist;
	uint64_t min;
	uint64_t max;
	unsigned __int128 sum;
	uint64_t count;
	uint64_t timeouts;		/* of count: requests recorded at the timeout */
	int64_t *samples;
	uint64_t cap;
	uint64_t seen;
	uint64_t rng;
};

/*
 * Rate mode's schedule: request @i is due at t0 + i × period (uniform), or at the i-th
 * arrival of a Poisson process of the same mean rate, drawn from --seed.  Poisson stamps
 * are drawn in order and kept in a ring: a sender needs those of the next batch only.
 */
struct schedule {
	uint64_t t0;
	double period_ns;
	bool poisson;
	uint64_t rng;
	uint64_t *ring;
	uint64_t mask;
	uint64_t generated;		/* requests 0..generated-1 have their stamps */
	double next_ns;			/* stamp of request @generated, after t0 */
};

struct client {
	const struct options *o;
	int fd;
	struct slot *ring;
	uint64_t ring_mask;
	uint64_t next_seq;
	uint64_t oldest;		/* lowest seq that may still be pending */
	uint64_t pending;
	uint64_t highest;		/* highest seq answered in this phase */
	uint64_t phase_first_seq;
	uint64_t timeout_ns;
	uint16_t flags;
	bool recording;
	bool refused;			/* the last failed send was refused, not EAGAIN */
	struct counts c;
	struct latency lat;
	struct latency sent_lat;	/* rate mode: from the actual send (uncorrected) */
	struct schedule sched;
	uint8_t *tx;			/* batch request buffers */
	uint8_t *rx;			/* batch receive buffers */
	struct mmsghdr *txm;
	struct mmsghdr *rxm;
	struct iovec *txv;
	struct iovec *rxv;
	struct rusage ru0;
	struct rusage ru1;
	uint64_t measure_ns;
	uint64_t window_replies;	/* replies received before the window closed */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

static uint64_t secs_to_ns(double s)
{
	return (uint64_t)(s * 1e9 + 0.5);
}

static struct timespec ns_to_ts(uint64_t ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(ns / NSEC_PER_SEC),
		.tv_nsec = (long)(ns % NSEC_PER_SEC),
	};

	return ts;
}

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* ---- histogram and reservoir ------------------------------------------------ */

static unsigned int hist_index(uint64_t v)
{
	int bucket, sub;

	if (v > HIST_HIGHEST)
		v = HIST_HIGHEST;
	bucket = 64 - __builtin_clzll(v | (HIST_SUB_COUNT - 1)) - HIST_SUB_BITS;
	sub = (int)(v >> bucket);
	return (unsigned int)(((bucket + 1) << HIST_HALF_BITS) + sub - (int)HIST_HALF_COUNT);
}

static uint64_t hist_value(unsigned int index)
{
	int bucket = (int)(index >> HIST_HALF_BITS) - 1;
	uint64_t sub = (index & (HIST_HALF_COUNT - 1)) + HIST_HALF_COUNT;

	if (bucket < 0) {
		sub -= HIST_HALF_COUNT;
		bucket = 0;
	}
	return sub << bucket;
}

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void record_latency(struct latency *l, uint64_t ns)
{
	uint64_t j;

	l->hist[hist_index(ns)]++;
	if (ns < l->min)
		l->min = ns;
	if (ns > l->max)
		l->max = ns;
	l->sum += ns;
	l->count++;
	if (!l->cap)
		return;
	l->seen++;
	if (l->seen <= l->cap) {
		l->samples[l->seen - 1] = (int64_t)ns;
		return;
	}
	j = (uint64_t)(((unsigned __int128)splitmix64(&l->rng) * l->seen) >> 64);
	if (j < l->cap)
		l->samples[j] = (int64_t)ns;
}

static void reset_latency(struct latency *l, uint64_t seed)
{
	memset(l->hist, 0, HIST_LEN * sizeof(*l->hist));
	l->min = UINT64_MAX;
	l->max = 0;
	l->sum = 0;
	l->count = 0;
	l->timeouts = 0;
	l->seen = 0;
	l->rng = seed;
}

/* ---- requests and replies --------------------------------------------------- */

/*
 * A request given up on stays in the latency record, at the timeout (its RTT is at
 * least that, or unknown): leaving it out would cut the tail off the histogram.
 */
static void record_timeout(struct client *cl)
{
	cl->c.timeouts++;
	if (!cl->recording)
		return;
	record_latency(&cl->lat, cl->timeout_ns);
	cl->lat.timeouts++;
	if (cl->o->mode == MODE_RATE) {
		record_latency(&cl->sent_lat, cl->timeout_ns);
		cl->sent_lat.timeouts++;
	}
}

/* A whole request with its header zeroed; the pattern fills every byte from 24 on. */
static void fill_template(uint8_t *buf, unsigned int size)
{
	unsigned int i;

	memset(buf, 0, size);
	memcpy(buf, "HELLO ", HELLO_REPLY_LEN);
	for (i = HELLO_HEADER_SIZE; i < size; i++)
		buf[i] = (uint8_t)(i % 251);
}

static void stamp_request(uint8_t *buf, uint16_t flags, uint64_t seq, uint64_t stamp)
{
	put_be16(buf + 6, flags);
	put_be64(buf + 8, seq);
	put_be64(buf + 16, stamp);
}

static void commit_sent(struct client *cl, uint64_t stamp, uint64_t sent)
{
	uint64_t seq = cl->next_seq++;
	struct slot *s = &cl->ring[seq & cl->ring_mask];

	if (s->state == SLOT_PENDING) {
		/* The ring wrapped over a request still unanswered: give it up. */
		cl->pending--;
		record_timeout(cl);
	}
	s->seq = seq;
	s->stamp = stamp;
	s->sent = sent;
	s->flags = cl->flags;
	s->state = SLOT_PENDING;
	cl->pending++;
	cl->c.requests++;
}

static bool reply_looks_valid(const struct client *cl, const uint8_t *buf, size_t len)
{
	unsigned int size = cl->o->size;

	if (len != size || memcmp(buf, HELLO_REPLY, HELLO_REPLY_LEN) != 0)
		return false;
	/* cl->tx holds the template: its padding is what every reply must echo. */
	return memcmp(buf + HELLO_HEADER_SIZE, cl->tx + HELLO_HEADER_SIZE,
		      size - HELLO_HEADER_SIZE) == 0;
}

static void answer_slot(struct client *cl, struct slot *s, uint64_t now)
{
	bool late = s->state == SLOT_EXPIRED;

	if (s->seq < cl->highest)
		cl->c.reordered++;
	else
		cl->highest = s->seq;
	if (late)
		cl->c.late++;
	else
		cl->pending--;
	s->state = SLOT_ANSWERED;
	cl->c.replies++;
	/* A late reply is in the record already, at the timeout. */
	if (cl->recording && !late) {
		record_latency(&cl->lat, now - s->stamp);
		if (cl->o->mode == MODE_RATE)
			record_latency(&cl->sent_lat, now - s->sent);
	}
}

static void on_reply(struct client *cl, const uint8_t *buf, size_t len, uint64_t now)
{
	uint16_t flags;
	uint64_t seq, stamp;
	struct slot *s;

	if (!reply_looks_valid(cl, buf, len)) {
		cl->c.corrupt++;
		return;
	}
	flags = get_be16(buf + 6);
	seq = get_be64(buf + 8);
	stamp = get_be64(buf + 16);
	if (seq == 0 || seq >= cl->next_seq) {
		cl->c.corrupt++;	/* never sent */
		return;
	}
	s = &cl->ring[seq & cl->ring_mask];
	if (s->seq != seq || s->state == SLOT_FREE || seq < cl->phase_first_seq) {
		if (!(flags & HELLO_FLAG_WARMUP))
			cl->c.stale++;
		return;
	}
	if (s->flags != flags || s->stamp != stamp) {
		cl->c.corrupt++;
		return;
	}
	if (s->state == SLOT_ANSWERED)
		cl->c.duplicates++;
	else
		answer_slot(cl, s, now);
}

/* Gives up on requests older than the timeout; keeps cl->oldest at the first pending one. */
static void expire(struct client *cl, uint64_t now)
{
	struct slot *s;

	while (cl->oldest < cl->next_seq) {
		s = &cl->ring[cl->oldest & cl->ring_mask];
		if (s->seq == cl->oldest && s->state == SLOT_PENDING) {
			if (now < s->stamp + cl->timeout_ns)
				return;
			s->state = SLOT_EXPIRED;
			cl->pending--;
			record_timeout(cl);
		}
		cl->oldest++;
	}
}

static uint64_t next_expiry(const struct client *cl)
{
	const struct slot *s;

	if (!cl->pending || cl->oldest >= cl->next_seq)
		return UINT64_MAX;
	s = &cl->ring[cl->oldest & cl->ring_mask];
	return s->stamp + cl->timeout_ns;
}

/* ---- socket I/O ------------------------------------------------------------- */

/*
 * A send that failed: a full socket buffer (EAGAIN: wait for POLLOUT) or a refusal
 * (ECONNREFUSED, ENOBUFS: POLLOUT is no use, the caller backs off) counts 0; else -1.
 */
static int send_error(struct client *cl, const char *what)
{
	if (errno != ECONNREFUSED && errno != ENOBUFS && errno != EAGAIN) {
		perror(what);
		return -1;
	}
	cl->refused = errno != EAGAIN;
	cl->c.send_errors++;
	return 0;
}

static int send_one(struct client *cl, uint64_t stamp)
{
	ssize_t n;

	stamp_request(cl->tx, cl->flags, cl->next_seq, stamp);
	do {
		cl->c.send_calls++;
		n = send(cl->fd, cl->tx, cl->o->size, 0);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return send_error(cl, "send");
	commit_sent(cl, stamp, stamp);
	return 1;
}

/* Sends up to @count prepared requests (tx buffers 0..count-1); returns how many went. */
static int send_batch(struct client *cl, unsigned int count)
{
	int n;

	do {
		cl->c.send_calls++;
		n = sendmmsg(cl->fd, cl->txm, count, MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? send_error(cl, "sendmmsg") : n;
}

/*
 * Sleeps @ns after a refused send, replies or not: a socket would wake a poll at once.
 * Spinning, it watches the clock for as long instead.
 */
static int backoff(struct client *cl, uint64_t ns)
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
static int receive(struct client *cl, bool wait, uint64_t *now)
{
	unsigned int i;
	int n;

	n = recvmmsg(cl->fd, cl->rxm, cl->o->batch, wait ? MSG_WAITFORONE : MSG_DONTWAIT, NULL);
	*now = now_ns();
	if (n < 0)
		return receive_error(cl, "recvmmsg");
	for (i = 0; i < (unsigned int)n; i++)
		on_reply(cl, cl->rx + (size_t)i * RECV_BUF_SIZE, cl->rxm[i].msg_len, *now);
	return n;
}

/* One blocking recv, the cheapest path when a single request is in flight. */
static int receive_one(struct client *cl, int flags, uint64_t *now)
{
	ssize_t n = recv(cl->fd, cl->rx, RECV_BUF_SIZE, flags);

	*now = now_ns();
	if (n < 0)
		return receive_error(cl, "recv");
	on_reply(cl, cl->rx, (size_t)n, *now);
	return 1;
}

/*
 * Sleeps until the socket is readable (or writable, with @out) or @until passes; with
 * --wait=spin, polls it with a zero timeout until then instead, never sleeping.
 * Returns 1 when there may be something to read, 0 when not, -1 on error.
 */
static int wait_socket(struct client *cl, uint64_t until, bool out)
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

/* ---- modes ------------------------------------------------------------------ */

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
		err = send_one(cl, stamp);
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
		return cl->o->outstanding == 1 ? receive_one(cl, MSG_DONTWAIT, now) :
						 receive(cl, false, now);
	/* Blocks, bounded by SO_RCVTIMEO so that timeouts and the phase end are seen. */
	return cl->o->outstanding == 1 ? receive_one(cl, 0, now) : receive(cl, true, now);
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
			if (backoff(cl, PINGPONG_BACKOFF_NS) < 0)
				return -1;
			continue;
		}
		if (pingpong_wait(cl, &now) < 0)
			return -1;
		expire(cl, now);
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
		stamp_request(cl->tx + (size_t)i * cl->o->size, cl->flags, cl->next_seq + i,
			      batch_stamp(cl, t0, rate, index + i));
}

static void commit_batch(struct client *cl, unsigned int sent, uint64_t t0, bool rate,
			 uint64_t index, uint64_t sent_at)
{
	unsigned int i;

	for (i = 0; i < sent; i++)
		commit_sent(cl, batch_stamp(cl, t0, rate, index + i), sent_at);
}

static int drain_nonblocking(struct client *cl, uint64_t *now)
{
	int n, rounds = 0;

	do {
		n = receive(cl, false, now);
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
	if (next_expiry(cl) < next)
		next = next_expiry(cl);
	return next < end ? next : end;
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
			sent = send_batch(cl, count);
			if (sent < 0)
				return -1;
			commit_batch(cl, (unsigned int)sent, t0, true, index, sent_at);
			index += (uint64_t)sent;
		}
		if (count && !sent && cl->refused) {
			if (backoff(cl, RATE_BACKOFF_NS) < 0)
				return -1;
			readable = 1;
			now = now_ns();
			continue;
		}
		now = now_ns();
		expire(cl, now);
		next = rate_next(cl, index, due, sent, now, end);
		readable = next > now ? wait_socket(cl, next, count && !sent) : 1;
		if (readable < 0)
			return -1;
		now = now_ns();
	}
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
		sent = send_batch(cl, count);
		if (sent < 0)
			return -1;
		commit_batch(cl, (unsigned int)sent, now, false, 0, now);
		if (!sent && cl->refused && backoff(cl, FLOOD_BACKOFF_NS) < 0)
			return -1;
		if (!sent && !cl->refused && wait_socket(cl, now + 1000000, true) < 0)
			return -1;
		if (drain_nonblocking(cl, &now) < 0)
			return -1;
		expire(cl, now);
	}
	return 0;
}

/* Waits up to --timeout for the replies still due; what does not come is a timeout. */
static int drain(struct client *cl)
{
	uint64_t deadline = now_ns() + cl->timeout_ns, now;

	while (cl->pending) {
		if (wait_socket(cl, deadline, false) < 0)
			return -1;
		if (drain_nonblocking(cl, &now) < 0)
			return -1;
		expire(cl, now);
		if (now >= deadline)
			break;
	}
	expire(cl, UINT64_MAX - cl->timeout_ns);
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

	fill_template(full, HELLO_HEADER_SIZE);
	sent_at = now_ns();
	stamp_request(full, cl->flags, cl->next_seq, sent_at);
	memcpy(cl->tx, full, cl->o->size);
	cl->c.send_calls++;
	if (send(cl->fd, cl->tx, cl->o->size, 0) < 0) {
		if (errno == EINTR)
			return 0;
		if (send_error(cl, "send") < 0)
			return -1;
		return backoff(cl, PINGPONG_BACKOFF_NS);
	}
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
				record_latency(&cl->lat, now - sent_at);
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
	record_timeout(cl);
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
	reset_latency(&cl->lat, cl->o->seed);
	reset_latency(&cl->sent_lat, cl->o->seed);
}

static int warmup(struct client *cl)
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

static int measure(struct client *cl)
{
	uint64_t t0;

	reset_phase(cl);
	cl->recording = true;
	getrusage(RUSAGE_SELF, &cl->ru0);
	t0 = now_ns();
	if (run_phase(cl, secs_to_ns(cl->o->duration_s), cl->o->max_requests) < 0)
		return -1;
	cl->measure_ns = now_ns() - t0;
	cl->window_replies = cl->c.replies;
	if (drain(cl) < 0)
		return -1;
	getrusage(RUSAGE_SELF, &cl->ru1);
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

/* ---- results ------------------------------------------------------------------- */

static uint64_t tv_ns(struct timeval tv)
{
	return (uint64_t)tv.tv_sec * NSEC_PER_SEC + (uint64_t)tv.tv_usec * 1000;
}

static int write_samples(const struct client *cl, uint64_t *written)
{
	uint64_t n = cl->lat.seen < cl->lat.cap ? cl->lat.seen : cl->lat.cap, i;
	uint8_t le[8];
	FILE *f;
	int b;

	*written = 0;
	if (!cl->o->samples_out)
		return 0;
	f = fopen(cl->o->samples_out, "wb");
	if (!f)
		goto fail;
	for (i = 0; i < n; i++) {
		for (b = 0; b < 8; b++)
			le[b] = (uint8_t)((uint64_t)cl->lat.samples[i] >> (8 * b));
		if (fwrite(le, 1, sizeof(le), f) != sizeof(le))
			goto fail_close;
	}
	if (fclose(f) != 0)
		goto fail;
	*written = n;
	return 0;

fail_close:
	fclose(f);
fail:
	perror(cl->o->samples_out);
	return -1;
}

static void write_counts(FILE *f, const struct counts *c, uint64_t window_replies)
{
	fprintf(f, "\"counts\": {\"requests\": %llu, \"replies\": %llu, \"lost\": %llu, ",
		(unsigned long long)c->requests, (unsigned long long)c->replies,
		(unsigned long long)(c->requests - c->replies));
	fprintf(f, "\"duplicates\": %llu, \"reordered\": %llu, \"corrupt\": %llu, ",
		(unsigned long long)c->duplicates, (unsigned long long)c->reordered,
		(unsigned long long)c->corrupt);
	fprintf(f, "\"timeouts\": %llu, \"late\": %llu, \"stale\": %llu, \"send_errors\": %llu, ",
		(unsigned long long)c->timeouts, (unsigned long long)c->late,
		(unsigned long long)c->stale, (unsigned long long)c->send_errors);
	fprintf(f, "\"drained\": %llu, \"send_calls\": %llu, \"backoffs\": %llu},\n",
		(unsigned long long)(c->replies - window_replies),
		(unsigned long long)c->send_calls, (unsigned long long)c->backoffs);
}

/* @name's summary, then its histogram under "histogram" + @suffix. */
static void write_latency(FILE *f, const struct latency *l, const char *name,
			  const char *suffix)
{
	unsigned int i;
	bool first = true;

	fprintf(f, "\"%s\": {\"count\": %llu, \"timeouts\": %llu, ", name,
		(unsigned long long)l->count, (unsigned long long)l->timeouts);
	if (l->count)
		fprintf(f, "\"min\": %llu, \"max\": %llu, \"mean\": %.3f},\n",
			(unsigned long long)l->min, (unsigned long long)l->max,
			(double)l->sum / (double)l->count);
	else
		fprintf(f, "\"min\": null, \"max\": null, \"mean\": null},\n");
	fprintf(f, "\"histogram%s\": {\"lowest_ns\": 1, \"highest_ns\": %llu, "
		"\"significant_digits\": 3, \"buckets\": [", suffix, HIST_HIGHEST);
	for (i = 0; i < HIST_LEN; i++) {
		if (!l->hist[i])
			continue;
		fprintf(f, "%s[%llu, %llu]", first ? "" : ", ",
			(unsigned long long)hist_value(i), (unsigned long long)l->hist[i]);
		first = false;
	}
	fprintf(f, "]},\n");
}

static void write_rusage(FILE *f, const struct rusage *a, const struct rusage *b)
{
	fprintf(f, "\"rusage\": {\"utime_ns\": %llu, \"stime_ns\": %llu, ",
		(unsigned long long)(tv_ns(b->ru_utime) - tv_ns(a->ru_utime)),
		(unsigned long long)(tv_ns(b->ru_stime) - tv_ns(a->ru_stime)));
	fprintf(f, "\"voluntary_ctx_switches\": %ld, \"involuntary_ctx_switches\": %ld},\n",
		b->ru_nvcsw - a->ru_nvcsw, b->ru_nivcsw - a->ru_nivcsw);
}

static void write_config(FILE *f, const struct options *o)
{
	fprintf(f, "\"config\": {\"mode\": \"%s\", \"size\": %u, \"duration_s\": %.9g, "
		"\"warmup_s\": %.9g, \"timeout_s\": %.9g, ", mode_names[o->mode], o->size,
		o->duration_s, o->warmup_s, o->timeout_s);
	fprintf(f, "\"rate_rps\": %.9g, \"max_requests\": %llu, \"outstanding\": %u, "
		"\"batch\": %u, \"cpu\": %d, \"busy_poll\": %s, \"wait\": \"%s\", "
		"\"arrivals\": \"%s\", \"seed\": %llu},\n",
		o->rate_rps, (unsigned long long)o->max_requests, o->outstanding, o->batch,
		o->cpu, o->wait == WAIT_SPIN && o->mode == MODE_PINGPONG ? "true" : "false",
		wait_names[o->wait], arrivals_names[o->arrivals], (unsigned long long)o->seed);
}

static int write_results(const struct client *cl)
{
	double secs = (double)cl->measure_ns / 1e9;
	uint64_t nsamples;
	FILE *f = stdout;

	if (write_samples(cl, &nsamples) < 0)
		return -1;
	if (cl->o->out) {
		f = fopen(cl->o->out, "w");
		if (!f) {
			perror(cl->o->out);
			return -1;
		}
	}
	fprintf(f, "{\"schema\": \"hellobench-driver/1\",\n");
	write_config(f, cl->o);
	write_counts(f, &cl->c, cl->window_replies);
	/* Throughput counts the replies of the window only, not those of the drain after it. */
	fprintf(f, "\"duration_s\": %.9f, \"send_rps\": %.3f, \"throughput_rps\": %.3f,\n", secs,
		secs > 0 ? (double)cl->c.requests / secs : 0.0,
		secs > 0 ? (double)cl->window_replies / secs : 0.0);
	write_latency(f, &cl->lat, "latency_ns", "");
	/* Rate mode: also from the actual send, as wrk2's uncorrected figures are. */
	if (cl->o->mode == MODE_RATE)
		write_latency(f, &cl->sent_lat, "latency_uncorrected_ns", "_uncorrected");
	write_rusage(f, &cl->ru0, &cl->ru1);
	fprintf(f, "\"samples\": {\"count\": %llu, \"cap\": %llu, \"seen\": %llu}}\n",
		(unsigned long long)nsamples, (unsigned long long)cl->lat.cap,
		(unsigned long long)cl->lat.seen);
	if (f != stdout ? fclose(f) != 0 : fflush(f) != 0) {
		perror("writing results");
		return -1;
	}
	return 0;
}

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
		fill_template(cl->tx + (size_t)i * size, size);
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
	size_t batch = o->batch;

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
	cl->sched.mask = schedule_ring_size(o) - 1;
	cl->sched.ring = calloc(cl->sched.mask + 1, sizeof(*cl->sched.ring));
	cl->tx = calloc(batch, o->size);
	cl->rx = calloc(batch, RECV_BUF_SIZE);
	cl->txm = calloc(batch, sizeof(*cl->txm));
	cl->rxm = calloc(batch, sizeof(*cl->rxm));
	cl->txv = calloc(batch, sizeof(*cl->txv));
	cl->rxv = calloc(batch, sizeof(*cl->rxv));
	if (!cl->ring || !cl->lat.hist || !cl->lat.samples || !cl->sent_lat.hist ||
	    !cl->sched.ring || !cl->tx || !cl->rx || !cl->txm || !cl->rxm || !cl->txv ||
	    !cl->rxv) {
		fprintf(stderr, "hello-client: out of memory\n");
		return -1;
	}
	setup_buffers(cl);
	reset_latency(&cl->lat, o->seed);
	reset_latency(&cl->sent_lat, o->seed);
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

/* ---- arguments ------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: hello-client --mode pingpong|rate|flood [--addr A] [--port N] [--size B]\n"
		"         [--duration S] [--warmup S] [--max-requests N] [--outstanding K]\n"
		"         [--rate R] [--batch N] [--timeout S] [--cpu C] [--seed N]\n"
		"         [--sample-cap N] [--wait block|spin] [--busy-poll] [--no-handshake]\n"
		"         [--arrivals uniform|poisson]\n"
		"         [--out FILE] [--samples-out FILE]\n");
}

static int bad(const char *what, const char *value)
{
	fprintf(stderr, "hello-client: bad %s '%s'\n", what, value);
	return -1;
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *v)
{
	unsigned long long x;
	char *end;

	if (!*s || *s == '-')
		return -1;
	errno = 0;
	x = strtoull(s, &end, 10);
	if (errno || *end || x < lo || x > hi)
		return -1;
	*v = x;
	return 0;
}

static int parse_real(const char *s, double hi, double *v)
{
	char *end;
	double x;

	errno = 0;
	x = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(x) || x < 0 || x > hi)
		return -1;
	*v = x;
	return 0;
}

static int parse_mode(const char *s, enum mode *m)
{
	unsigned int i;

	for (i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++) {
		if (strcmp(s, mode_names[i]) == 0) {
			*m = (enum mode)i;
			return 0;
		}
	}
	return -1;
}

static int parse_wait(const char *s, enum wait *w)
{
	unsigned int i;

	for (i = 0; i < sizeof(wait_names) / sizeof(wait_names[0]); i++) {
		if (strcmp(s, wait_names[i]) == 0) {
			*w = (enum wait)i;
			return 0;
		}
	}
	return -1;
}

static int parse_arrivals(const char *s, enum arrivals *a)
{
	unsigned int i;

	for (i = 0; i < sizeof(arrivals_names) / sizeof(arrivals_names[0]); i++) {
		if (strcmp(s, arrivals_names[i]) == 0) {
			*a = (enum arrivals)i;
			return 0;
		}
	}
	return -1;
}

static int parse_option(struct options *o, int c, const char *arg)
{
	uint64_t v;

	switch (c) {
	case 'm':
		return parse_mode(arg, &o->mode) ? bad("mode", arg) : 0;
	case 'a':
		o->addr = arg;
		return 0;
	case 'p':
		if (parse_u64(arg, 1, 65535, &v))
			return bad("port", arg);
		o->port = (int)v;
		return 0;
	case 's':
		if (parse_u64(arg, HELLO_MIN_REQUEST, HELLO_MAX_REQUEST, &v))
			return bad("size (6..1472)", arg);
		o->size = (unsigned int)v;
		return 0;
	case 'd':
		return parse_real(arg, MAX_DURATION_S, &o->duration_s) ? bad("duration", arg) : 0;
	case 'w':
		return parse_real(arg, MAX_DURATION_S, &o->warmup_s) ? bad("warmup", arg) : 0;
	case 't':
		return parse_real(arg, MAX_DURATION_S, &o->timeout_s) ? bad("timeout", arg) : 0;
	case 'r':
		return parse_real(arg, MAX_RATE, &o->rate_rps) ? bad("rate", arg) : 0;
	case 'n':
		if (parse_u64(arg, 1, UINT64_MAX, &o->max_requests))
			return bad("max-requests", arg);
		return 0;
	case 'k':
		if (parse_u64(arg, 1, MAX_OUTSTANDING, &v))
			return bad("outstanding (1..65536)", arg);
		o->outstanding = (unsigned int)v;
		return 0;
	case 'b':
		if (parse_u64(arg, 1, MAX_BATCH, &v))
			return bad("batch (1..1024)", arg);
		o->batch = (unsigned int)v;
		return 0;
	case 'c':
		if (parse_u64(arg, 0, CPU_SETSIZE - 1, &v))
			return bad("cpu", arg);
		o->cpu = (int)v;
		return 0;
	case 'S':
		return parse_u64(arg, 0, UINT64_MAX, &o->seed) ? bad("seed", arg) : 0;
	case 'C':
		if (parse_u64(arg, 0, MAX_SAMPLE_CAP, &o->sample_cap))
			return bad("sample-cap", arg);
		return 0;
	case 'W':
		o->wait_given = true;
		return parse_wait(arg, &o->wait) ? bad("wait (block|spin)", arg) : 0;
	case 'B':
		o->busy_poll = true;
		return 0;
	case 'A':
		if (parse_arrivals(arg, &o->arrivals))
			return bad("arrivals (uniform|poisson)", arg);
		return 0;
	case 'N':
		o->handshake = false;
		return 0;
	case 'o':
		o->out = arg;
		return 0;
	case 'O':
		o->samples_out = arg;
		return 0;
	}
	usage(stderr);
	return -1;
}

static int check_options(struct options *o)
{
	const char *why = NULL;

	if (o->duration_s <= 0)
		why = "--duration must be > 0";
	else if (o->timeout_s <= 0)
		why = "--timeout must be > 0";
	else if (o->mode == MODE_RATE && !(o->rate_rps > 0))
		why = "rate mode needs --rate > 0";
	else if (o->size < HELLO_HEADER_SIZE &&
		 (o->mode != MODE_PINGPONG || o->outstanding != 1))
		why = "sizes below 24 bytes (no room for the seq header) allow only "
		      "pingpong with --outstanding 1";
	else if (o->busy_poll && o->mode != MODE_PINGPONG)
		why = "--busy-poll applies to pingpong only";
	else if (o->busy_poll && o->wait == WAIT_BLOCK && o->wait_given)
		why = "--busy-poll spins: it contradicts --wait=block";
	if (o->busy_poll)
		o->wait = WAIT_SPIN;
	if (!why)
		return 0;
	fprintf(stderr, "hello-client: %s\n", why);
	return -1;
}

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option opts[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "addr", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "size", required_argument, NULL, 's' },
		{ "duration", required_argument, NULL, 'd' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "timeout", required_argument, NULL, 't' },
		{ "rate", required_argument, NULL, 'r' },
		{ "max-requests", required_argument, NULL, 'n' },
		{ "outstanding", required_argument, NULL, 'k' },
		{ "batch", required_argument, NULL, 'b' },
		{ "cpu", required_argument, NULL, 'c' },
		{ "seed", required_argument, NULL, 'S' },
		{ "sample-cap", required_argument, NULL, 'C' },
		{ "wait", required_argument, NULL, 'W' },
		{ "busy-poll", no_argument, NULL, 'B' },
		{ "arrivals", required_argument, NULL, 'A' },
		{ "no-handshake", no_argument, NULL, 'N' },
		{ "out", required_argument, NULL, 'o' },
		{ "samples-out", required_argument, NULL, 'O' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*o = (struct options){
		.mode = MODE_PINGPONG, .addr = "127.0.0.1", .port = HELLO_DEFAULT_PORT,
		.size = 64, .duration_s = 1.0, .warmup_s = 0.2, .timeout_s = 0.2,
		.outstanding = 1, .batch = 32, .cpu = -1, .seed = 1, .sample_cap = 10000,
		.handshake = true,
	};
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			exit(0);
		}
		if (parse_option(o, c, optarg) < 0)
			return -1;
	}
	if (optind < argc) {
		fprintf(stderr, "hello-client: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	return check_options(o);
}

/* ---- main ----------------------------------------------------------------------- */

static int run(struct client *cl)
{
	const struct options *o = cl->o;

	if (o->mode == MODE_RATE)
		prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);	/* ppoll wakes on time */
	if (warmup(cl) < 0)
		return -1;
	if (o->handshake && (say("READY") < 0 || await_word("GO", false) < 0))
		return -1;
	if (measure(cl) < 0)
		return -1;
	if (o->handshake && (say("DONE") < 0 || await_word("EXIT", true) < 0))
		return -1;
	return write_results(cl);
}

int main(int argc, char **argv)
{
	struct options o;
	struct client cl;
	int status = 1;

	if (parse_args(argc, argv, &o) < 0)
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
