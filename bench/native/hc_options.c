// SPDX-License-Identifier: MIT
/*
 * hello-client: the option table.  Each option is one entry: its name, how its
 * value is read and into which field, its limits, and its place in the usage
 * text.  Parsing, the usage and --limits all walk this table, so a limit is
 * written once.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "hc_options.h"
#include "hello_proto.h"

#define MAX_DURATION_S		86400.0
#define MAX_RATE		1e9
#define MAX_OUTSTANDING		65536
#define MAX_BATCH		1024
#define MAX_SAMPLE_CAP		(16u << 20)
#define MAX_ORDERED_CAP		(16u << 20)
#define OPT_KEY_BASE		1000	/* getopt_long's value: OPT_KEY_BASE + index */
#define LIMITS_SCHEMA		"hello-client-limits/1"

const char *const opt_mode_names[] = { "pingpong", "rate", "flood", NULL };
const char *const opt_wait_names[] = { "block", "spin", NULL };
const char *const opt_arrivals_names[] = { "uniform", "poisson", NULL };

enum opt_kind {
	OPT_CHOICE,		/* one of @choices, stored as its index */
	OPT_TEXT,		/* a string, stored as given */
	OPT_UINT,		/* a decimal @lo..@hi */
	OPT_REAL,		/* a finite real 0..@max */
	OPT_FLAG,		/* no value: stores @flag_value */
	OPT_ACTION,		/* no value: prints and exits */
};

struct opt_spec {
	const char *name;
	enum opt_kind kind;
	size_t offset;			/* the field of struct options */
	size_t size;			/* and its size */
	const char *metavar;		/* usage; choices list themselves */
	uint64_t lo, hi;		/* OPT_UINT */
	double max;			/* OPT_REAL */
	const char *const *choices;	/* OPT_CHOICE, NULL-terminated */
	bool flag_value;		/* OPT_FLAG */
	bool say_range;			/* "bad NAME (LO..HI)" or "(A|B)" */
	bool newline;			/* usage: starts a line */
	bool bare;			/* usage: without brackets */
};

#define FIELD(f)	.offset = offsetof(struct options, f), \
			.size = sizeof(((struct options *)0)->f)

enum opt_id {
	OPT_MODE, OPT_ADDR, OPT_PORT, OPT_SIZE,
	OPT_DURATION, OPT_WARMUP, OPT_MAX_REQUESTS, OPT_OUTSTANDING,
	OPT_RATE, OPT_BATCH, OPT_TIMEOUT, OPT_CPU, OPT_SEED,
	OPT_SAMPLE_CAP, OPT_ORDERED_CAP, OPT_WAIT, OPT_BUSY_POLL, OPT_NO_HANDSHAKE,
	OPT_ARRIVALS,
	OPT_OUT, OPT_SAMPLES_OUT, OPT_ORDERED_OUT,
	OPT_LIMITS, OPT_HELP,
	OPT_COUNT
};

