/* SPDX-License-Identifier: MIT */
/*
 * hello-client: its options, from one table (hc_options.c) that parses argv,
 * prints the usage text and, for --limits, prints every option's limits as
 * JSON for bench/driver/client.py.
 */
#ifndef HC_OPTIONS_H
#define HC_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum mode { MODE_PINGPONG, MODE_RATE, MODE_FLOOD };

enum wait { WAIT_BLOCK, WAIT_SPIN };

/* How rate mode schedules its requests: evenly spaced, or a Poisson process. */
enum arrivals { ARRIVALS_UNIFORM, ARRIVALS_POISSON };

/* Indexed by the enums above. */
extern const char *const opt_mode_names[];
extern const char *const opt_wait_names[];
extern const char *const opt_arrivals_names[];

struct options {
	enum mode mode;
	const char *addr;
	int port;
	unsigned int size;
	double duration_s;
	double warmup_s;
	double timeout_s;
	double rate_rps;
	uint64_t max_requests;		/* 0: no limit */
	unsigned int outstanding;
	unsigned int batch;
	int cpu;			/* -1: not pinned */
	uint64_t seed;
	uint64_t sample_cap;
	uint64_t ordered_cap;		/* entries of the ordered stream; 0: none */
	enum wait wait;
	enum arrivals arrivals;
	bool busy_poll;			/* --busy-poll given (sets wait to spin) */
	bool wait_given;
	bool handshake;
	const char *out;
	const char *samples_out;
	const char *ordered_out;
};

/*
 * Fills @o from argv (defaults for what is not given) and checks the whole;
 * returns 0, or -1 after a message (exit status 2).  --help prints the usage
 * and --limits the limits, and both exit 0.
 */
int opt_parse(int argc, char **argv, struct options *o);

void opt_usage(FILE *f);

/* {"schema": ..., "options": {NAME: {"min", "max"} or {"choices"}, ...}} */
void opt_print_limits(FILE *f);

#endif /* HC_OPTIONS_H */
