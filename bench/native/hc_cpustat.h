/* SPDX-License-Identifier: MIT */
/*
 * hello-client: one CPU's time from /proc/stat, read at the edges of the measured
 * window, so that the busy share of the client's pinned CPU covers the window itself.
 */
#ifndef HC_CPUSTAT_H
#define HC_CPUSTAT_H

#include <stdbool.h>
#include <stdint.h>

struct cpu_ticks {
	uint64_t busy;	/* user + nice + system + irq + softirq + steal */
	uint64_t idle;	/* idle + iowait */
	bool ok;
};

/* Fills @t from the "cpuN" line of /proc/stat; t->ok is false when it cannot. */
void cpustat_read(int cpu, struct cpu_ticks *t);

#endif /* HC_CPUSTAT_H */
