// SPDX-License-Identifier: MIT
/*
 * HELLO server on one io_uring (liburing).
 *
 * Receive: one multishot IORING_OP_RECVMSG whose datagrams land in buffers the
 * kernel picks from a provided-buffer ring (recv=multishot-bufring).  Where the
 * kernel refuses the buffer ring or the multishot flag (-EINVAL), a few plain
 * recvmsg SQEs, each with a buffer of its own, are kept armed instead
 * (recv=recvmsg).
 *
 * Reply: a sendmsg SQE from the very buffer the request arrived in (rewritten in
 * place, same length).  The buffer stays the reply's until its CQE arrives and
 * is then handed back (to the buffer ring, or re-armed as a recvmsg).  Anything
 * that is not a valid request is dropped and its buffer recycled at once.
 *
 * --sqpoll: IORING_SETUP_SQPOLL, the kernel's SQ thread (iou-sqp-PID, a thread
 * of this process) submits; --sq-cpu pins it (IORING_SETUP_SQ_AFF), --sq-idle-ms
 * is its sq_thread_idle.  The user side then busy-polls the CQ ring and enters
 * the kernel only when the SQ thread has gone to sleep (IORING_SQ_NEED_WAKEUP,
 * which liburing's io_uring_submit checks), or to wait for a completion after
 * having seen none for sq-idle-ms (the server is idle; nothing is on the
 * request path then).
 *
 * Without SQPOLL the ring is set up SINGLE_ISSUER | DEFER_TASKRUN where the
 * kernel has them (taskrun=defer): completions are run when we wait, in our own
 * context.  The wait asks for the CQEs of the replies in flight plus one, so a
 * ping-pong costs one io_uring_enter per request.
 *
 * Stopping: SIGTERM and SIGINT are blocked and read from a signalfd
 * (hb_stop_signalfd) through the ring, so a stop is a completion like any
 * other and is never lost.  Before exiting, every request on the socket is
 * cancelled and reaped: a ring torn down with requests armed releases the
 * socket (and the port) only later.
 *
 * --force-recvmsg takes the plain recvmsg path even where multishot works (so
 * that the fallback is tested here too).
 *
 * --probe sets the ring up as it would serve and exits: 0 when io_uring works
 * here, else 1 with the reason on stderr.
 *
 * Startup prints one line "recv=METHOD submit=enter|sqpoll ...", then READY.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hb_server.h"
#include "hello_proto.h"

#define NSLOTS		1024		/* buffers; a power of two (buffer ring) */
#define BUF_SIZE	2048		/* header + name + the largest request + 1 */
/*
 * Plain recvmsg requests armed at once: each waits on the socket, and every
 * datagram wakes them all, so a few are enough and many cost dearly.
 */
#define RECV_ARMED	16
#define SQ_ENTRIES	512
#define CQ_ENTRIES	4096		/* > every recv and send in flight */
#define CQE_BATCH	64
#define BGID		0
#define PROBE_WAIT_MS	100		/* for a refused multishot recvmsg's CQE */
#define IDLE_CHECK	1024		/* empty CQ polls between clock reads */
#define MAX_ERRORS	10000
#define QUIESCE_MS	2000		/* bound on draining at exit */

enum op { OP_RECV_MS = 1, OP_RECV, OP_SEND, OP_SIGNAL, OP_CANCEL };

#define UD(op, idx)	(((uint64_t)(op) << 32) | (uint32_t)(idx))
#define UD_OP(ud)	((unsigned int)((ud) >> 32))
#define UD_IDX(ud)	((unsigned int)((ud) & 0xffffffffu))

struct slot {
	struct msghdr msg;		/* recvmsg (plain mode) or sendmsg */
	struct iovec iov;
	struct sockaddr_storage peer;	/* plain mode: the sender */
};

