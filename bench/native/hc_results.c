// SPDX-License-Identifier: MIT
/*
 * hello-client: the results, one JSON document (schema hellobench-driver/1) on
 * --out or stdout, the reservoir's raw samples as little-endian i64s on
 * --samples-out, and the ordered stream on --ordered-out as little-endian i64
 * pairs (send time after the phase's start, latency), in send order.
 *
 * Every request of the measured phase is in the latency record once: at its
 * RTT, or at the timeout when it timed out (latency_ns.timeouts of them), so
 * the tail is not cut off.  throughput_rps counts the replies received within
 * the measured window; those collected in the drain after it are
 * counts.drained.
 *
 * In rate mode "schedule" says how many requests were due before the measured
 * window closed and how many of them a client that fell behind never sent
 * (dropped_due), and how late the sent ones went out (send_lag_ns).
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

static int put_le64(FILE *f, int64_t v)
{
	uint8_t le[8];
	int b;

	for (b = 0; b < 8; b++)
		le[b] = (uint8_t)((uint64_t)v >> (8 * b));
	return fwrite(le, 1, sizeof(le), f) == sizeof(le) ? 0 : -1;
}

/*
 * @n values of @a (and of @b after each, when given) as little-endian i64s to @path;
 * none when @path is NULL.  Sets @written to the values (or pairs) written.
 */
static int write_i64s(const char *path, const int64_t *a, const int64_t *b, uint64_t n,
		      uint64_t *written)
{
	uint64_t i;
	FILE *f;

	*written = 0;
	if (!path)
		return 0;
	f = fopen(path, "wb");
	if (!f)
		goto fail;
	for (i = 0; i < n; i++) {
		if (put_le64(f, a[i]) < 0 || (b && put_le64(f, b[i]) < 0))
			goto fail_close;
	}
	if (fclose(f) != 0)
		goto fail;
	*written = n;
	return 0;

fail_close:
	fclose(f);
fail:
	perror(path);
	return -1;
}

static int write_samples(const struct client *cl, uint64_t *written)
{
	uint64_t n = cl->lat.seen < cl->lat.cap ? cl->lat.seen : cl->lat.cap;

	return write_i64s(cl->o->samples_out, cl->lat.samples, NULL, n, written);
}

static int write_ordered(const struct client *cl, uint64_t *written)
{
	const struct ordered *od = &cl->ord;

	return write_i64s(cl->o->ordered_out, od->send_ns, od->latency_ns, od->count, written);
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

/* The pinned CPU's ticks over the measured window (omitted when not pinned or unread). */
static void write_cpu_window(FILE *f, const struct client *cl)
{
	const struct cpu_ticks *a = &cl->cpu0, *b = &cl->cpu1;

	if (!a->ok || !b->ok || b->busy < a->busy || b->idle < a->idle)
		return;
	fprintf(f, "\"cpu_window\": {\"cpu\": %d, \"busy_ticks\": %llu, \"idle_ticks\": %llu},\n",
		cl->o->cpu, (unsigned long long)(b->busy - a->busy),
		(unsigned long long)(b->idle - a->idle));
}

static void write_schedule(FILE *f, const struct client *cl)
{
	const struct schedule *sc = &cl->sched;
	uint64_t sent = cl->c.requests;

	fprintf(f, "\"schedule\": {\"due\": %llu, \"sent\": %llu, \"dropped_due\": %llu, "
		"\"due_estimated\": %s, ", (unsigned long long)sc->due, (unsigned long long)sent,
		(unsigned long long)(sc->due > sent ? sc->due - sent : 0),
		sc->due_estimated ? "true" : "false");
	fprintf(f, "\"send_lag_ns\": {\"mean\": %.3f, \"max\": %llu}},\n",
		sent ? sc->lag_sum_ns / (double)sent : 0.0, (unsigned long long)sc->lag_max_ns);
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
	uint64_t nsamples, nordered;
	FILE *f = stdout;

	if (write_samples(cl, &nsamples) < 0 || write_ordered(cl, &nordered) < 0)
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
	if (cl->o->mode == MODE_RATE)
		write_schedule(f, cl);
	write_rusage(f, &cl->ru0, &cl->ru1);
	write_cpu_window(f, cl);
	fprintf(f, "\"samples\": {\"count\": %llu, \"cap\": %llu, \"seen\": %llu},\n",
		(unsigned long long)nsamples, (unsigned long long)cl->lat.cap,
		(unsigned long long)cl->lat.seen);
	fprintf(f, "\"ordered\": {\"count\": %llu, \"cap\": %llu, \"stride\": %llu, "
		"\"seen\": %llu}}\n", (unsigned long long)nordered,
		(unsigned long long)cl->ord.cap, (unsigned long long)cl->ord.stride,
		(unsigned long long)cl->ord.seen);
	if (f != stdout ? fclose(f) != 0 : fflush(f) != 0) {
		perror("writing results");
		return -1;
	}
	return 0;
}
