// SPDX-License-Identifier: MIT
/*
 * hello-client: requests and replies.  Requests in flight live in a ring
 * indexed by sequence number; every reply is checked byte for byte (else
 * corrupt) and its seq finds duplicates and reordering.  A request unanswered
 * after --timeout is a timeout and stays in the latency record at the timeout.
 */
#define _GNU_SOURCE	/* struct mmsghdr in hc_client.h */
#include <string.h>

#include "hc_client.h"
#include "hc_requests.h"
#include "hc_util.h"
#include "hello_proto.h"

/*
 * A request given up on stays in the latency record, at the timeout (its RTT is at
 * least that, or unknown): leaving it out would cut the tail off the histogram.
 */
void req_record_timeout(struct client *cl, uint64_t seq)
{
	cl->c.timeouts++;
	if (!cl->recording)
		return;
	req_record_latency(cl, seq, cl->timeout_ns);
	cl->lat.timeouts++;
	if (cl->o->mode == MODE_RATE) {
		hist_record(&cl->sent_lat, cl->timeout_ns);
		cl->sent_lat.timeouts++;
	}
}

static bool in_phase(const struct client *cl, uint64_t seq)
{
	return cl->recording && seq >= cl->phase_first_seq;
}

void req_record_sent(struct client *cl, uint64_t seq, uint64_t sent)
{
	if (in_phase(cl, seq))
		ordered_sent(&cl->ord, seq - cl->phase_first_seq, sent);
}

void req_record_latency(struct client *cl, uint64_t seq, uint64_t ns)
{
	hist_record(&cl->lat, ns);
	if (in_phase(cl, seq))
		ordered_done(&cl->ord, seq - cl->phase_first_seq, ns);
}

/* A whole request with its header zeroed; the pattern fills every byte from 24 on. */
void req_fill_template(uint8_t *buf, unsigned int size)
{
	unsigned int i;

	memset(buf, 0, size);
	memcpy(buf, "HELLO ", HELLO_REPLY_LEN);
	for (i = HELLO_HEADER_SIZE; i < size; i++)
		buf[i] = (uint8_t)(i % 251);
}

void req_stamp(uint8_t *buf, uint16_t flags, uint64_t seq, uint64_t stamp)
{
	put_be16(buf + 6, flags);
	put_be64(buf + 8, seq);
	put_be64(buf + 16, stamp);
}

void req_commit_sent(struct client *cl, uint64_t stamp, uint64_t sent)
{
	uint64_t seq = cl->next_seq++;
	struct slot *s = &cl->ring[seq & cl->ring_mask];

	if (s->state == SLOT_PENDING) {
		/* The ring wrapped over a request still unanswered: give it up. */
		cl->pending--;
		req_record_timeout(cl, s->seq);
	}
	req_record_sent(cl, seq, sent);
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
		req_record_latency(cl, s->seq, now - s->stamp);
		if (cl->o->mode == MODE_RATE)
			hist_record(&cl->sent_lat, now - s->sent);
	}
}

void req_on_reply(struct client *cl, const uint8_t *buf, size_t len, uint64_t now)
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
void req_expire(struct client *cl, uint64_t now)
{
	struct slot *s;

	while (cl->oldest < cl->next_seq) {
		s = &cl->ring[cl->oldest & cl->ring_mask];
		if (s->seq == cl->oldest && s->state == SLOT_PENDING) {
			if (now < s->stamp + cl->timeout_ns)
				return;
			s->state = SLOT_EXPIRED;
			cl->pending--;
			req_record_timeout(cl, s->seq);
		}
		cl->oldest++;
	}
}

uint64_t req_next_expiry(const struct client *cl)
{
	const struct slot *s;

	if (!cl->pending || cl->oldest >= cl->next_seq)
		return UINT64_MAX;
	s = &cl->ring[cl->oldest & cl->ring_mask];
	return s->stamp + cl->timeout_ns;
}