struct server {
	struct io_uring ring;
	int fd;
	int sfd;
	int sqpoll;
	int multishot;
	int rearm;			/* multishot ended: arm it again */
	unsigned int free_bufs;		/* buffers the kernel may fill */
	unsigned int errors;		/* receive errors in a row */
	unsigned int inflight;		/* requests holding the socket */
	unsigned int sends;		/* replies whose CQE is still to come */
	int defer_taskrun;
	int stopping;
	int failed;
	unsigned int sq_idle_ms;
	char *bufs;
	struct io_uring_buf_ring *br;
	size_t br_size;
	struct msghdr ms_msg;		/* multishot template: name room only */
	struct slot slots[NSLOTS];
	struct signalfd_siginfo si;
};

static char *slot_buf(struct server *s, unsigned int idx)
{
	return s->bufs + (size_t)idx * BUF_SIZE;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A free SQE; when the SQ is full, what is queued is submitted first. */
static struct io_uring_sqe *get_sqe(struct server *s)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);

	if (!sqe) {
		io_uring_submit(&s->ring);
		if (s->sqpoll)
			io_uring_sqring_wait(&s->ring);	/* SQ thread frees it */
		sqe = io_uring_get_sqe(&s->ring);
	}
	return sqe;
}

/* A receive that fails at once for ever must not spin the server for ever. */
static void count_error(struct server *s, int res)
{
	if (res >= 0) {
		s->errors = 0;
		return;
	}
	if (++s->errors > MAX_ERRORS) {
		fprintf(stderr, "receive keeps failing: %s\n", strerror(-res));
		s->failed = 1;
		s->stopping = 1;
	}
}

static int is_request(const char *p, size_t n)
{
	return n >= HELLO_MIN_REQUEST && n <= HELLO_MAX_REQUEST &&
	       memcmp(p, HELLO_MAGIC, HELLO_MAGIC_LEN) == 0;
}

static socklen_t addr_len(const struct sockaddr *sa)
{
	return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
					    sizeof(struct sockaddr_in);
}

static int queue_send(struct server *s, unsigned int idx, void *name,
		      socklen_t namelen, void *data, size_t len)
{
	struct slot *sl = &s->slots[idx];
	struct io_uring_sqe *sqe = get_sqe(s);

	if (!sqe)
		return -EBUSY;
	memcpy(data, HELLO_REPLY, HELLO_REPLY_LEN);
	memset(&sl->msg, 0, sizeof(sl->msg));
	sl->iov.iov_base = data;
	sl->iov.iov_len = len;
	sl->msg.msg_name = name;
	sl->msg.msg_namelen = namelen;
	sl->msg.msg_iov = &sl->iov;
	sl->msg.msg_iovlen = 1;
	io_uring_prep_sendmsg(sqe, s->fd, &sl->msg, 0);
	io_uring_sqe_set_data64(sqe, UD(OP_SEND, idx));
	s->inflight++;
	s->sends++;
	return 0;
}

/* ---- provided-buffer ring and multishot recvmsg ---- */

static void recycle(struct server *s, unsigned int bid)
{
	io_uring_buf_ring_add(s->br, slot_buf(s, bid), BUF_SIZE, bid,
			      io_uring_buf_ring_mask(NSLOTS), 0);
	io_uring_buf_ring_advance(s->br, 1);
	s->free_bufs++;
}

