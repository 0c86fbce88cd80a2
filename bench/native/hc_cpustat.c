// SPDX-License-Identifier: MIT
/*
 * hello-client: one CPU's time from /proc/stat (USER_HZ ticks).
 */
#include <stdio.h>
#include <string.h>

#include "hc_cpustat.h"

void cpustat_read(int cpu, struct cpu_ticks *t)
{
	unsigned long long user, nice, system, idle, iowait, irq, softirq, steal;
	char want[32], line[512];
	FILE *f;

	memset(t, 0, sizeof(*t));
	if (cpu < 0)
		return;
	snprintf(want, sizeof(want), "cpu%d ", cpu);
	f = fopen("/proc/stat", "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, want, strlen(want)) != 0)
			continue;
		if (sscanf(line + strlen(want), "%llu %llu %llu %llu %llu %llu %llu %llu",
			   &user, &nice, &system, &idle, &iowait, &irq, &softirq, &steal) == 8) {
			t->busy = user + nice + system + irq + softirq + steal;
			t->idle = idle + iowait;
			t->ok = true;
		}
		break;
	}
	fclose(f);
}
