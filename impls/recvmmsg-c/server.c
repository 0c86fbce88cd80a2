// SPDX-License-Identifier: MIT
/*
 * HELLO server: batched recvmmsg()/sendmmsg() on a blocking UDP socket.
 *
 * One recvmmsg() takes up to --batch datagrams (1..1024, the kernel's UIO_MAXIOV).
 * MSG_WAITFORONE makes it block only for the first one and then take what is already
 * queued, so under load one call serves many requests while a lone request (pingpong)
 * is returned at once.  The valid requests of a batch are rewritten in place and sent
 * back, each to its own sender (msg_name), with as few sendmmsg() calls as the kernel
 * allows; malformed datagrams are skipped within the batch.
 *
 * Counters (HB_COUNTERS_RECVMMSG in hb_counters.h: answered, rejected, send_failed,
 * batches) live in a shared memfd named "hellobench-counters", so the controller reads
 * them from /proc without a syscall on the request path.
 *
 * Stopping: as in blocking-c, the signal handler (hb_stop_on_signal) also shuts the
 * socket's receive side down, which wakes a blocked recvmmsg() and makes every later one
 * return at once (with zero-length datagrams), so a signal landing just before the call
 * is never lost.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "hb_counters.h"
#include "hb_server.h"
#include "hello_proto.h"

#define MAX_BATCH	1024	/* UIO_MAXIOV: the most recvmmsg() takes at once */
#define DEFAULT_BATCH	32
#define SLOT_SIZE	2048	/* > HELLO_MAX_REQUEST: a longer datagram shows up truncated */

HB_DEFINE_COUNTERS(HB_COUNTERS_RECVMMSG);

static char bufs[MAX_BATCH][SLOT_SIZE];
static struct sockaddr_storage names[MAX_BATCH];
static struct iovec in_iov[MAX_BATCH], out_iov[MAX_BATCH];
static struct mmsghdr in[MAX_BATCH], out[MAX_BATCH];

static void setup_slots(unsigned int batch)
{
	unsigned int i;

	for (i = 0; i < batch; i++) {
		in_iov[i].iov_base = bufs[i];
		in_iov[i].iov_len = SLOT_SIZE;
		in[i].msg_hdr.msg_iov = &in_iov[i];
		in[i].msg_hdr.msg_iovlen = 1;
		in[i].msg_hdr.msg_name = &names[i];
		out[i].msg_hdr.msg_iov = &out_iov[i];
		out[i].msg_hdr.msg_iovlen = 1;
	}
}

static int is_request(const struct mmsghdr *m, const char *buf)
{
	return !(m->msg_hdr.msg_flags & MSG_TRUNC) &&
	       m->msg_len >= HELLO_MIN_REQUEST &&
	       m->msg_len <= HELLO_MAX_REQUEST &&
	       memcmp(buf, HELLO_MAGIC, HELLO_MAGIC_LEN) == 0;
}

/* Rewrite the batch's requests in place; returns how many replies are queued in out[]. */
static unsigned int build_replies(unsigned int got, struct hb_counters *c)
{
	unsigned int i, n = 0;

	for (i = 0; i < got; i++) {
		if (!is_request(&in[i], bufs[i])) {
			c->rejected++;
			continue;
		}
		memcpy(bufs[i], HELLO_REPLY, HELLO_REPLY_LEN);
		out_iov[n].iov_base = bufs[i];
		out_iov[n].iov_len = in[i].msg_len;
		out[n].msg_hdr.msg_name = &names[i];
		out[n].msg_hdr.msg_namelen = in[i].msg_hdr.msg_namelen;
		n++;
	}
	return n;
}

static void send_replies(int fd, unsigned int n, struct hb_counters *c)
{
	unsigned int i = 0;
	int sent;

	while (i < n) {
		sent = sendmmsg(fd, &out[i], n - i, 0);
		if (sent < 0) {
			if (errno == EINTR && !hb_stopping)
				continue;
			/* This reply cannot go (a vanished client): skip it, not the rest. */
			c->send_failed++;
			i++;
			continue;
		}
		c->answered += (unsigned int)sent;
		i += (unsigned int)sent;
	}
}

static int serve(int fd, unsigned int batch, struct hb_counters *c)
{
	unsigned int i, n;
	int got;

	setup_slots(batch);
	while (!hb_stopping) {
		for (i = 0; i < batch; i++)
			in[i].msg_hdr.msg_namelen = sizeof(names[i]);
		got = recvmmsg(fd, in, batch, MSG_WAITFORONE, NULL);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			perror("recvmmsg");
			return 1;
		}
		if (hb_stopping)
			break;	/* receive side shut down by the handler */
		c->batches++;
		n = build_replies((unsigned int)got, c);
		if (n)
			send_replies(fd, n, c);
	}
	return 0;
}

static int option(int key, const char *arg, void *ctx)
{
	unsigned long *batch = ctx;

	if (key != 'b')
		return -1;
	if (!hb_parse_ulong(arg, 1, MAX_BATCH, batch)) {
		fprintf(stderr, "--batch must be 1..%d, got '%s'\n", MAX_BATCH, arg);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "batch", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	static struct hb_counters fallback;
	struct hb_server s = {
		.usage = "[--batch 1.." HB_STR(MAX_BATCH) "]",
		.counters = hb_counter_names,
		.ncounters = HB_NCOUNTERS,
	};
	unsigned long batch = DEFAULT_BATCH;
	struct hb_counters *counters;
	int fd, ret;

	ret = hb_server_args(&s, argc, argv, opts, option, &batch);
	if (ret)
		return ret;
	fd = hb_server_socket(&s, 0);
	if (fd < 0)
		return 1;
	counters = hb_counters_open(sizeof(*counters), &fallback);
	/* Handlers only once the socket exists: until then a signal's default action ends us. */
	if (hb_stop_on_signal(fd) < 0) {
		perror("sigaction");
		return 1;
	}
	printf("READY\n");
	fflush(stdout);
	return serve(fd, (unsigned int)batch, counters);
}
