// SPDX-License-Identifier: MIT
/*
 * hello-client: the latency histogram and reservoir (see hc_histogram.h).
 */
#include <string.h>

#include "hc_histogram.h"
#include "hc_util.h"

static unsigned int hist_index(uint64_t v)
{
	int bucket, sub;

	if (v > HIST_HIGHEST)
		v = HIST_HIGHEST;
	bucket = 64 - __builtin_clzll(v | (HIST_SUB_COUNT - 1)) - HIST_SUB_BITS;
	sub = (int)(v >> bucket);
	return (unsigned int)(((bucket + 1) << HIST_HALF_BITS) + sub - (int)HIST_HALF_COUNT);
}

uint64_t hist_value(unsigned int index)
{
	int bucket = (int)(index >> HIST_HALF_BITS) - 1;
	uint64_t sub = (index & (HIST_HALF_COUNT - 1)) + HIST_HALF_COUNT;

	if (bucket < 0) {
		sub -= HIST_HALF_COUNT;
		bucket = 0;
	}
	return sub << bucket;
}

void hist_record(struct latency *l, uint64_t ns)
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

void hist_reset(struct latency *l, uint64_t seed)
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
