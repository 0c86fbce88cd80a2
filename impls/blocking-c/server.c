// SPDX-License-Identifier: MIT
/*
 * HELLO server: a blocking C recvfrom/sendto loop, one datagram per syscall pair.
 *
 * --delay-ns N spins N ns before each reply; it exists so that tests can check that the
 * suite notices a slowed server.
 *
 * --spin busy-polls instead of blocking: recvfrom(MSG_DONTWAIT) again at once on EAGAIN,
 * so the server makes syscalls but never sleeps and is never woken (the spin-c impl).
 *
 * --extra-syscalls K makes K getppid() calls per answered request before the reply: K
 * more user/kernel transitions on the request path and nothing else, the dose whose
 * response is the marginal cost of one transition where the server runs.
 *
 * Stopping: a SIGTERM that lands between the loop's check and recvfrom() would leave the
 * server blocked for good. The handler (hb_stop_on_signal) therefore also shuts the
 * socket's receive side down: on Linux that wakes a blocked recvfrom() and makes every
 * later one return 0 at once, so the stop is never lost and the hot path keeps one
 * syscall per datagram.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hb_server.h"
#include "hello_proto.h"

struct config {
	uint64_t delay_ns;
	unsigned long extra_syscalls;
	int spin;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void spin_ns(uint64_t ns)
{
	uint64_t until = now_ns() + ns;

	while (now_ns() < until)
		;
}

static void transitions(unsigned long count)
{
	/* syscall(2), not the libc wrapper: every call must enter the kernel. */
	while (count--)
		syscall(SYS_getppid);
}

static int serve(int fd, uint64_t delay_ns, unsigned long extra_syscalls, int spin)
{
	int flags = spin ? MSG_DONTWAIT : 0;

	static char buf[65536];
	struct sockaddr_storage peer;
	socklen_t plen;
	ssize_t n;

	while (!hb_stopping) {
		plen = sizeof(peer);
		n = recvfrom(fd, buf, sizeof(buf), flags, (struct sockaddr *)&peer, &plen);
		if (n == 0 && hb_stopping)
			break;	/* receive side shut down by the handler */
		if (n < 0) {
			if (errno == EINTR || (spin && errno == EAGAIN))
				continue;
			perror("recvfrom");
			return 1;
		}
		if (n < HELLO_MIN_REQUEST || n > HELLO_MAX_REQUEST ||
		    memcmp(buf, HELLO_MAGIC, HELLO_MAGIC_LEN) != 0)
			continue;
		memcpy(buf, HELLO_REPLY, HELLO_REPLY_LEN);
		if (delay_ns)
			spin_ns(delay_ns);
		if (extra_syscalls)
			transitions(extra_syscalls);
		/* A vanished client (ICMP unreachable) must not stop the server. */
		sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&peer, plen);
	}
	return 0;
}

static int option(int key, const char *arg, void *ctx)
{
	struct config *cfg = ctx;

	switch (key) {
	case 'd':
		cfg->delay_ns = strtoull(arg, NULL, 10);
		return 0;
	case 's':
		cfg->spin = 1;
		return 0;
	case 'k':
		if (!hb_parse_ulong(arg, 0, 1000000, &cfg->extra_syscalls)) {
			fprintf(stderr, "--extra-syscalls must be 0..1000000\n");
			return -1;
		}
		return 0;
	}
	return -1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "delay-ns", required_argument, NULL, 'd' },
		{ "extra-syscalls", required_argument, NULL, 'k' },
		{ "spin", no_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	struct hb_server s = {
		.usage = "[--delay-ns N] [--extra-syscalls K] [--spin]",
	};
	struct config cfg = { 0 };
	int fd, ret;

	ret = hb_server_args(&s, argc, argv, opts, option, &cfg);
	if (ret)
		return ret;
	fd = hb_server_socket(&s, 0);
	if (fd < 0)
		return 1;
	/* Handlers only once the socket exists: until then a signal's default action ends us. */
	if (hb_stop_on_signal(fd) < 0) {
		perror("sigaction");
		return 1;
	}
	printf("READY\n");
	fflush(stdout);
	return serve(fd, cfg.delay_ns, cfg.extra_syscalls, cfg.spin);
}