static const struct opt_spec opt_table[OPT_COUNT] = {
	[OPT_MODE] = { "mode", OPT_CHOICE, FIELD(mode),
		       .choices = opt_mode_names, .bare = true },
	[OPT_ADDR] = { "addr", OPT_TEXT, FIELD(addr), .metavar = "A" },
	[OPT_PORT] = { "port", OPT_UINT, FIELD(port), .metavar = "N",
		       .lo = 1, .hi = 65535 },
	[OPT_SIZE] = { "size", OPT_UINT, FIELD(size), .metavar = "B",
		       .lo = HELLO_MIN_REQUEST, .hi = HELLO_MAX_REQUEST,
		       .say_range = true },
	[OPT_DURATION] = { "duration", OPT_REAL, FIELD(duration_s),
			   .metavar = "S", .max = MAX_DURATION_S,
			   .newline = true },
	[OPT_WARMUP] = { "warmup", OPT_REAL, FIELD(warmup_s), .metavar = "S",
			 .max = MAX_DURATION_S },
	[OPT_MAX_REQUESTS] = { "max-requests", OPT_UINT, FIELD(max_requests),
			       .metavar = "N", .lo = 1, .hi = UINT64_MAX },
	[OPT_OUTSTANDING] = { "outstanding", OPT_UINT, FIELD(outstanding),
			      .metavar = "K", .lo = 1, .hi = MAX_OUTSTANDING,
			      .say_range = true },
	[OPT_RATE] = { "rate", OPT_REAL, FIELD(rate_rps), .metavar = "R",
		       .max = MAX_RATE, .newline = true },
	[OPT_BATCH] = { "batch", OPT_UINT, FIELD(batch), .metavar = "N",
			.lo = 1, .hi = MAX_BATCH, .say_range = true },
	[OPT_TIMEOUT] = { "timeout", OPT_REAL, FIELD(timeout_s),
			  .metavar = "S", .max = MAX_DURATION_S },
	[OPT_CPU] = { "cpu", OPT_UINT, FIELD(cpu), .metavar = "C",
		      .lo = 0, .hi = CPU_SETSIZE - 1 },
	[OPT_SEED] = { "seed", OPT_UINT, FIELD(seed), .metavar = "N",
		       .lo = 0, .hi = UINT64_MAX },
	[OPT_SAMPLE_CAP] = { "sample-cap", OPT_UINT, FIELD(sample_cap),
			     .metavar = "N", .lo = 0, .hi = MAX_SAMPLE_CAP,
			     .newline = true },
	[OPT_ORDERED_CAP] = { "ordered-cap", OPT_UINT, FIELD(ordered_cap),
			      .metavar = "N", .lo = 0, .hi = MAX_ORDERED_CAP },
	[OPT_WAIT] = { "wait", OPT_CHOICE, FIELD(wait),
		       .choices = opt_wait_names, .say_range = true },
	[OPT_BUSY_POLL] = { "busy-poll", OPT_FLAG, FIELD(busy_poll),
			    .flag_value = true },
	[OPT_NO_HANDSHAKE] = { "no-handshake", OPT_FLAG, FIELD(handshake),
			       .flag_value = false },
	[OPT_ARRIVALS] = { "arrivals", OPT_CHOICE, FIELD(arrivals),
			   .choices = opt_arrivals_names, .say_range = true,
			   .newline = true },
	[OPT_OUT] = { "out", OPT_TEXT, FIELD(out), .metavar = "FILE",
		      .newline = true },
	[OPT_SAMPLES_OUT] = { "samples-out", OPT_TEXT, FIELD(samples_out),
			      .metavar = "FILE" },
	[OPT_ORDERED_OUT] = { "ordered-out", OPT_TEXT, FIELD(ordered_out),
			      .metavar = "FILE" },
	[OPT_LIMITS] = { "limits", OPT_ACTION, .newline = true },
	[OPT_HELP] = { "help", OPT_ACTION },
};

static void opt_choices(FILE *f, const char *const *choices, const char *sep)
{
	unsigned int i;

	for (i = 0; choices[i]; i++)
		fprintf(f, "%s%s", i ? sep : "", choices[i]);
}

void opt_usage(FILE *f)
{
	const struct opt_spec *s;
	unsigned int i;

	fprintf(f, "usage: hello-client");
	for (i = 0; i < OPT_COUNT; i++) {
		s = &opt_table[i];
		fprintf(f, "%s%s--%s", s->newline ? "\n         " : " ",
			s->bare ? "" : "[", s->name);
		if (s->kind == OPT_CHOICE) {
			fputc(' ', f);
			opt_choices(f, s->choices, "|");
		} else if (s->metavar) {
			fprintf(f, " %s", s->metavar);
		}
		fprintf(f, "%s", s->bare ? "" : "]");
	}
	fputc('\n', f);
}

void opt_print_limits(FILE *f)
{
	const struct opt_spec *s;
	bool first = true;
	unsigned int i;

	fprintf(f, "{\"schema\": \"%s\", \"options\": {", LIMITS_SCHEMA);
	for (i = 0; i < OPT_COUNT; i++) {
		s = &opt_table[i];
		if (s->kind != OPT_UINT && s->kind != OPT_REAL &&
		    s->kind != OPT_CHOICE)
			continue;
		fprintf(f, "%s\"%s\": {", first ? "" : ", ", s->name);
		first = false;
		if (s->kind == OPT_UINT) {
			fprintf(f, "\"min\": %llu, \"max\": %llu}",
				(unsigned long long)s->lo,
				(unsigned long long)s->hi);
		} else if (s->kind == OPT_REAL) {
			fprintf(f, "\"min\": 0, \"max\": %.17g}", s->max);
		} else {
			fprintf(f, "\"choices\": [\"");
			opt_choices(f, s->choices, "\", \"");
			fprintf(f, "\"]}");
		}
	}
	fprintf(f, "}}\n");
}

static int bad(const struct opt_spec *s, const char *value)
{
	fprintf(stderr, "hello-client: bad %s", s->name);
	if (s->say_range && s->kind == OPT_UINT) {
		fprintf(stderr, " (%llu..%llu)", (unsigned long long)s->lo,
			(unsigned long long)s->hi);
	} else if (s->say_range && s->kind == OPT_CHOICE) {
		fprintf(stderr, " (");
		opt_choices(stderr, s->choices, "|");
		fprintf(stderr, ")");
	}
	fprintf(stderr, " '%s'\n", value);
	return -1;
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *v)
{
	unsigned long long x;
	char *end;

	if (!*s || *s == '-')
		return -1;
	errno = 0;
	x = strtoull(s, &end, 10);
	if (errno || *end || x < lo || x > hi)
		return -1;
	*v = x;
	return 0;
}