static int setup_buf_ring(struct server *s)
{
	struct io_uring_buf_reg reg;
	unsigned int i;
	int ret;

	s->br_size = NSLOTS * sizeof(struct io_uring_buf);
	s->br = mmap(NULL, s->br_size, PROT_READ | PROT_WRITE,
		     MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (s->br == MAP_FAILED) {
		s->br = NULL;
		return -errno;
	}
	io_uring_buf_ring_init(s->br);
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (unsigned long)s->br;
	reg.ring_entries = NSLOTS;
	reg.bgid = BGID;
	ret = io_uring_register_buf_ring(&s->ring, &reg, 0);
	if (ret < 0) {
		munmap(s->br, s->br_size);
		s->br = NULL;
		return ret;
	}
	for (i = 0; i < NSLOTS; i++)
		io_uring_buf_ring_add(s->br, slot_buf(s, i), BUF_SIZE, i,
				      io_uring_buf_ring_mask(NSLOTS), i);
	io_uring_buf_ring_advance(s->br, NSLOTS);
	s->free_bufs = NSLOTS;
	return 0;
}

static void drop_buf_ring(struct server *s)
{
	if (!s->br)
		return;
	io_uring_unregister_buf_ring(&s->ring, BGID);
	munmap(s->br, s->br_size);
	s->br = NULL;
}

static int arm_multishot(struct server *s)
{
	struct io_uring_sqe *sqe = get_sqe(s);

	if (!sqe)
		return -EBUSY;
	memset(&s->ms_msg, 0, sizeof(s->ms_msg));
	s->ms_msg.msg_namelen = sizeof(struct sockaddr_in6);
	io_uring_prep_recvmsg_multishot(sqe, s->fd, &s->ms_msg, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID;
	io_uring_sqe_set_data64(sqe, UD(OP_RECV_MS, 0));
	s->rearm = 0;
	s->inflight++;
	return 0;
}

static void on_multishot(struct server *s, struct io_uring_cqe *cqe)
{
	struct io_uring_recvmsg_out *out;
	unsigned int bid, len;
	char *buf, *payload;

	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		s->rearm = 1;	/* ended (error, no buffer left): arm again */
		s->inflight--;
	}
	if (cqe->res != -ENOBUFS)
		count_error(s, cqe->res);
	if (!(cqe->flags & IORING_CQE_F_BUFFER))
		return;
	bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
	if (bid >= NSLOTS)
		return;
	s->free_bufs--;
	buf = slot_buf(s, bid);
	out = io_uring_recvmsg_validate(buf, cqe->res, &s->ms_msg);
	if (!out || cqe->res < 0 || (out->flags & MSG_TRUNC) ||
	    out->namelen > s->ms_msg.msg_namelen)
		goto drop;
	payload = io_uring_recvmsg_payload(out, &s->ms_msg);
	len = io_uring_recvmsg_payload_length(out, cqe->res, &s->ms_msg);
	if (s->stopping || !is_request(payload, len))
		goto drop;
	if (queue_send(s, bid, io_uring_recvmsg_name(out), out->namelen,
		       payload, len) == 0)
		return;
drop:
	recycle(s, bid);
}

/* ---- plain recvmsg, one per slot ---- */

static int arm_recv(struct server *s, unsigned int idx)
{
	struct slot *sl = &s->slots[idx];
	struct io_uring_sqe *sqe = get_sqe(s);

	if (!sqe)
		return -EBUSY;
	memset(&sl->msg, 0, sizeof(sl->msg));
	sl->iov.iov_base = slot_buf(s, idx);
	sl->iov.iov_len = BUF_SIZE;
	sl->msg.msg_name = &sl->peer;
	sl->msg.msg_namelen = sizeof(sl->peer);
	sl->msg.msg_iov = &sl->iov;
	sl->msg.msg_iovlen = 1;
	io_uring_prep_recvmsg(sqe, s->fd, &sl->msg, 0);
	io_uring_sqe_set_data64(sqe, UD(OP_RECV, idx));
	s->inflight++;
	return 0;
}

static void on_recv(struct server *s, unsigned int idx, int res)
{
	struct slot *sl = &s->slots[idx];
	struct sockaddr *peer = (struct sockaddr *)&sl->peer;

	s->inflight--;
	count_error(s, res);
	if (s->stopping)
		return;
	if (res > 0 && !(sl->msg.msg_flags & MSG_TRUNC) &&
	    is_request(slot_buf(s, idx), (size_t)res) &&
	    queue_send(s, idx, peer, addr_len(peer), slot_buf(s, idx),
		       (size_t)res) == 0)
		return;
	arm_recv(s, idx);
}

/* ---- completions ---- */

static int arm_signal(struct server *s)
{
	struct io_uring_sqe *sqe = get_sqe(s);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_read(sqe, s->sfd, &s->si, sizeof(s->si), 0);
	io_uring_sqe_set_data64(sqe, UD(OP_SIGNAL, 0));
	return 0;
}

static void on_cqe(struct server *s, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	unsigned int idx = UD_IDX(ud);

	switch (UD_OP(ud)) {
	case OP_RECV_MS:
		on_multishot(s, cqe);
		break;
	case OP_RECV:
		if (idx < NSLOTS)
			on_recv(s, idx, cqe->res);
		break;
	case OP_SEND:
		/* A vanished client (ICMP unreachable) must not stop the server. */
		if (idx >= NSLOTS)
			break;
		s->inflight--;
		s->sends--;
		if (s->multishot)
			recycle(s, idx);
		else if (!s->stopping)
			arm_recv(s, idx);
		break;
	case OP_SIGNAL:
		if (cqe->res == (int)sizeof(s->si) || cqe->res == -ECANCELED)
			s->stopping = 1;
		else
			arm_signal(s);
		break;
	}
}

/*
 * In-flight requests hold the socket, and a ring torn down with some still
 * armed releases it only later, from a kernel worker: the port would stay
 * bound after we exit.  Cancel them and wait for their completions.
 */
static unsigned int reap(struct server *s);

static void quiesce(struct server *s)
{
	struct __kernel_timespec ts = { .tv_nsec = 10 * 1000000L };
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	uint64_t until = now_ms() + QUIESCE_MS;

	s->stopping = 1;
	sqe = get_sqe(s);
	if (!sqe)
		return;
	io_uring_prep_cancel_fd(sqe, s->fd, IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data64(sqe, UD(OP_CANCEL, 0));
	io_uring_submit(&s->ring);
	while (s->inflight && now_ms() < until) {
		if (io_uring_wait_cqe_timeout(&s->ring, &cqe, &ts) == 0)
			reap(s);
	}
	if (s->inflight)
		fprintf(stderr, "%u requests still in flight at exit\n",
			s->inflight);
}

static unsigned int reap(struct server *s)
{
	struct io_uring_cqe *cqes[CQE_BATCH];
	unsigned int i, n;

	n = io_uring_peek_batch_cqe(&s->ring, cqes, CQE_BATCH);
	for (i = 0; i < n; i++)
		on_cqe(s, cqes[i]);
	io_uring_cq_advance(&s->ring, n);
	/* Out of buffers (-ENOBUFS): arm again once one has come back. */
	if (s->rearm && s->multishot && s->free_bufs && !s->stopping)
		arm_multishot(s);
	return n;
}

static int serve_enter(struct server *s)
{
	unsigned int wait_nr;
	int ret;

	/*
	 * The CQ has been emptied: wait for the CQEs of the replies in flight
	 * (a UDP send mostly completes inside this very call) and one event
	 * more, so a ping-pong costs one io_uring_enter per request, not two.
	 */
	while (!s->stopping) {
		wait_nr = 1 + s->sends;
		ret = io_uring_submit_and_wait(&s->ring, wait_nr);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN &&
		    ret != -EBUSY) {
			fprintf(stderr, "io_uring_submit_and_wait: %s\n",
				strerror(-ret));
			return 1;
		}
		while (reap(s))
			;
	}
	return s->failed;
}

static int serve_sqpoll(struct server *s)
{
	struct io_uring_cqe *cqe;
	unsigned int empty = 0;
	uint64_t last = now_ms(), t;
	int busy = 0, ret;

	while (!s->stopping) {
		if (io_uring_sq_ready(&s->ring))
			io_uring_submit(&s->ring);	/* enters only to wake */
		if (reap(s)) {
			busy = 1;
			continue;
		}
		if (++empty < IDLE_CHECK)
			continue;
		empty = 0;
		t = now_ms();	/* vDSO: no syscall */
		if (busy) {
			busy = 0;
			last = t;
			continue;
		}
		if (t - last < s->sq_idle_ms)
			continue;
		/* Idle as long as the SQ thread may be: sleep until work comes. */
		ret = io_uring_wait_cqe(&s->ring, &cqe);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN) {
			fprintf(stderr, "io_uring_wait_cqe: %s\n", strerror(-ret));
			return 1;
		}
		last = now_ms();
	}
	return s->failed;
}

