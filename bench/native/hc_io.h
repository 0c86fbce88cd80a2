/* SPDX-License-Identifier: MIT */
/*
 * hello-client: socket I/O (hc_io.c).  The int functions return -1 on an
 * error that ends the client (said on stderr).
 */
#ifndef HC_IO_H
#define HC_IO_H

#include <stdbool.h>
#include <stdint.h>

struct client;

/* A failed send: 0 when it is to be waited out or backed off from, else -1. */
int io_send_error(struct client *cl, const char *what);

/* Sends the request of cl->next_seq stamped @stamp; 1 when it went, 0 when not. */
int io_send_one(struct client *cl, uint64_t stamp);

/* Sends up to @count prepared requests (tx buffers 0..count-1); returns how many went. */
int io_send_batch(struct client *cl, unsigned int count);

/* Sleeps (or spins) @ns after a refused send. */
int io_backoff(struct client *cl, uint64_t ns);

/* Receives whatever is queued (or waits for one datagram when @wait). */
int io_receive(struct client *cl, bool wait, uint64_t *now);

/* One recv, the cheapest path when a single request is in flight. */
int io_receive_one(struct client *cl, int flags, uint64_t *now);

/* Waits until the socket is readable (or writable, with @out) or @until: 1, 0 or -1. */
int io_wait_socket(struct client *cl, uint64_t until, bool out);

#endif /* HC_IO_H */
