"""Syscalls that returned EAGAIN, counted apart from the request path: the filtered
raw_syscalls:sys_exit counter on a C loop of known numbers of successful and EAGAIN calls
(exact counts, in threads and child processes born during the phase too), the per-request
figures and metrics made of them, the hellobench/2 → 3 migration, and a real counting
phase of spin-c.  Counts only, no timing thresholds (the machine is shared)."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import PROJECT_ROOT
from bench.impl.api import Accounting
from bench.metrics import perf, syscalls
from bench.metrics.probe import PhaseMetrics, PhaseProbe
from bench.results.metrics import BY_NAME
from bench.results.migrate import v2_to_v3
from bench.results.rows import Accounting as RowAccounting
from bench.results.rows import PerRequest, PhaseRow
from bench.results.run import RESULTS_NAME, Run
from bench.results.schema import SCHEMA_ID, ResultsError, validate
from bench.runner.phase import per_request
from tests.bench_runs import bench_run

# The loop: N_OK getppid() in the main thread, then empty recv(MSG_DONTWAIT) on a bound UDP
# socket: N_MAIN in the main thread, N_THREAD in a thread and N_CHILD in a child process,
# both born after the counters were opened.  Nothing else it does can return EAGAIN: the
# main thread waits for the thread through a pipe (a futex wait may return EAGAIN).
LOOP_C = r"""
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int fd;
static int done[2];
static long n_thread;

static long polls(long n)
{
	char buf[64];
	long eagain = 0;

	for (long i = 0; i < n; i++)
		if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) < 0 && errno == EAGAIN)
			eagain++;
	return eagain;
}