static int serve(struct server *s)
{
	return s->sqpoll ? serve_sqpoll(s) : serve_enter(s);
}

/* ---- setup ---- */

static int check_ops(struct io_uring *ring)
{
	static const int needed[] = { IORING_OP_RECVMSG, IORING_OP_SENDMSG,
				      IORING_OP_READ };
	struct io_uring_probe *probe = io_uring_get_probe_ring(ring);
	unsigned int i;
	int ok = 1;

	if (!probe)
		return -ENOMEM;
	for (i = 0; i < sizeof(needed) / sizeof(needed[0]); i++)
		ok &= io_uring_opcode_supported(probe, needed[i]) != 0;
	io_uring_free_probe(probe);
	return ok ? 0 : -EOPNOTSUPP;
}

static int setup_ring(struct server *s, int sq_cpu)
{
	struct io_uring_params p;
	int ret;

	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = CQ_ENTRIES;
	if (s->sqpoll) {
		p.flags |= IORING_SETUP_SQPOLL;
		p.sq_thread_idle = s->sq_idle_ms;
		if (sq_cpu >= 0) {
			p.flags |= IORING_SETUP_SQ_AFF;
			p.sq_thread_cpu = (unsigned int)sq_cpu;
		}
	} else {
		/* Completions run when we wait for them, in our own context. */
		p.flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	}
	ret = io_uring_queue_init_params(SQ_ENTRIES, &s->ring, &p);
	if (ret == -EINVAL && !s->sqpoll) {
		p.flags &= ~(IORING_SETUP_SINGLE_ISSUER |
			     IORING_SETUP_DEFER_TASKRUN);
		ret = io_uring_queue_init_params(SQ_ENTRIES, &s->ring, &p);
	}
	s->defer_taskrun = ret == 0 && (p.flags & IORING_SETUP_DEFER_TASKRUN);
	if (ret < 0) {
		fprintf(stderr, "io_uring_queue_init%s: %s\n",
			s->sqpoll ? " (SQPOLL)" : "", strerror(-ret));
		return ret;
	}
	ret = check_ops(&s->ring);
	if (ret < 0) {
		fprintf(stderr, "io_uring lacks recvmsg/sendmsg/read: %s\n",
			strerror(-ret));
		io_uring_queue_exit(&s->ring);
	}
	return ret;
}

