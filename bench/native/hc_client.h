/* SPDX-License-Identifier: MIT */
/*
 * hello-client: the state of one client, shared by its parts: the requests in
 * flight, the counts, the latency records and the batch buffers.
 */
#ifndef HC_CLIENT_H
#define HC_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "hc_cpustat.h"
#include "hc_histogram.h"
#include "hc_options.h"
#include "hc_ordered.h"

#define RECV_BUF_SIZE		2048

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
	/* The measured phase: what was due, and how late the sends went out. */
	uint64_t due;			/* requests due before the phase's end */
	bool due_estimated;		/* Poisson, far behind: the rest by the mean rate */
	double lag_sum_ns;		/* actual send - scheduled send, summed */
	uint64_t lag_max_ns;
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
	struct ordered ord;		/* (send time, latency) in send order, thinned */
	struct schedule sched;
	uint8_t *tx;			/* batch request buffers */
	uint8_t *rx;			/* batch receive buffers */
	struct mmsghdr *txm;
	struct mmsghdr *rxm;
	struct iovec *txv;
	struct iovec *rxv;
	struct rusage ru0;
	struct rusage ru1;
	struct cpu_ticks cpu0;		/* the pinned CPU at the window's start */
	struct cpu_ticks cpu1;		/* ... and at its end, before the drain */
	uint64_t measure_ns;
	uint64_t window_replies;	/* replies received before the window closed */
};

#endif /* HC_CLIENT_H */
