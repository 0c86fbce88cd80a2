// SPDX-License-Identifier: MIT
/*
 * hello-client: the results, one JSON document (schema hellobench-driver/1) on
 * --out or stdout, and the reservoir's raw samples as little-endian i64s on
 * --samples-out.
 *
 * Every request of the measured phase is in the latency record once: at its
 * RTT, or at the timeout when it timed out (latency_ns.timeouts of them), so
 * the tail is not cut off.  throughput_rps counts the replies received within
 * the measured window; those collected in the drain after it are
 * counts.drained.
 */
#define _GNU_SOURCE	/* struct mmsghdr in hc_client.h */
#include <stdbool.h>
#include <stdio.h>
#include <sys/resource.h>

#include "hc_client.h"
#include "hc_results.h"
#include "hc_util.h"

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
		"\"warmup_s\": %.9g, \"timeout_s\": %.9g, ", opt_mode_names[o->mode], o->size,
		o->duration_s, o->warmup_s, o->timeout_s);
	fprintf(f, "\"rate_rps\": %.9g, \"max_requests\": %llu, \"outstanding\": %u, "
		"\"batch\": %u, \"cpu\": %d, \"busy_poll\": %s, \"wait\": \"%s\", "
		"\"arrivals\": \"%s\", \"seed\": %llu},\n",
		o->rate_rps, (unsigned long long)o->max_requests, o->outstanding, o->batch,
		o->cpu, o->wait == WAIT_SPIN && o->mode == MODE_PINGPONG ? "true" : "false",
		opt_wait_names[o->wait], opt_arrivals_names[o->arrivals], (unsigned long long)o->seed);
}

int results_write(const struct client *cl)
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
