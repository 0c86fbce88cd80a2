/* SPDX-License-Identifier: MIT */
/*
 * hello-client: the ordered sample stream of the measured phase.  Beside the
 * reservoir (which forgets the order), it keeps (send time, latency) pairs of
 * every stride-th request, in send order: request i of the phase is kept when
 * i is a multiple of the stride.  When --ordered-cap entries are full the
 * stride doubles and every other entry goes, so the kept requests stay evenly
 * spaced and memory stays bounded whatever the duration or rate.  While the
 * stride is 1 every request is kept, so the send times give the actual gaps
 * between sends.
 */
#ifndef HC_ORDERED_H
#define HC_ORDERED_H

#include <stdint.h>

#define ORDERED_PENDING		(-1)	/* latency of a request not yet resolved */

struct ordered {
	int64_t *send_ns;		/* actual send, after the phase's start */
	int64_t *latency_ns;		/* as in the latency record; ORDERED_PENDING */
	uint64_t cap;
	uint64_t stride;
	uint64_t count;			/* entries 0..count-1 are in use */
	uint64_t seen;			/* requests of the phase offered to the stream */
	uint64_t t0;			/* the phase's start */
};

void ordered_reset(struct ordered *od, uint64_t t0);

/* Request @index of the phase went out at @sent. */
void ordered_sent(struct ordered *od, uint64_t index, uint64_t sent);

/* Request @index of the phase is resolved: its latency @ns (or the timeout). */
void ordered_done(struct ordered *od, uint64_t index, uint64_t ns);

#endif /* HC_ORDERED_H */
