/* SPDX-License-Identifier: MIT */
/*
 * hello-client: latencies into a fixed-size log-linear histogram bucketed
 * exactly like HdrHistogram (1 ns .. 60 s, 3 significant digits) plus a
 * reservoir sample (Algorithm R) of raw values, so memory is bounded whatever
 * the duration or rate.
 */
#ifndef HC_HISTOGRAM_H
#define HC_HISTOGRAM_H

#include <stdint.h>

/* HdrHistogram layout for lowest 1, highest 60e9, 3 significant digits. */
#define HIST_SUB_BITS		11
#define HIST_SUB_COUNT		(1u << HIST_SUB_BITS)
#define HIST_HALF_BITS		(HIST_SUB_BITS - 1)
#define HIST_HALF_COUNT		(1u << HIST_HALF_BITS)
#define HIST_BUCKETS		26
#define HIST_LEN		((HIST_BUCKETS + 1) * HIST_HALF_COUNT)
#define HIST_HIGHEST		60000000000ull

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

/* The lowest value of histogram bucket @index. */
uint64_t hist_value(unsigned int index);

void hist_record(struct latency *l, uint64_t ns);
void hist_reset(struct latency *l, uint64_t seed);

#endif /* HC_HISTOGRAM_H */