static int parse_real(const char *s, double hi, double *v)
{
	char *end;
	double x;

	errno = 0;
	x = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(x) || x < 0 || x > hi)
		return -1;
	*v = x;
	return 0;
}

static int parse_choice(const char *s, const char *const *choices, uint64_t *v)
{
	uint64_t i;

	for (i = 0; choices[i]; i++) {
		if (strcmp(s, choices[i]) == 0) {
			*v = i;
			return 0;
		}
	}
	return -1;
}

/* A whole number into a field of 4 or 8 bytes (ints, unsigneds, enums). */
static void store_uint(void *field, size_t size, uint64_t v)
{
	uint32_t v32 = (uint32_t)v;

	if (size == sizeof(v32))
		memcpy(field, &v32, sizeof(v32));
	else
		memcpy(field, &v, sizeof(v));
}

static int parse_one(struct options *o, const struct opt_spec *s, const char *arg)
{
	char *field = (char *)o + s->offset;
	uint64_t v;
	double x;

	switch (s->kind) {
	case OPT_CHOICE:
		if (parse_choice(arg, s->choices, &v))
			return bad(s, arg);
		store_uint(field, s->size, v);
		return 0;
	case OPT_TEXT:
		memcpy(field, &arg, sizeof(arg));
		return 0;
	case OPT_UINT:
		if (parse_u64(arg, s->lo, s->hi, &v))
			return bad(s, arg);
		store_uint(field, s->size, v);
		return 0;
	case OPT_REAL:
		if (parse_real(arg, s->max, &x))
			return bad(s, arg);
		memcpy(field, &x, sizeof(x));
		return 0;
	case OPT_FLAG:
		memcpy(field, &s->flag_value, sizeof(s->flag_value));
		return 0;
	case OPT_ACTION:
		break;
	}
	return -1;
}

static int check_options(struct options *o)
{
	const char *why = NULL;

	if (o->duration_s <= 0)
		why = "--duration must be > 0";
	else if (o->timeout_s <= 0)
		why = "--timeout must be > 0";
	else if (o->mode == MODE_RATE && !(o->rate_rps > 0))
		why = "rate mode needs --rate > 0";
	else if (o->size < HELLO_HEADER_SIZE &&
		 (o->mode != MODE_PINGPONG || o->outstanding != 1))
		why = "sizes below 24 bytes (no room for the seq header) allow only "
		      "pingpong with --outstanding 1";
	else if (o->busy_poll && o->mode != MODE_PINGPONG)
		why = "--busy-poll applies to pingpong only";
	else if (o->busy_poll && o->wait == WAIT_BLOCK && o->wait_given)
		why = "--busy-poll spins: it contradicts --wait=block";
	if (o->busy_poll)
		o->wait = WAIT_SPIN;
	if (!why)
		return 0;
	fprintf(stderr, "hello-client: %s\n", why);
	return -1;
}

int opt_parse(int argc, char **argv, struct options *o)
{
	struct option longopts[OPT_COUNT + 1];
	unsigned int i;
	int c;

	*o = (struct options){
		.mode = MODE_PINGPONG, .addr = "127.0.0.1", .port = HELLO_DEFAULT_PORT,
		.size = 64, .duration_s = 1.0, .warmup_s = 0.2, .timeout_s = 0.2,
		.outstanding = 1, .batch = 32, .cpu = -1, .seed = 1, .sample_cap = 10000,
		.ordered_cap = 65536, .handshake = true,
	};
	memset(longopts, 0, sizeof(longopts));
	for (i = 0; i < OPT_COUNT; i++) {
		longopts[i].name = opt_table[i].name;
		longopts[i].has_arg = opt_table[i].kind == OPT_FLAG ||
				      opt_table[i].kind == OPT_ACTION ?
				      no_argument : required_argument;
		longopts[i].val = OPT_KEY_BASE + (int)i;
	}
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == OPT_KEY_BASE + OPT_HELP) {
			opt_usage(stdout);
			exit(0);
		}
		if (c == OPT_KEY_BASE + OPT_LIMITS) {
			opt_print_limits(stdout);
			exit(fflush(stdout) ? 1 : 0);
		}
		if (c < OPT_KEY_BASE || c >= OPT_KEY_BASE + OPT_COUNT) {
			opt_usage(stderr);
			return -1;
		}
		if (c == OPT_KEY_BASE + OPT_WAIT)
			o->wait_given = true;
		if (parse_one(o, &opt_table[c - OPT_KEY_BASE], optarg) < 0)
			return -1;
	}
	if (optind < argc) {
		fprintf(stderr, "hello-client: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	return check_options(o);
}
