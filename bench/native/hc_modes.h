/* SPDX-License-Identifier: MIT */
/*
 * hello-client: the phases (hc_modes.c), each run in the mode of --mode.
 */
#ifndef HC_MODES_H
#define HC_MODES_H

struct client;

/* The warmup: requests flagged HELLO_FLAG_WARMUP, not recorded; then their drain. */
int mode_warmup(struct client *cl);

/*
 * The measured phase (--duration or --max-requests, whichever first), then the
 * drain of the replies still due for up to --timeout.
 */
int mode_measure(struct client *cl);

#endif /* HC_MODES_H */
