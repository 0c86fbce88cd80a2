// SPDX-License-Identifier: MIT
/*
 * hello-rtt-probe: a second, deliberately minimal HELLO client, written apart from
 * hello_client.c so that the two can check each other.  It sends COUNT requests of SIZE
 * bytes ("HELLO ", zeros, the request's number at byte 8), one at a time, each after the reply to the one before,
 * blocking in recv() with a 200 ms timeout, timed with CLOCK_MONOTONIC around send and
 * recv, and prints the median and the 99th percentile of the round trips:
 *
 *   hello-rtt-probe ADDR PORT SIZE COUNT CPU [WIRE [SOCKET]]   (CPU -1: not pinned)
 *
 * WIRE is "hello" (the default) or "sockperf": sockperf's own ping-pong message (a
 * 14-byte header in network order: the sequence number, 64 bits; flags, 16 bits, 3 =
 * client | pong request; the message size, 32 bits), answered by ``sockperf server`` with
 * the same header and flags 2 (pong).  With it the same client can time both servers, so
 * a difference between our driver and sockperf can be split into its client part and its
 * server part.
 *
 * SOCKET is "connected" (the default: connect(), then send() and recv(), as our driver
 * does) or "unconnected": sendto() with the address and recvfrom() for every message, as
 * sockperf's client does, which costs a route lookup and an IP ID per send and an address
 * copy per receive.  Timing both against one server measures what that choice costs.
 *
 * Output, one "key value" pair per line: count, timeouts, bad, p50_ns, p99_ns.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZE 1472
#define MAX_COUNT 1000000
#define SOCKPERF_HEADER 14
#define SOCKPERF_PING 3		/* client | pong request */
#define SOCKPERF_PONG 2

enum wire { WIRE_HELLO, WIRE_SOCKPERF };

/* Writes request @i in @wire's format; returns the minimum size it needs. */
static long stamp_request(unsigned char *req, enum wire wire, long i, long size)
{
	uint32_t hi = htonl((uint32_t)((uint64_t)i >> 32)), lo = htonl((uint32_t)i);
	uint16_t flags = htons(SOCKPERF_PING);
	uint32_t len = htonl((uint32_t)size);

	if (wire == WIRE_HELLO) {
		memcpy(req, "HELLO ", 6);
		memcpy(req + 8, &i, sizeof(i));	/* echoed: a late reply cannot pass */
		return 6;
	}
	memcpy(req, &hi, 4);
	memcpy(req + 4, &lo, 4);
	memcpy(req + 8, &flags, 2);
	memcpy(req + 10, &len, 4);
	return SOCKPERF_HEADER;
}

/* Whether @rep (@n bytes) is the answer to @req of @size bytes. */
static int is_reply(const unsigned char *rep, ssize_t n, const unsigned char *req, long size,
		    enum wire wire)
{
	uint16_t flags = htons(SOCKPERF_PONG);

	if (n != size)
		return 0;
	if (wire == WIRE_HELLO)
		return !memcmp(rep, "GOT IT", 6) && !memcmp(rep + 6, req + 6, (size_t)size - 6);
	return !memcmp(rep, req, 8) && !memcmp(rep + 8, &flags, 2) &&
	       !memcmp(rep + 10, req + 10, 4);
}

static uint64_t clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The nearest-rank percentile @p (0..100) of @n sorted values. */
static uint64_t nearest_rank(const uint64_t *v, long n, double p)
{
	long rank = (long)(p / 100.0 * (double)n + 0.999999);

	if (rank < 1)
		rank = 1;
	return v[rank - 1];
}

int main(int argc, char **argv)
{
	unsigned char req[MAX_SIZE], rep[MAX_SIZE + 1];
	struct timeval tmo = { .tv_sec = 0, .tv_usec = 200000 };
	struct sockaddr_in to = { .sin_family = AF_INET };
	long size, count, got = 0, timeouts = 0, bad = 0, i;
	uint64_t *rtt, t0;
	cpu_set_t set;
	struct sockaddr_in from;
	socklen_t from_len;
	enum wire wire = WIRE_HELLO;
	int fd, cpu, unconnected = 0;
	ssize_t n;

	if (argc < 6 || argc > 8) {
		fprintf(stderr, "usage: hello-rtt-probe ADDR PORT SIZE COUNT CPU "
			"[hello|sockperf [connected|unconnected]]\n");
		return 2;
	}
	if (argc >= 7 && !strcmp(argv[6], "sockperf")) {
		wire = WIRE_SOCKPERF;
	} else if (argc >= 7 && strcmp(argv[6], "hello")) {
		fprintf(stderr, "hello-rtt-probe: wire must be hello or sockperf\n");
		return 2;
	}
	if (argc == 8 && !strcmp(argv[7], "unconnected")) {
		unconnected = 1;
	} else if (argc == 8 && strcmp(argv[7], "connected")) {
		fprintf(stderr, "hello-rtt-probe: socket must be connected or unconnected\n");
		return 2;
	}
	size = strtol(argv[3], NULL, 10);
	count = strtol(argv[4], NULL, 10);
	cpu = (int)strtol(argv[5], NULL, 10);
	to.sin_port = htons((uint16_t)strtol(argv[2], NULL, 10));
	if (inet_pton(AF_INET, argv[1], &to.sin_addr) != 1 || size < 6 || size > MAX_SIZE ||
	    count < 1 || count > MAX_COUNT || size < stamp_request(req, wire, 0, size)) {
		fprintf(stderr, "hello-rtt-probe: bad address, size (6..1472, 14 for sockperf) "
			"or count\n");
		return 2;
	}
	if (cpu >= 0) {
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) < 0) {
			perror("sched_setaffinity");
			return 1;
		}
	}
	rtt = calloc((size_t)count, sizeof(*rtt));
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (!rtt || fd < 0 ||
	    (!unconnected && connect(fd, (struct sockaddr *)&to, sizeof(to)) < 0) ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof(tmo)) < 0) {
		perror("hello-rtt-probe: socket");
		return 1;
	}
	memset(req, 0, sizeof(req));
	for (i = 0; i < count; i++) {
		stamp_request(req, wire, i, size);
		t0 = clock_ns();
		if (sendto(fd, req, (size_t)size, 0, unconnected ? (struct sockaddr *)&to : NULL,
			   unconnected ? sizeof(to) : 0) != size) {
			perror("hello-rtt-probe: send");
			return 1;
		}
		from_len = sizeof(from);
		n = recvfrom(fd, rep, sizeof(rep), 0, unconnected ? (struct sockaddr *)&from : NULL,
			     unconnected ? &from_len : NULL);
		if (n >= 0 && unconnected && (from.sin_port != to.sin_port ||
					      from.sin_addr.s_addr != to.sin_addr.s_addr)) {
			bad++;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			timeouts++;
			continue;
		}
		if (!is_reply(rep, n, req, size, wire)) {
			bad++;
			continue;
		}
		rtt[got++] = clock_ns() - t0;
	}
	qsort(rtt, (size_t)got, sizeof(*rtt), by_value);
	printf("count %ld\ntimeouts %ld\nbad %ld\n", got, timeouts, bad);
	if (got)
		printf("p50_ns %llu\np99_ns %llu\n",
		       (unsigned long long)nearest_rank(rtt, got, 50.0),
		       (unsigned long long)nearest_rank(rtt, got, 99.0));
	close(fd);
	free(rtt);
	return 0;
}
