/* SPDX-License-Identifier: MIT */
/*
 * hello-client: requests and replies (hc_requests.c).
 */
#ifndef HC_REQUESTS_H
#define HC_REQUESTS_H

#include <stddef.h>
#include <stdint.h>

struct client;

/* Request @seq given up on: counted, and recorded at the timeout. */
void req_record_timeout(struct client *cl, uint64_t seq);

/* Request @seq went out at @sent: into the ordered stream when recording. */
void req_record_sent(struct client *cl, uint64_t seq, uint64_t sent);

/* Request @seq answered after @ns: into the latency record and the ordered stream. */
void req_record_latency(struct client *cl, uint64_t seq, uint64_t ns);

/* A whole request with its header zeroed; the pattern fills every byte from 24 on. */
void req_fill_template(uint8_t *buf, unsigned int size);

void req_stamp(uint8_t *buf, uint16_t flags, uint64_t seq, uint64_t stamp);

/* The request of cl->next_seq went out: it is in flight from now on. */
void req_commit_sent(struct client *cl, uint64_t stamp, uint64_t sent);

/* A datagram received at @now: a reply to match, a duplicate, stale or corrupt. */
void req_on_reply(struct client *cl, const uint8_t *buf, size_t len, uint64_t now);

/* Gives up on requests older than the timeout; keeps cl->oldest at the first pending one. */
void req_expire(struct client *cl, uint64_t now);

/* When the oldest request in flight times out (UINT64_MAX: none is). */
uint64_t req_next_expiry(const struct client *cl);

#endif /* HC_REQUESTS_H */
