/* SPDX-License-Identifier: MIT */
/*
 * The scaffold every C socket server shares: the common options (--addr,
 * --port, --counters) parsed with the server's own, the bound UDP socket, the
 * counters memfd and the stop signals.  A server keeps only its receive/reply
 * loop.
 */
#ifndef HB_SERVER_H
#define HB_SERVER_H

#include <getopt.h>
#include <signal.h>
#include <stddef.h>

#define HB_XSTR(x)	#x
#define HB_STR(x)	HB_XSTR(x)	/* a macro's value as a string literal */

struct hb_server {
	const char *addr;		/* --addr, default 127.0.0.1 */
	unsigned long port;		/* --port, default HELLO_DEFAULT_PORT */
	const char *usage;		/* the server's own options, for usage: */
	const char *const *counters;	/* names printed by --counters */
	size_t ncounters;
};

/*
 * Handles one of the server's own options (getopt's @key and @arg); returns
 * 0, or -1 after saying what is wrong (the server then exits 2).
 */
typedef int (*hb_option_fn)(int key, const char *arg, void *ctx);

/*
 * Parses argv: --addr and --port into @s, --counters prints the counter names
 * (one a line) and exits 0, everything in @opts (the server's own, ended by a
 * zeroed entry; may be NULL) goes to @fn.  Returns 0, or 2 after a message
 * when the arguments are wrong.
 */
int hb_server_args(struct hb_server *s, int argc, char **argv,
		   const struct option *opts, hb_option_fn fn, void *ctx);

/* 1 when @s is a decimal number lo..hi (stored in @val), else 0. */
int hb_parse_ulong(const char *s, unsigned long lo, unsigned long hi,
		   unsigned long *val);

/*
 * A UDP socket of @type_flags (SOCK_NONBLOCK, SOCK_CLOEXEC) bound to the
 * server's address and port; -1 after saying why it cannot be.
 */
int hb_server_socket(const struct hb_server *s, int type_flags);

/*
 * @size bytes of zeroed counters in a shared memfd named
 * "hellobench-counters", which the controller reads from /proc/PID/fd;
 * @fallback (private memory) when no memfd can be had.
 */
void *hb_counters_open(size_t size, void *fallback);

/* Set once SIGTERM or SIGINT came (hb_stop_on_signal). */
extern volatile sig_atomic_t hb_stopping;

/*
 * SIGTERM and SIGINT set hb_stopping and shut @fd's receive side down (if
 * @fd >= 0): on Linux that wakes a blocked receive and makes every later one
 * return at once, so a stop landing between the loop's check and the receive
 * is never lost.  Returns 0, or -1 (errno set).
 */
int hb_stop_on_signal(int fd);

/*
 * Blocks SIGTERM and SIGINT and returns a signalfd (@flags: SFD_NONBLOCK,
 * SFD_CLOEXEC) that reads them, or -1 (errno set).
 */
int hb_stop_signalfd(int flags);

#endif /* HB_SERVER_H */
