// SPDX-License-Identifier: MIT
/*
 * hello-client: the ordered sample stream (see hc_ordered.h).
 */
#include "hc_ordered.h"

void ordered_reset(struct ordered *od, uint64_t t0)
{
	od->stride = 1;
	od->count = 0;
	od->seen = 0;
	od->t0 = t0;
}

/* Doubles the stride: entry j holds request j × stride, so the even ones stay. */
static void ordered_thin(struct ordered *od)
{
	uint64_t j;

	for (j = 0; 2 * j < od->count; j++) {
		od->send_ns[j] = od->send_ns[2 * j];
		od->latency_ns[j] = od->latency_ns[2 * j];
	}
	od->count = (od->count + 1) / 2;
	od->stride *= 2;
}

void ordered_sent(struct ordered *od, uint64_t index, uint64_t sent)
{
	uint64_t j;

	if (!od->cap)
		return;
	od->seen++;
	while (index / od->stride >= od->cap)
		ordered_thin(od);
	if (index % od->stride)
		return;
	j = index / od->stride;
	od->send_ns[j] = (int64_t)(sent - od->t0);
	od->latency_ns[j] = ORDERED_PENDING;
	if (j >= od->count)
		od->count = j + 1;
}

void ordered_done(struct ordered *od, uint64_t index, uint64_t ns)
{
	uint64_t j;

	if (!od->cap || index % od->stride)
		return;
	j = index / od->stride;
	if (j < od->count)
		od->latency_ns[j] = (int64_t)ns;
}
