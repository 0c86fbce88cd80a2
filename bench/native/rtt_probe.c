// SPDX-License-Identifier: MIT
/*
 * hello-rtt-probe: a second, deliberately minimal HELLO client, written apart from
 * hello_client.c so that the two can check each other.  It sends COUNT requests of SIZE
 * bytes ("HELLO ", zeros, the request's number at byte 8), one at a time, each after the reply to the one before,
 * blocking in recv() with a 200 ms timeout, timed with CLOCK_MONOTONIC around send and
 * recv, and prints the median and the 99th percentile of the round trips:
 *
 *   hello-rtt-probe ADDR PORT SIZE COUNT CPU      (CPU -1: not pinned)
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
	ssize_t n;
	int fd, cpu;

	if (argc != 6) {
		fprintf(stderr, "usage: hello-rtt-probe ADDR PORT SIZE COUNT CPU\n");
		return 2;
	}
	size = strtol(argv[3], NULL, 10);
	count = strtol(argv[4], NULL, 10);
	cpu = (int)strtol(argv[5], NULL, 10);
	to.sin_port = htons((uint16_t)strtol(argv[2], NULL, 10));
	if (inet_pton(AF_INET, argv[1], &to.sin_addr) != 1 || size < 6 || size > MAX_SIZE ||
	    count < 1 || count > MAX_COUNT) {
		fprintf(stderr, "hello-rtt-probe: bad address, size (6..1472) or count\n");
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
	if (!rtt || fd < 0 || connect(fd, (struct sockaddr *)&to, sizeof(to)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof(tmo)) < 0) {
		perror("hello-rtt-probe: socket");
		return 1;
	}
	memset(req, 0, sizeof(req));
	memcpy(req, "HELLO ", 6);
	for (i = 0; i < count; i++) {
		memcpy(req + 8, &i, sizeof(i));	/* echoed: a late reply cannot pass */
		t0 = clock_ns();
		if (send(fd, req, (size_t)size, 0) != size) {
			perror("hello-rtt-probe: send");
			return 1;
		}
		n = recv(fd, rep, sizeof(rep), 0);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			timeouts++;
			continue;
		}
		if (n != size || memcmp(rep, "GOT IT", 6) || memcmp(rep + 6, req + 6, size - 6)) {
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
