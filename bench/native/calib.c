// SPDX-License-Identifier: MIT
/*
 * hello-calib: machine calibration hot loops.
 *
 *   hello-calib syscall ITERS REPS
 *	ns per syscall(SYS_getppid), one line "syscall_ns N" per repetition
 *   hello-calib pipe ITERS REPS
 *	ns per 1-byte write + read on a pipe within one process (no switch),
 *	one line "pipe_ns N" per repetition
 *   hello-calib pingpong CPU_A CPU_B ITERS REPS
 *	two processes pinned to CPU_A and CPU_B pass one byte back and forth
 *	over two pipes; one line "roundtrip_ns N" per repetition
 *
 * Every repetition is preceded by a warm-up of ITERS / 10 iterations and stops
 * early (reporting what it did) after MAX_REP_NS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_REP_NS 3000000000ULL
#define CHECK_EVERY 256

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "hello-calib: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set);
}

static long parse_long(const char *s, long min)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < min) {
		fprintf(stderr, "hello-calib: bad number '%s'\n", s);
		exit(2);
	}
	return v;
}

/* One step of a loop; returns 0 on success. */
typedef int (*step_fn)(void *ctx);

/* ns per step over up to @iters steps (fewer when MAX_REP_NS runs out). */
static double time_steps(step_fn step, void *ctx, long iters)
{
	uint64_t start = now_ns(), elapsed = 0;
	long i;

	for (i = 0; i < iters; i++) {
		if (step(ctx))
			die("step");
		if (i % CHECK_EVERY == CHECK_EVERY - 1) {
			elapsed = now_ns() - start;
			if (elapsed > MAX_REP_NS) {
				i++;
				break;
			}
		}
	}
	elapsed = now_ns() - start;
	return (double)elapsed / (double)i;
}

static void run_reps(const char *name, step_fn step, void *ctx, long iters,
		     long reps)
{
	long r;

	time_steps(step, ctx, iters / 10 + 1);
	for (r = 0; r < reps; r++)
		printf("%s %.3f\n", name, time_steps(step, ctx, iters));
	fflush(stdout);
}

static int step_syscall(void *ctx)
{
	(void)ctx;
	syscall(SYS_getppid);
	return 0;
}

struct pipes {
	int to_peer[2];
	int from_peer[2];
};

static int step_pipe(void *ctx)
{
	struct pipes *p = ctx;
	char c = 'x';

	if (write(p->to_peer[1], &c, 1) != 1)
		return -1;
	return read(p->to_peer[0], &c, 1) == 1 ? 0 : -1;
}

static int step_roundtrip(void *ctx)
{
	struct pipes *p = ctx;
	char c = 'x';

	if (write(p->to_peer[1], &c, 1) != 1)
		return -1;
	return read(p->from_peer[0], &c, 1) == 1 ? 0 : -1;
}

/* The peer echoes every byte until its input reaches end of file. */
static void echo_peer(struct pipes *p, int cpu)
{
	char c;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	close(p->to_peer[1]);
	close(p->from_peer[0]);
	if (pin(cpu))
		die("sched_setaffinity (peer)");
	while (read(p->to_peer[0], &c, 1) == 1) {
		if (write(p->from_peer[1], &c, 1) != 1)
			_exit(1);
	}
	_exit(0);
}

static int cmd_pingpong(int cpu_a, int cpu_b, long iters, long reps)
{
	struct pipes p;
	int status;
	pid_t pid;

	if (pipe(p.to_peer) || pipe(p.from_peer))
		die("pipe");
	if (pin(cpu_a))
		die("sched_setaffinity");
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0)
		echo_peer(&p, cpu_b);
	close(p.to_peer[0]);
	close(p.from_peer[1]);
	run_reps("roundtrip_ns", step_roundtrip, &p, iters, reps);
	close(p.to_peer[1]);
	if (waitpid(pid, &status, 0) < 0)
		die("waitpid");
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

static int cmd_pipe(long iters, long reps)
{
	struct pipes p;

	if (pipe(p.to_peer))
		die("pipe");
	run_reps("pipe_ns", step_pipe, &p, iters, reps);
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: hello-calib syscall ITERS REPS\n"
		"       hello-calib pipe ITERS REPS\n"
		"       hello-calib pingpong CPU_A CPU_B ITERS REPS\n");
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "syscall")) {
		run_reps("syscall_ns", step_syscall, NULL, parse_long(argv[2], 1),
			 parse_long(argv[3], 1));
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "pipe"))
		return cmd_pipe(parse_long(argv[2], 1), parse_long(argv[3], 1));
	if (argc == 6 && !strcmp(argv[1], "pingpong"))
		return cmd_pingpong(parse_long(argv[2], 0), parse_long(argv[3], 0),
				    parse_long(argv[4], 1), parse_long(argv[5], 1));
	usage();
	return 2;
}
