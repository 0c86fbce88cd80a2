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
 * server blocked for good. The handler therefore also shuts the socket's receive side
 * down: on Linux that wakes a blocked recvfrom() and makes every later one return 0 at
 * once, so the stop is never lost and the hot path keeps one syscall per datagram.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hello_proto.h"

static volatile sig_atomic_t stopping;
static volatile sig_atomic_t serving_fd = -1;

static void on_signal(int sig)
{
	int saved_errno = errno;

	(void)sig;
	stopping = 1;
	if (serving_fd >= 0)
		shutdown(serving_fd, SHUT_RD);	/* async-signal-safe */
	errno = saved_errno;
}

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

static int open_socket(const char *addr, int port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	memset(&ss, 0, sizeof(ss));
	if (strchr(addr, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1)
			return -EINVAL;
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1)
			return -EINVAL;
		len = sizeof(*s4);
	}
	fd = socket(ss.ss_family, SOCK_DGRAM, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
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

	while (!stopping) {
		plen = sizeof(peer);
		n = recvfrom(fd, buf, sizeof(buf), flags, (struct sockaddr *)&peer, &plen);
		if (n == 0 && stopping)
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

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "addr", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "delay-ns", required_argument, NULL, 'd' },
		{ "extra-syscalls", required_argument, NULL, 'k' },
		{ "spin", no_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	const char *addr = "127.0.0.1";
	int port = HELLO_DEFAULT_PORT;
	uint64_t delay_ns = 0;
	unsigned long extra_syscalls = 0;
	int spin = 0;
	char *end;
	struct sigaction sa;
	int fd, c;

	while ((c = getopt_long(argc, argv, "a:p:d:k:s", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			addr = optarg;
			break;
		case 'p':
			port = atoi(optarg);
			break;
		case 'd':
			delay_ns = strtoull(optarg, NULL, 10);
			break;
		case 's':
			spin = 1;
			break;
		case 'k':
			errno = 0;
			extra_syscalls = strtoul(optarg, &end, 10);
			if (errno || *end || optarg[0] == '-' || extra_syscalls > 1000000) {
				fprintf(stderr, "--extra-syscalls must be 0..1000000\n");
				return 2;
			}
			break;
		default:
			fprintf(stderr,
				"usage: %s [--addr A] [--port N] [--delay-ns N] [--extra-syscalls K] [--spin]\n",
				argv[0]);
			return 2;
		}
	}
	if (port <= 0 || port > 65535) {
		fprintf(stderr, "port must be 1..65535\n");
		return 2;
	}
	fd = open_socket(addr, port);
	if (fd < 0) {
		fprintf(stderr, "cannot bind %s:%d: %s\n", addr, port, strerror(-fd));
		return 1;
	}
	/* Handlers only once the socket exists: until then a signal's default action ends us. */
	serving_fd = fd;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	printf("READY\n");
	fflush(stdout);
	return serve(fd, delay_ns, extra_syscalls, spin);
}
