/* SPDX-License-Identifier: MIT */
/*
 * hello-client: the results of the measured phase (hc_results.c).
 */
#ifndef HC_RESULTS_H
#define HC_RESULTS_H

struct client;

/* Writes the samples and the results; -1 (said on stderr) when it cannot. */
int results_write(const struct client *cl);

#endif /* HC_RESULTS_H */