/*
 * Multishot recvmsg into the buffer ring if the kernel takes it: a refusal is
 * -EINVAL from the registration, or an immediate -EINVAL completion.
 */
static int setup_receive(struct server *s, int force_recvmsg)
{
	struct __kernel_timespec ts = { .tv_nsec = PROBE_WAIT_MS * 1000000L };
	struct io_uring_cqe *cqe;
	unsigned int i;
	int ret;

	s->multishot = !force_recvmsg && setup_buf_ring(s) == 0;
	if (s->multishot) {
		ret = arm_multishot(s);
		if (ret == 0)
			ret = io_uring_submit(&s->ring);
		if (ret < 0)
			return ret;
		ret = io_uring_wait_cqe_timeout(&s->ring, &cqe, &ts);
		if (ret == 0 &&
		    UD_OP(io_uring_cqe_get_data64(cqe)) == OP_RECV_MS &&
		    cqe->res == -EINVAL) {
			io_uring_cqe_seen(&s->ring, cqe);
			drop_buf_ring(s);
			s->multishot = 0;
		}
	}
	if (!s->multishot) {
		for (i = 0; i < RECV_ARMED; i++) {
			ret = arm_recv(s, i);
			if (ret < 0)
				return ret;
		}
	}
	ret = arm_signal(s);
	if (ret == 0)
		ret = io_uring_submit(&s->ring);
	return ret < 0 ? ret : 0;
}