static void *worker(void *arg)
{
	char c = polls(n_thread) == n_thread ? 'y' : 'n';

	(void)arg;
	if (write(done[1], &c, 1) != 1)
		abort();
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	long n_ok, n_main, n_child;
	pthread_t t;
	int status, ok;
	pid_t pid;
	char c;

	if (argc != 5)
		return 2;
	n_ok = atol(argv[1]);
	n_main = atol(argv[2]);
	n_thread = atol(argv[3]);
	n_child = atol(argv[4]);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || pipe(done))
		return 2;
	if (write(1, "ready\n", 6) != 6 || read(0, &c, 1) != 1)
		return 2;
	for (long i = 0; i < n_ok; i++)
		getppid();
	ok = polls(n_main) == n_main;
	if (pthread_create(&t, NULL, worker, NULL) || read(done[0], &c, 1) != 1)
		return 2;
	ok &= c == 'y';
	pid = fork();
	if (pid == 0)
		_exit(polls(n_child) == n_child ? 0 : 1);
	ok &= waitpid(pid, &status, 0) == pid && WIFEXITED(status) && !WEXITSTATUS(status);
	if (write(1, ok ? "done\n" : "fail\n", 5) != 5)
		return 2;
	while (read(0, &c, 1) > 0)
		;
	return 0;
}
"""

N_OK, N_MAIN, N_THREAD, N_CHILD = 3000, 5000, 4000, 2000
N_EAGAIN = N_MAIN + N_THREAD + N_CHILD
SLACK = 100  # the loop's own setup: thread and process creation, the pipe, the handshake


def _need_counting() -> None:
    for event in (syscalls.SYS_ENTER, syscalls.SYS_EXIT):
        tp, why = syscalls.tracepoint_id(event)
        if tp is None:
            pytest.skip(why)
    try:
        with syscalls.EagainCounter([os.getpid()]):
            pass
    except OSError as e:
        pytest.skip(f"filtered tracepoint counter refused: {e}")


@pytest.fixture(scope="module")
def loop_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    folder = tmp_path_factory.mktemp("eagain")
    (folder / "loop.c").write_text(LOOP_C)
    binary = folder / "loop"
    subprocess.run([cc, "-O1", "-pthread", "-o", str(binary), str(folder / "loop.c")], check=True)
    return binary


class Loop:
    """The C loop, started and waiting for its go."""

    def __init__(self, binary: Path) -> None:
        argv = [str(binary), *(str(n) for n in (N_OK, N_MAIN, N_THREAD, N_CHILD))]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.pid = self.proc.pid
        assert self._line() == b"ready"

    def _line(self) -> bytes:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def run(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"g")
        self.proc.stdin.flush()
        assert self._line() == b"done"  # every poll found nothing

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def loop(loop_binary: Path) -> Iterator[Loop]:
    _need_counting()
    running = Loop(loop_binary)
    try:
        yield running
    finally:
        running.close()


# -- the counter ---------------------------------------------------------------------------


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the number checked is x86-64's")
def test_the_filter_ioctl_is_perfs() -> None:
    assert perf.PERF_EVENT_IOC_SET_FILTER == 0x40082406  # _IOW('$', 6, char *)
    assert syscalls.EAGAIN_FILTER == "ret == -11 || (id == 271 && ret == 0)"


def test_counter_counts_exactly_the_polls_that_found_nothing(loop: Loop) -> None:
    with (
        syscalls.SyscallCounter([loop.pid]) as every,
        syscalls.EagainCounter([loop.pid]) as eagain,
    ):
        loop.run()
        eagain_count, all_count = eagain.stop(), every.stop()
    assert eagain_count == N_EAGAIN
    assert N_OK <= all_count - eagain_count < N_OK + SLACK


@pytest.mark.parametrize("party", ["server", "client"])
def test_the_probe_counts_them_apart_for_each_party(loop: Loop, party: str) -> None:
    server = (loop.pid,) if party == "server" else ()
    client = loop.pid if party == "client" else None
    probe = PhaseProbe(Accounting(pids=server), client_pid=client)
    probe.start()
    loop.run()
    m = probe.stop()
    total = getattr(m, f"{party}_syscalls")
    eagain = getattr(m, f"{party}_eagain_syscalls")
    assert eagain == N_EAGAIN
    assert total is not None and N_OK <= total - eagain < N_OK + SLACK
    other = "client" if party == "server" else "server"
    assert getattr(m, f"{other}_eagain_syscalls") is None


def test_a_refused_filter_leaves_the_count_unknown_with_its_reason(
    loop: Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(syscalls, "EAGAIN_FILTER", "ret === nothing")
    probe = PhaseProbe(Accounting(pids=(loop.pid,)))
    probe.start()
    loop.run()
    m = probe.stop()
    assert m.server_eagain_syscalls is None  # not measured, never 0
    assert m.server_syscalls is not None and m.server_syscalls >= N_OK + N_EAGAIN
    (note,) = [n for n in m.notes if "server EAGAIN syscalls not measurable" in n]
    assert "'ret === nothing' refused" in note


# -- per request and the metrics ------------------------------------------------------------


def _metrics(**kw: object) -> PhaseMetrics:
    base = PhaseMetrics(
        wall_s=1.0, server_syscalls=16_000, client_syscalls=11_000, server_ctx_switches=0,
        client_ctx_switches=0, kernel_thread_ctx_switches=None, system_ctx_switches=10,
        cpu_ns={"total": 1e9}, cpu_ns_by_cpu={}, server_cpu_ns=None, client_cpu_ns=None,
        bpf_run_ns=None, bpf_run_cnt=None, server_eagain_syscalls=14_000,
        client_eagain_syscalls=9_000,
    )  # fmt: skip
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def test_per_request_divides_the_eagain_counts() -> None:
    pr = per_request(_metrics(), 1000)
    assert (pr.server_eagain_syscalls, pr.client_eagain_syscalls) == (14.0, 9.0)
    unknown = per_request(_metrics(server_eagain_syscalls=None), 1000)
    assert unknown.server_eagain_syscalls is None
    assert per_request(_metrics(), 0).client_eagain_syscalls is None


def _row(pr: PerRequest, *, server_process: bool = True) -> PhaseRow:
    return PhaseRow(
        env="host", impl="x", kind="userspace", mode="pingpong", size=64, topology="lo",
        trial=0, status="ok", requests=1000, replies=1000, per_request=pr,
        accounting=RowAccounting(server_process=server_process),
    )  # fmt: skip


def _read(name: str, row: PhaseRow) -> float | None:
    return BY_NAME[name].read(row)


def test_request_path_syscalls_are_the_syscalls_less_the_polls() -> None:
    row = _row(per_request(_metrics(), 1000))
    assert _read("server_request_syscalls_per_req", row) == 2.0
    assert _read("client_request_syscalls_per_req", row) == 2.0
    assert _read("request_syscalls_per_req", row) == 4.0
    assert _read("server_eagain_per_req", row) == 14.0
    assert _read("client_eagain_per_req", row) == 9.0
    assert _read("syscalls_per_req", row) == 27.0  # the existing metric is unchanged


def test_request_path_syscalls_are_unknown_where_the_polls_are() -> None:
    row = _row(per_request(_metrics(client_eagain_syscalls=None), 1000))
    assert _read("server_request_syscalls_per_req", row) == 2.0
    assert _read("client_request_syscalls_per_req", row) is None
    assert _read("request_syscalls_per_req", row) is None


def test_an_impl_without_a_server_process_makes_no_request_syscalls() -> None:
    m = _metrics(server_syscalls=None, server_eagain_syscalls=None)
    row = _row(per_request(m, 1000), server_process=False)
    assert _read("server_request_syscalls_per_req", row) is None
    assert _read("request_syscalls_per_req", row) == 2.0


# -- results files -------------------------------------------------------------------------

FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "runs"
SHARED_CRASH = Path("/work/shared/fixtures/run-crash-20261207") / RESULTS_NAME


def _eagain_fields(run: Run) -> set[tuple[float | None, float | None]]:
    return {
        (r.per_request.server_eagain_syscalls, r.per_request.client_eagain_syscalls)
        for r in run.rows
    }


def test_a_version_2_file_is_migrated_with_the_polls_unknown() -> None:
    raw = json.loads((FIXTURES / "fixture-base" / RESULTS_NAME).read_text())
    assert raw["schema"] == "hellobench/2"
    run = Run.from_json(raw)
    assert _eagain_fields(run) == {(None, None)}
    assert run.extra["migrated"]["from"] == "hellobench/2"
    assert "server_eagain_syscalls" in run.extra["migrated"]["note"]
    assert {r.per_request.server_syscalls for r in run.rows} == {
        r["per_request"]["server_syscalls"] for r in raw["results"]
    }
    saved = run.to_json()
    assert validate(saved) == SCHEMA_ID == "hellobench/6"
    for row in saved["results"]:
        assert row["per_request"]["server_eagain_syscalls"] is None


def test_a_version_1_file_still_says_it_was_version_1() -> None:
    run = Run.load(FIXTURES / "legacy-v1")
    migrated = run.extra["migrated"]
    assert migrated["from"] == "hellobench/1"
    assert "manifests" in migrated["note"] and "EAGAIN" in migrated["note"]
    assert _eagain_fields(run) == {(None, None)}


def test_the_v2_migration_leaves_its_input_alone() -> None:
    raw = json.loads((FIXTURES / "fixture-base" / RESULTS_NAME).read_text())
    before = json.dumps(raw, sort_keys=True)
    v2_to_v3(raw)
    assert json.dumps(raw, sort_keys=True) == before


def test_version_3_requires_the_eagain_counts() -> None:
    document = Run.load(FIXTURES / "fixture-base").to_json()
    del document["results"][0]["per_request"]["client_eagain_syscalls"]
    with pytest.raises(ResultsError, match="client_eagain_syscalls"):
        validate(document)


@pytest.mark.parametrize(
    "path",
    [PROJECT_ROOT / "results" / "baseline" / RESULTS_NAME, SHARED_CRASH],
    ids=["baseline", "run-crash-20261207"],
)
def test_real_files_still_load(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} not here")
    run = Run.load(path)
    assert run.rows and _eagain_fields(run) == {(None, None)}


# -- a real counting phase -----------------------------------------------------------------


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (perf on tracepoints)")
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two CPUs")
def test_spin_c_request_path_is_two_syscalls(tmp_path: Path) -> None:
    args = ["--impl", "spin-c", "--mode", "pingpong", "--client-wait", "spin"]
    args += ["--duration", "1", "--warmup", "0.1", "--trials", "1", "--no-calibrate"]
    args += ["--env", "host", "--server-cpu", "1", "--client-cpu", "0"]
    (row,) = bench_run(tmp_path, args).rows
    assert row.ok and row.counted is not None and row.counted.replies > 0
    pr = row.per_request
    # recvfrom that found a request, sendto of its reply; every other recvfrom was empty
    assert _read("server_request_syscalls_per_req", row) == pytest.approx(2.0, abs=0.1)
    assert pr.server_eagain_syscalls is not None and pr.server_eagain_syscalls > 0
    # The spinning client polls too (empty recv: EAGAIN; empty zero-timeout ppoll: 0):
    # its send and the recv that found the reply remain.
    client = _read("client_request_syscalls_per_req", row)
    assert client == pytest.approx(2.0, abs=0.1)
    assert pr.client_eagain_syscalls is not None and pr.client_eagain_syscalls > 0