struct args {
	struct server *s;
	int sq_cpu;
	int probe;
	int force_recvmsg;
};

static int option(int key, const char *arg, void *ctx)
{
	struct args *a = ctx;
	unsigned long val;

	switch (key) {
	case 'q':
		a->s->sqpoll = 1;
		return 0;
	case 'c':
		if (!hb_parse_ulong(arg, 0, 4095, &val)) {
			fprintf(stderr, "--sq-cpu must be a CPU number\n");
			return -1;
		}
		a->sq_cpu = (int)val;
		return 0;
	case 'i':
		if (!hb_parse_ulong(arg, 0, 3600000, &val)) {
			fprintf(stderr, "--sq-idle-ms must be 0..3600000\n");
			return -1;
		}
		a->s->sq_idle_ms = (unsigned int)val;
		return 0;
	case 'P':
		a->probe = 1;
		return 0;
	case 'R':
		a->force_recvmsg = 1;
		return 0;
	}
	return -1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "sqpoll", no_argument, NULL, 'q' },
		{ "sq-cpu", required_argument, NULL, 'c' },
		{ "sq-idle-ms", required_argument, NULL, 'i' },
		{ "probe", no_argument, NULL, 'P' },
		{ "force-recvmsg", no_argument, NULL, 'R' },
		{ NULL, 0, NULL, 0 },
	};
	static struct server s;
	struct hb_server hs = {
		.usage = "[--sqpoll] [--sq-cpu N] [--sq-idle-ms N]\n"
			 "       [--force-recvmsg] [--probe]",
	};
	struct args a = { .s = &s, .sq_cpu = -1 };
	int sq_cpu, ret;

	s.sq_idle_ms = 1000;
	ret = hb_server_args(&hs, argc, argv, opts, option, &a);
	if (ret)
		return ret;
	sq_cpu = a.sq_cpu;
	s.bufs = aligned_alloc(4096, (size_t)NSLOTS * BUF_SIZE);
	if (!s.bufs) {
		perror("aligned_alloc");
		return 1;
	}
	s.sfd = hb_stop_signalfd(SFD_CLOEXEC);
	if (s.sfd < 0) {
		perror("signalfd");
		return 1;
	}
	if (setup_ring(&s, sq_cpu) < 0)
		return 1;
	if (a.probe) {
		io_uring_queue_exit(&s.ring);
		return 0;
	}
	s.fd = hb_server_socket(&hs, SOCK_CLOEXEC);
	if (s.fd < 0)
		return 1;
	ret = setup_receive(&s, a.force_recvmsg);
	if (ret < 0) {
		fprintf(stderr, "arming the receive: %s\n", strerror(-ret));
		return 1;
	}
	printf("recv=%s submit=%s", s.multishot ? "multishot-bufring" : "recvmsg",
	       s.sqpoll ? "sqpoll" : "enter");
	if (s.sqpoll && sq_cpu >= 0)
		printf(" sq_cpu=%d", sq_cpu);
	else if (s.sqpoll)
		printf(" sq_cpu=any");
	if (s.sqpoll)
		printf(" sq_idle_ms=%u", s.sq_idle_ms);
	if (s.defer_taskrun)
		printf(" taskrun=defer");
	printf("\nREADY\n");
	fflush(stdout);
	ret = serve(&s);
	quiesce(&s);
	drop_buf_ring(&s);
	io_uring_queue_exit(&s.ring);
	close(s.fd);
	close(s.sfd);
	return ret;
}
