"""The kernel-module impls (kmod-kthread, kmod-softirq).

On the host: both modules build against the installed distro kernel headers without a
single warning (W=1), builds are cached and happen outside the repository, and the
controller logic that needs no loaded module.  Everything that loads a module runs in a
QEMU guest: ``test_in_guest`` (marked vm) boots one and runs this file's ``test_guest_*``
tests inside it, where they are not skipped.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import importlib
import json
import multiprocessing
import multiprocessing.queues
import multiprocessing.sharedctypes
import multiprocessing.synchronize
import os
import platform
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import PROJECT_ROOT
from bench.fuzz.spoofed import ones_sum
from bench.host.capabilities import HostCapabilities, capabilities
from bench.host.kernel_log import scan_kernel_log
from bench.impl.api import ImplError, ServerConfig
from bench.impl.manifest import load_manifests
from bench.impl.registry import discover
from bench.kmod import build as kmod_build
from bench.kmod import module
from bench.kmod.build import (
    KmodBuildError,
    build_digest,
    build_module,
    build_warnings,
    headers_dir,
    module_sources,
)
from bench.kmod.impl import KernelModuleImpl
from bench.kmod.server import ModuleServer, module_params
from bench.protocol import make_reply
from bench.system import ledger
from tests.test_ebpf import ETH_P_IP, Capture, Datagram

IMPLS = {"kmod-kthread": "hellobench_kthread", "kmod-softirq": "hellobench_softirq"}
# every registered kernel-module impl: the two modules and kmod-kthread's wait=poll variant
VARIANTS = {**IMPLS, "kmod-kthread-poll": "hellobench_kthread"}
IN_GUEST = os.environ.get("HELLOBENCH_GUEST") == "1"
GUEST_PORT = 3000
RMMOD_BOUND_S = 5.0
GUEST_SELECTION_ENV = "HELLOBENCH_GUEST_K"


def _header_releases() -> list[str]:
    root = Path("/lib/modules")
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "build" / "Makefile").exists())


def _kmod_impl(name: str) -> KernelModuleImpl:
    entry = discover()[name]
    assert isinstance(entry.impl, KernelModuleImpl)
    return entry.impl


RELEASES = _header_releases()
needs_headers = pytest.mark.skipif(
    not RELEASES, reason="no kernel headers under /lib/modules/*/build (linux-headers-amd64)"
)


# --- host: build ------------------------------------------------------------------------


@needs_headers
@pytest.mark.slow
@pytest.mark.parametrize("impl_name", sorted(IMPLS))
def test_module_builds_without_warnings(
    impl_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HELLOBENCH_CACHE", str(tmp_path / "cache"))
    folder = PROJECT_ROOT / "impls" / impl_name
    before = sorted(p.name for p in folder.iterdir())
    release = RELEASES[-1]

    built = build_module(folder, IMPLS[impl_name], release, strict=True)

    assert not built.cached
    assert built.path.is_file() and built.path.is_relative_to(tmp_path / "cache" / "kmod")
    assert build_warnings(built.log) == [], built.log
    assert sorted(p.name for p in folder.iterdir()) == before, "the build wrote into the repo"
    info = subprocess.run(
        ["modinfo", str(built.path)], capture_output=True, text=True, check=True
    ).stdout
    for param in ("port:", "addr:", "cpu:", "fault_hang:"):
        assert f"parm:           {param}" in info
    assert ("parm:           wait:" in info) == (impl_name == "kmod-kthread")
    assert "license:        GPL" in info
    assert f"vermagic:       {release} " in info

    again = build_module(folder, IMPLS[impl_name], release)
    assert again.cached and again.path == built.path


@needs_headers
def test_build_digest_follows_sources(tmp_path: Path) -> None:
    folder = tmp_path / "kmod-kthread"
    folder.mkdir()
    for src in module_sources(PROJECT_ROOT / "impls" / "kmod-kthread"):
        (folder / src.name).write_bytes(src.read_bytes())
    (folder / "controller.py").write_text("# not a build input\n")
    release = RELEASES[-1]
    first = build_digest(folder, release)
    (folder / "controller.py").write_text("# still not a build input\n")
    assert build_digest(folder, release) == first
    source = folder / "hellobench_kthread.c"
    source.write_text(source.read_text() + "\n/* changed */\n")
    assert build_digest(folder, release) != first


@needs_headers
def test_build_digest_follows_shared_headers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both modules include hello_kmod.h: a change to it must rebuild them."""
    assert kmod_build.KMOD_HEADER in kmod_build.SHARED_HEADERS
    for impl_name in IMPLS:
        source = (PROJECT_ROOT / "impls" / impl_name / f"{IMPLS[impl_name]}.c").read_text()
        assert '#include "hello_kmod.h"' in source, impl_name
    header = tmp_path / kmod_build.KMOD_HEADER.name
    header.write_bytes(kmod_build.KMOD_HEADER.read_bytes())
    monkeypatch.setattr(kmod_build, "SHARED_HEADERS", (kmod_build.PROTO_HEADER, header))
    folder = PROJECT_ROOT / "impls" / "kmod-softirq"
    release = RELEASES[-1]
    first = build_digest(folder, release)
    header.write_text(header.read_text() + "\n/* changed */\n")
    assert build_digest(folder, release) != first


def test_missing_headers_say_what_to_install() -> None:
    with pytest.raises(KmodBuildError, match=r"linux-headers-0\.0\.0-none"):
        headers_dir("0.0.0-none")
    impl = _kmod_impl("kmod-kthread")
    with pytest.raises(ImplError, match="no kernel headers"):
        impl.build_for("0.0.0-none")


# --- host: controller logic ---------------------------------------------------------------


def test_manifests_declare_kernel_modules() -> None:
    found = {}
    for impl_name in IMPLS:
        for manifest in load_manifests(PROJECT_ROOT / "impls" / impl_name):
            assert manifest.kind == "kernel-module"
            assert manifest.family == "kernel module"
            assert manifest.language == "c"
            assert manifest.requires.root and manifest.requires.loadable_modules
            found[manifest.name] = manifest
    assert sorted(found) == sorted(VARIANTS)
    poll = found["kmod-kthread-poll"]
    assert poll.compare_with == ("kmod-kthread",) and poll.roles == (
        "path-control",
        "claim",
        "claim-vm",
    )
    assert found["kmod-kthread"].options == {"wait": "block"}
    assert poll.options == {"wait": "poll"}


def test_wait_option_becomes_the_module_parameter() -> None:
    assert _kmod_impl("kmod-kthread").module_options() == {"wait": "block"}
    assert _kmod_impl("kmod-kthread-poll").module_options() == {"wait": "poll"}
    assert _kmod_impl("kmod-softirq").module_options() == {}
    impl = _kmod_impl("kmod-kthread")
    bad = type(impl)(dataclasses.replace(impl.manifest, options={"wait": "sleep"}))
    with pytest.raises(ImplError, match="wait='sleep'"):
        bad.module_options()


def test_unavailable_without_loadable_modules() -> None:
    host = HostCapabilities(
        kernel="6.18.0",
        is_root=True,
        loadable_modules=False,
        modules_reason="kernel built without CONFIG_MODULES (no /proc/modules)",
        bpf=True,
        bpf_reason="",
    )
    for impl_name in VARIANTS:
        assert _kmod_impl(impl_name).unavailable_reason(host) == host.modules_reason
    if not capabilities().loadable_modules:
        entries = discover()
        for impl_name in VARIANTS:
            assert entries[impl_name].unavailable == capabilities().modules_reason


def test_module_params_from_config() -> None:
    assert module_params(ServerConfig()) == {"port": 3000, "addr": "127.0.0.1", "cpu": -1}
    config = ServerConfig(addr="10.0.0.1", port=4000, cpu=1, options={"fault_hang": "1"})
    assert module_params(config) == {"port": 4000, "addr": "10.0.0.1", "cpu": 1, "fault_hang": 1}
    with pytest.raises(ImplError, match=r"outside 1\.\.65535"):
        module_params(ServerConfig(port=0))


def test_accounting_notes() -> None:
    assert _kmod_impl("kmod-kthread").threaded
    softirq = _kmod_impl("kmod-softirq")
    assert not softirq.threaded
    assert softirq.accounting_note == "no server thread: cost shows in softirq CPU"


def test_module_cleaner_resolves() -> None:
    from bench.kmod.cleanup import CLEANER, remove_module

    module_name, _, function = CLEANER.partition(":")
    assert getattr(importlib.import_module(module_name), function) is remove_module


def test_module_commands_are_bounded() -> None:
    started = time.monotonic()
    with pytest.raises(module.ModuleError, match="did not return within"):
        module._run(["sleep", "30"], 0.3)
    assert time.monotonic() - started < 3.0


def test_rmmod_of_absent_module_is_a_no_op() -> None:
    assert module.rmmod("hellobench_never_loaded") == 0.0


# --- the guest ----------------------------------------------------------------------------


@pytest.mark.vm
@pytest.mark.slow
def test_in_guest(tmp_path: Path) -> None:
    """Boot a guest with the stock kernel and run the test_guest_* tests in it (those of
    them that the -k expression in HELLOBENCH_GUEST_K selects, when it is set)."""
    try:
        from bench.vm.guest import run_in_guest
        from bench.vm.kernel import GuestKernelError, find_guest_kernel
        from bench.vm.qemu import QemuError, qemu_binary
    except ImportError as exc:  # pragma: no cover - bench/vm is part of the project
        pytest.skip(f"bench.vm is not available: {exc}")
    try:
        qemu_binary()
        kernel = find_guest_kernel()
    except (QemuError, GuestKernelError) as exc:
        pytest.skip(str(exc))
    if kernel.headers_dir is None:
        pytest.skip(f"no headers for the guest kernel {kernel.release}")
    for impl_name in IMPLS:
        _kmod_impl(impl_name).build_for(kernel.release)  # the guest finds these in the cache
    only = os.environ.get(GUEST_SELECTION_ENV, "").strip()
    selection = f"guest_ and ({only})" if only else "guest_"

    outcome = run_in_guest(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-s",
            "-p",
            "no:cacheprovider",
            __file__,
            "-k",
            selection,
        ],
        workdir=tmp_path,
        timeout_s=800,
        cwd=PROJECT_ROOT,
    )
    console = outcome.console_log.read_text(errors="replace")
    assert outcome.ok, f"{outcome.failed_reason}\n{console[-6000:]}"
    assert " passed" in console and " skipped" not in console.split("HELLOBENCH-GUEST: ready")[-1]
    assert outcome.kernel_log_problems == [], outcome.kernel_log_problems


guest_only = pytest.mark.skipif(
    not (IN_GUEST and capabilities().loadable_modules and capabilities().is_root),
    reason="loads kernel modules: runs inside the guest that test_in_guest boots "
    "(needs root, CONFIG_MODULES and the guest kernel's headers)",
)


def _ask(data: bytes, timeout: float = 1.0, port: int = GUEST_PORT) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(data, ("127.0.0.1", port))
        try:
            return sock.recv(70000)
        except TimeoutError:
            return None


def _ask_until(data: bytes, tries: int = 5) -> bytes | None:
    for _ in range(tries):
        reply = _ask(data, timeout=0.5)
        if reply is not None:
            return reply
    return None


def _flood(stop_at: float, port: int) -> None:
    msg = b"HELLO " + bytes(58)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        while time.monotonic() < stop_at:
            try:
                sock.sendto(msg, ("127.0.0.1", port))
                while sock.recv(2048):
                    pass
            except OSError:
                pass


def _dmesg_clear() -> None:
    subprocess.run(["dmesg", "-C"], check=False)


def _dmesg() -> str:
    return subprocess.run(["dmesg"], capture_output=True, text=True, check=False).stdout


@pytest.fixture
def clean_kernel_log() -> Iterator[None]:
    _dmesg_clear()
    yield
    problems = scan_kernel_log(_dmesg())
    assert problems == [], problems


@guest_only
@pytest.mark.parametrize("impl_name", sorted(VARIANTS))
def test_guest_replies_and_counters(impl_name: str, clean_kernel_log: None) -> None:
    impl = _kmod_impl(impl_name)
    server = impl.start(ServerConfig())
    assert isinstance(server, ModuleServer)
    try:
        assert server.health() is None
        for size in (6, 24, 64, 1472):
            request = (b"HELLO " + bytes(i % 251 for i in range(size)))[:size]
            assert _ask(request) == make_reply(request), size
        for bad in (b"", b"HELLO", b"HELL0 there", b"GOT IT back", b"HELLO" + bytes(1468)):
            assert _ask(bad, timeout=0.3) is None, bad[:12]
        counters = server.counters()
        assert counters["answered"] == 4
        assert counters["rejected"] == 5
        assert counters["received"] == 9
        accounting = server.accounting()
        if impl.threaded:
            (tid,) = accounting.kernel_tids
            assert Path(f"/proc/{tid}/comm").read_text().strip() == f"hellokt/{GUEST_PORT}"
            wait = "poll" if impl_name == "kmod-kthread-poll" else "block"
            assert module.read_param(impl.module_name, "wait") == wait
        else:
            assert accounting.kernel_tids == () and "softirq" in accounting.note
    finally:
        server.stop()
    assert not module.is_loaded(impl.module_name)
    assert server.health() is not None
    server.stop()  # idempotent
    assert not any(rec.ident == impl.module_name for rec in ledger.records())


CHECKSUM_SIZES = (6, 7, 24, 64, 333, 1471, 1472)


@guest_only
@pytest.mark.parametrize("impl_name", sorted(VARIANTS))
def test_guest_reply_checksums_on_lo(impl_name: str, clean_kernel_log: None) -> None:
    """Every reply an AF_PACKET capture sees on lo carries a valid UDP checksum: full and
    non-zero, or partial and consistent with the reply's pseudo-header.  Requests come
    from a plain socket and from one with IP options (a longer request IP header)."""
    server = _kmod_impl(impl_name).start(ServerConfig())
    assert isinstance(server, ModuleServer)
    cap = Capture(None, "lo", GUEST_PORT)
    sent = 0
    client_ports = []
    try:
        for options in (b"", b"\x01\x01\x01\x00"):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                if options:
                    client.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, options)
                client.bind(("127.0.0.1", 0))
                client.settimeout(2.0)
                client_ports.append(client.getsockname()[1])
                for size in CHECKSUM_SIZES:
                    request = (b"HELLO " + bytes((size + i) % 256 for i in range(size)))[:size]
                    client.sendto(request, ("127.0.0.1", GUEST_PORT))
                    assert client.recv(70000) == make_reply(request), size
                    sent += 1
        datagrams = cap.datagrams()
        counters = server.counters()
    finally:
        cap.close()
        server.stop()
    replies = [d for d in datagrams if d.ports[0] == GUEST_PORT and d.ports[1] in client_ports]
    fields = [struct.unpack("!H", d.udp[6:8])[0] for d in replies]
    print(f"\n{impl_name}: {len(replies)} replies captured, UDP checksum fields {fields}")
    # lo shows each datagram twice (sent and received); every copy is checked
    assert {len(d.payload) for d in replies} == set(CHECKSUM_SIZES)
    assert len(replies) >= sent
    states = {d.check_checksums() for d in replies}
    assert states <= {"partial", "full"}
    assert counters["answered"] == sent and counters["send_errors"] == 0


# A cgroup/sendmsg4 program that allows every send after a bounded busy loop: with it
# attached, udp_sendmsg() runs it under lock_sock(), and the loop keeps the socket
# locked long enough that two CPUs sending on one socket meet there.
_SYS_BPF = 321  # x86_64
_BPF_PROG_LOAD, _BPF_PROG_ATTACH, _BPF_PROG_DETACH = 5, 8, 9
_BPF_PROG_TYPE_CGROUP_SOCK_ADDR = 18
_BPF_CGROUP_UDP4_SENDMSG = 14
_BPF_F_ALLOW_MULTI = 2
_SENDMSG4_LOOPS = 10_000


def _insn(code: int, dst: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst, off, imm)


_SENDMSG4_PROGRAM = b"".join(
    [
        _insn(0xB7, dst=1, imm=0),  # r1 = 0
        _insn(0x07, dst=1, imm=1),  # r1 += 1
        _insn(0xA5, dst=1, off=-2, imm=_SENDMSG4_LOOPS),  # if r1 < LOOPS goto -2
        _insn(0xB7, dst=0, imm=1),  # r0 = 1: allow the send
        _insn(0x95),  # exit
    ]
)


def _bpf(cmd: int, attr: bytes) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(attr, 128)
    ret = int(libc.syscall(_SYS_BPF, cmd, buf, ctypes.c_uint(128)))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf({cmd}): {os.strerror(err)}")
    return ret


@pytest.fixture
def sendmsg4_everywhere() -> Iterator[int]:
    """The program above attached to the root cgroup (so to every socket); its id."""
    insns = ctypes.create_string_buffer(_SENDMSG4_PROGRAM, len(_SENDMSG4_PROGRAM))
    license_ = ctypes.create_string_buffer(b"GPL")
    load = struct.pack(
        "<IIQQIIQII16sII",
        _BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
        len(_SENDMSG4_PROGRAM) // 8,
        ctypes.addressof(insns),
        ctypes.addressof(license_),
        0,
        0,
        0,
        0,
        0,
        b"hb_sendmsg4",
        0,
        _BPF_CGROUP_UDP4_SENDMSG,
    )
    stats = Path("/proc/sys/kernel/bpf_stats_enabled")
    stats_before = stats.read_text()
    stats.write_text("1\n")  # run_cnt, to show that the program ran
    mnt = Path(tempfile.mkdtemp(prefix="hb-cgroup2-"))
    subprocess.run(["mount", "-t", "cgroup2", "none", str(mnt)], check=True)
    prog = cgroup = -1
    attached = False
    try:
        prog = _bpf(_BPF_PROG_LOAD, load)
        cgroup = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
        attach = struct.pack("<IIII", cgroup, prog, _BPF_CGROUP_UDP4_SENDMSG, _BPF_F_ALLOW_MULTI)
        _bpf(_BPF_PROG_ATTACH, attach)
        attached = True
        shown = subprocess.run(
            ["bpftool", "cgroup", "show", str(mnt)], capture_output=True, text=True, check=True
        ).stdout
        (line,) = [ln for ln in shown.splitlines() if "sendmsg4" in ln]
        yield int(line.split()[0])
    finally:
        if attached:
            _bpf(_BPF_PROG_DETACH, struct.pack("<III", cgroup, prog, _BPF_CGROUP_UDP4_SENDMSG))
        for fd in (cgroup, prog):
            if fd >= 0:
                os.close(fd)
        subprocess.run(["umount", str(mnt)], check=False)
        mnt.rmdir()
        stats.write_text(stats_before)


def _pinned_flood(stop_at: float, port: int, cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})
    _flood(stop_at, port)


@guest_only
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two CPUs")
@pytest.mark.skipif(platform.machine() != "x86_64", reason="bpf(2) is called by its x86_64 number")
def test_guest_softirq_flood_with_cgroup_sendmsg4(
    sendmsg4_everywhere: int, clean_kernel_log: None
) -> None:
    """With a sendmsg4 program in effect, two CPUs flood kmod-softirq at once: its replies
    must not go through udp_sendmsg's lock_sock() (a sleep in softirq: "BUG: scheduling
    while atomic" when the two meet), and the kernel log stays clean."""
    server = _kmod_impl("kmod-softirq").start(ServerConfig())
    assert isinstance(server, ModuleServer)
    try:
        assert _ask(b"HELLO cgroup") == b"GOT ITcgroup"
        stop_at = time.monotonic() + 4.0
        senders = [
            multiprocessing.Process(target=_pinned_flood, args=(stop_at, GUEST_PORT, cpu))
            for cpu in (0, 1)
        ]
        for proc in senders:
            proc.start()
        for proc in senders:
            proc.join(timeout=30)
        assert [proc.exitcode for proc in senders] == [0, 0]
        counters = server.counters()
        assert _ask_until(b"HELLO after") == b"GOT ITafter"
    finally:
        server.stop()
    shown = subprocess.run(
        ["bpftool", "--json", "prog", "show", "id", str(sendmsg4_everywhere)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    runs = json.loads(shown).get("run_cnt", 0)
    print(f"\nkmod-softirq under a sendmsg4 program: {counters}, the program ran {runs} times")
    assert runs > 0, shown  # it was in effect: the clients' own sends ran it
    assert counters["answered"] > 100


@guest_only
@pytest.mark.parametrize("impl_name", sorted(IMPLS))
@pytest.mark.parametrize(
    "params",
    [{"port": 0}, {"port": 65536}, {"addr": "1.2.3"}, {"addr": "localhost"}, {"cpu": -2}],
    ids=str,
)
def test_guest_bad_parameters_refused(impl_name: str, params: dict[str, str | int]) -> None:
    impl = _kmod_impl(impl_name)
    impl.prepare()
    assert impl._ko is not None
    module.load_dependencies(impl._ko)
    _dmesg_clear()
    with pytest.raises(module.ModuleError, match="Invalid parameters"):
        module.insmod(impl._ko, params)
    assert not module.is_loaded(impl.module_name)
    said = [line for line in _dmesg().splitlines() if f"{impl.module_name}: " in line]
    said = [line for line in said if "taint" not in line]
    assert len(said) == 1 and "invalid" in said[0], said


@guest_only
@pytest.mark.parametrize("impl_name", sorted(IMPLS))
def test_guest_offline_cpu_refused(impl_name: str) -> None:
    cpus = os.cpu_count() or 1
    with pytest.raises(ImplError, match="Invalid parameters"):
        _kmod_impl(impl_name).start(ServerConfig(cpu=cpus))


@guest_only
@pytest.mark.parametrize("impl_name", sorted(VARIANTS))
def test_guest_rmmod_during_flood(impl_name: str, clean_kernel_log: None) -> None:
    server = _kmod_impl(impl_name).start(ServerConfig())
    assert isinstance(server, ModuleServer)
    stop_at = time.monotonic() + 6.0
    senders = [multiprocessing.Process(target=_flood, args=(stop_at, GUEST_PORT)) for _ in range(2)]
    for proc in senders:
        proc.start()
    try:
        time.sleep(2.0)
        before = server.counters()
        assert before["answered"] > 0
        started = time.monotonic()
        server.stop()
        took = time.monotonic() - started
    finally:
        for proc in senders:
            proc.join()
    print(f"\n{impl_name}: rmmod during flood took {took:.3f} s, answered by then {before}")
    assert took < RMMOD_BOUND_S
    assert not module.is_loaded(server.name)


@guest_only
@pytest.mark.parametrize("impl_name", sorted(VARIANTS))
def test_guest_fault_hang_stops_answers(impl_name: str, clean_kernel_log: None) -> None:
    server = _kmod_impl(impl_name).start(ServerConfig())
    assert isinstance(server, ModuleServer)
    try:
        assert _ask(b"HELLO 1") == b"GOT IT1"
        server.set_fault(1)
        time.sleep(0.3)
        assert _ask(b"HELLO 2", timeout=0.5) is None
        assert server.health() is None  # only the missing replies show a hung server
        server.set_fault(0)
        assert _ask_until(b"HELLO 3") == b"GOT IT3"
    finally:
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < RMMOD_BOUND_S


@guest_only
@pytest.mark.parametrize("impl_name", sorted(IMPLS))
def test_guest_fault_hang_checked_on_every_write(impl_name: str) -> None:
    """fault_hang is read while the module runs: a value it does not know is refused at
    load and at run time, and the old value stays."""
    impl = _kmod_impl(impl_name)
    top = 2 if impl.threaded else 1
    with pytest.raises(ImplError, match="Invalid parameters"):
        impl.start(ServerConfig(options={"fault_hang": str(top + 1)}))
    assert not module.is_loaded(impl.module_name)
    server = impl.start(ServerConfig())
    assert isinstance(server, ModuleServer)
    param = Path(f"/sys/module/{impl.module_name}/parameters/fault_hang")
    try:
        for bad in (str(top + 1), "-1", "99", "x"):
            with pytest.raises(module.ModuleError, match="Invalid argument"):
                module.write_param(impl.module_name, "fault_hang", bad)
            assert param.read_text().strip() == "0", bad
        assert _ask(b"HELLO still") == b"GOT ITstill"
        server.set_fault(1)
        assert param.read_text().strip() == "1"
        server.set_fault(0)
        assert _ask_until(b"HELLO again") == b"GOT ITagain"
    finally:
        server.stop()


@guest_only
def test_guest_fault_at_load_and_rmmod_while_hung() -> None:
    server = _kmod_impl("kmod-kthread").start(ServerConfig(options={"fault_hang": "1"}))
    assert _ask(b"HELLO x", timeout=0.5) is None
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < RMMOD_BOUND_S


@guest_only
def test_guest_dead_thread_detected() -> None:
    server = _kmod_impl("kmod-kthread").start(ServerConfig())
    assert isinstance(server, ModuleServer)
    try:
        (tid,) = server.accounting().kernel_tids
        server.set_fault(2)
        deadline = time.monotonic() + 5.0
        while server.health() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.health() == "module hellobench_kthread is loaded but its server thread exited"
        assert not Path(f"/proc/{tid}").exists()
    finally:
        server.stop()
    assert not module.is_loaded("hellobench_kthread")


@guest_only
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two CPUs")
def test_guest_thread_pinned() -> None:
    server = _kmod_impl("kmod-kthread").start(ServerConfig(cpu=1))
    try:
        (tid,) = server.accounting().kernel_tids
        status = Path(f"/proc/{tid}/status").read_text()
        assert "Cpus_allowed_list:\t1\n" in status
        assert _ask(b"HELLO pinned") == b"GOT ITpinned"
    finally:
        server.stop()


@guest_only
@pytest.mark.parametrize("wait", ["sleep", "1", "POLL", ""])
def test_guest_bad_wait_refused(wait: str) -> None:
    """hellobench_kthread takes wait=block or wait=poll; anything else fails insmod."""
    impl = _kmod_impl("kmod-kthread")
    impl.prepare()
    assert impl._ko is not None
    module.load_dependencies(impl._ko)
    _dmesg_clear()
    with pytest.raises(module.ModuleError, match="Invalid parameters"):
        module.insmod(impl._ko, {"wait": wait})
    assert not module.is_loaded(impl.module_name)
    said = [line for line in _dmesg().splitlines() if "hellobench_kthread: " in line]
    said = [line for line in said if "taint" not in line]
    assert len(said) == 1 and "invalid for parameter `wait'" in said[0], said


PINGPONG_REQUESTS = 1500
PINGPONG_BOUND_S = 60.0


def _ctxt_switches(tid: int) -> tuple[int, int]:
    """(voluntary, nonvoluntary) context switches of thread ``tid`` so far."""
    fields = dict(
        line.split(":\t", 1) for line in Path(f"/proc/{tid}/status").read_text().splitlines()
    )
    return int(fields["voluntary_ctxt_switches"]), int(fields["nonvoluntary_ctxt_switches"])


def _switches_per_request(impl_name: str) -> tuple[float, float, int]:
    """A pingpong flood (one request in flight) from CPU 0 to the module's thread pinned on
    CPU 1: the thread's (voluntary, nonvoluntary) switches per answered request, and the
    number answered."""
    server = _kmod_impl(impl_name).start(ServerConfig(cpu=1))
    assert isinstance(server, ModuleServer)
    affinity = os.sched_getaffinity(0)
    try:
        (tid,) = server.accounting().kernel_tids
        os.sched_setaffinity(0, {0})
        assert _ask_until(b"HELLO warm") == b"GOT ITwarm"
        before_answered = server.counters()["answered"]
        vol0, invol0 = _ctxt_switches(tid)
        deadline = time.monotonic() + PINGPONG_BOUND_S
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(1.0)
            for i in range(PINGPONG_REQUESTS):
                if time.monotonic() > deadline:
                    break
                request = b"HELLO %d" % i
                sock.sendto(request, ("127.0.0.1", GUEST_PORT))
                with contextlib.suppress(TimeoutError):
                    sock.recv(2048)
        vol1, invol1 = _ctxt_switches(tid)
        answered = server.counters()["answered"] - before_answered
    finally:
        os.sched_setaffinity(0, affinity)
        server.stop()
    assert answered > PINGPONG_REQUESTS // 2, answered
    return (vol1 - vol0) / answered, (invol1 - invol0) / answered, answered


@guest_only
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two CPUs")
def test_guest_poll_thread_does_not_sleep(clean_kernel_log: None) -> None:
    """Under the same pingpong flood, kmod-kthread's thread sleeps in its receive and is
    woken for (about) every request; kmod-kthread-poll's never sleeps: its context
    switches of either kind per request are a small fraction of kmod-kthread's."""
    block_vol, block_invol, block_n = _switches_per_request("kmod-kthread")
    poll_vol, poll_invol, poll_n = _switches_per_request("kmod-kthread-poll")
    print(
        f"\nswitches per request, voluntary/nonvoluntary: kmod-kthread {block_vol:.3f}/"
        f"{block_invol:.3f} ({block_n} answered), kmod-kthread-poll {poll_vol:.4f}/"
        f"{poll_invol:.4f} ({poll_n} answered)"
    )
    assert block_vol > 0.3  # the blocking thread is seen to sleep: the measure works
    assert poll_vol + poll_invol < block_vol / 10


@guest_only
def test_guest_module_gone_detected() -> None:
    server = _kmod_impl("kmod-softirq").start(ServerConfig())
    module.rmmod("hellobench_softirq")
    assert server.health() == "module hellobench_softirq is no longer loaded"
    server.stop()


@guest_only
def test_guest_already_loaded_refused() -> None:
    impl = _kmod_impl("kmod-softirq")
    server = impl.start(ServerConfig())
    try:
        with pytest.raises(ImplError, match="already loaded"):
            impl.start(ServerConfig(port=GUEST_PORT + 1))
        assert module.is_loaded("hellobench_softirq")
    finally:
        server.stop()


@guest_only
@pytest.mark.parametrize("impl_name", sorted(IMPLS))
def test_guest_sweep_unloads_leftover(impl_name: str) -> None:
    server = _kmod_impl(impl_name).start(ServerConfig())
    assert isinstance(server, ModuleServer)
    sweep = "from bench.system import ledger; print(ledger.sweep(include_live=True))"
    out = subprocess.run(
        [sys.executable, "-c", sweep], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT
    ).stdout
    assert f"removed module {server.name}" in out
    assert not module.is_loaded(server.name)
    server.stop()


@guest_only
@pytest.mark.parametrize("impl_name", sorted(IMPLS))
def test_guest_serves_in_a_netns(impl_name: str) -> None:
    netns = "hb-kmod-test"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        server = _kmod_impl(impl_name).start(ServerConfig(netns=netns))
        try:
            assert _ask(b"HELLO outside", timeout=0.5) is None
            client = (
                "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                "s.settimeout(2); s.sendto(b'HELLO inside', ('127.0.0.1', 3000)); "
                "print(s.recv(100).decode())"
            )
            inside = subprocess.run(
                ["ip", "netns", "exec", netns, sys.executable, "-c", client],
                capture_output=True,
                text=True,
                check=True,
            )
            assert inside.stdout.strip() == "GOT ITinside"
        finally:
            server.stop()
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)


_VETH_CLIENT = """
import socket, sys
for size in (6, 24, 64, 1472):
    request = (b"HELLO " + bytes(i % 251 for i in range(size)))[:size]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(request, (sys.argv[1], 3000))
        assert sock.recv(70000) == b"GOT IT" + request[6:], size
print("exact")
"""


@guest_only
@pytest.mark.parametrize("impl_name", sorted(IMPLS))
def test_guest_answers_over_veth(impl_name: str, clean_kernel_log: None) -> None:
    """Server and client in two namespaces joined by veth (checksum offload on the way)."""
    server_ns, client_ns = "hb-kmod-srv", "hb-kmod-cli"
    for ns in (server_ns, client_ns):
        subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        veth = ["ip", "link", "add", "hbk0", "netns", server_ns, "type", "veth"]
        subprocess.run([*veth, "peer", "name", "hbk1", "netns", client_ns], check=True)
        for ns, dev, address in (
            (server_ns, "hbk0", "10.77.0.1"),
            (client_ns, "hbk1", "10.77.0.2"),
        ):
            subprocess.run(["ip", "-n", ns, "addr", "add", f"{address}/24", "dev", dev], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", dev, "up"], check=True)
        server = _kmod_impl(impl_name).start(ServerConfig(netns=server_ns, addr="10.77.0.1"))
        try:
            client = subprocess.run(
                ["ip", "netns", "exec", client_ns, sys.executable, "-c", _VETH_CLIENT, "10.77.0.1"],
                capture_output=True,
                text=True,
                check=False,
            )
            assert client.stdout.strip() == "exact", client.stderr
            assert server.counters()["answered"] == 4
        finally:
            server.stop()
    finally:
        for ns in (server_ns, client_ns):
            subprocess.run(["ip", "netns", "del", ns], check=False)


# A subnet on a veth in the guest's root namespace, its broadcast address a broadcast route.
HOSTILE_DEV, HOSTILE_PEER = "hbk-hostile0", "hbk-hostile1"
HOSTILE_ADDR, HOSTILE_PREFIX = "198.18.5.1", 24
HOSTILE_CLIENT_PORT = 4242
# Sources a reply may never go to, sent from a raw socket to HOSTILE_ADDR over lo (the
# output route stays with the packet, so no martian check stands in the way): refused
# before the reply is routed, counted as rejected...
RAW_REFUSED_SOURCES = {
    "limited broadcast": ("255.255.255.255", HOSTILE_CLIENT_PORT),
    "multicast": ("224.0.0.1", HOSTILE_CLIENT_PORT),
    "source port 0": ("127.0.0.1", 0),
}
# ...or refused once the reply's route says broadcast, counted as a send error (as
# udp_sendmsg() refuses a socket without SO_BROADCAST)
RAW_BROADCAST_ROUTED_SOURCES = {"directed broadcast": ("198.18.5.255", HOSTILE_CLIENT_PORT)}
# 0.0.0.0, which a raw socket would replace by its own address, gets past the receive
# path's martian checks only to the limited broadcast (as DHCP's requests do): a frame
# from the veth's peer to a server bound to 0.0.0.0, counted as rejected
ZERO_SOURCE = ("0.0.0.0", HOSTILE_CLIENT_PORT)


def _udp_ipv4(source: tuple[str, int], dest: tuple[str, int], payload: bytes) -> bytes:
    """An IPv4/UDP datagram from ``source`` to ``dest`` with valid checksums."""
    saddr, daddr = socket.inet_aton(source[0]), socket.inet_aton(dest[0])
    length = 8 + len(payload)
    udp = struct.pack("!HHHH", source[1], dest[1], length, 0) + payload
    pseudo = saddr + daddr + struct.pack("!BBH", 0, socket.IPPROTO_UDP, length)
    udp = udp[:6] + struct.pack("!H", (0xFFFF - ones_sum(pseudo + udp)) or 0xFFFF) + udp[8:]
    fields = [0x45, 0, 20 + length, 0x1234, 0, 64, socket.IPPROTO_UDP, 0, saddr, daddr]
    header = struct.pack("!BBHHHBBH4s4s", *fields)
    fields[7] = 0xFFFF - ones_sum(header)
    return struct.pack("!BBHHHBBH4s4s", *fields) + udp


@contextlib.contextmanager
def _hostile_subnet() -> Iterator[None]:
    """HOSTILE_ADDR/HOSTILE_PREFIX with its broadcast address on a veth whose peer is up."""
    add = ["ip", "link", "add", HOSTILE_DEV, "type", "veth", "peer", "name", HOSTILE_PEER]
    subprocess.run(add, check=True)
    try:
        address = f"{HOSTILE_ADDR}/{HOSTILE_PREFIX}"
        subprocess.run(["ip", "addr", "add", address, "brd", "+", "dev", HOSTILE_DEV], check=True)
        for dev in (HOSTILE_DEV, HOSTILE_PEER):
            subprocess.run(["ip", "link", "set", dev, "up"], check=True)
        yield
    finally:
        subprocess.run(["ip", "link", "del", HOSTILE_DEV], check=False)


def _send_hostile_requests() -> int:
    """Every hostile request above, sent once; how many."""
    peer_mac = bytes.fromhex(
        Path(f"/sys/class/net/{HOSTILE_PEER}/address").read_text().strip().replace(":", "")
    )
    datagram = _udp_ipv4(ZERO_SOURCE, ("255.255.255.255", GUEST_PORT), b"HELLO from 0.0.0.0")
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as frames:
        frame = b"\xff" * 6 + peer_mac + struct.pack("!H", ETH_P_IP) + datagram
        frames.sendto(frame, (HOSTILE_PEER, ETH_P_IP))
    sources = {**RAW_REFUSED_SOURCES, **RAW_BROADCAST_ROUTED_SOURCES}
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw:
        for name, source in sources.items():
            datagram = _udp_ipv4(source, (HOSTILE_ADDR, GUEST_PORT), f"HELLO from {name}".encode())
            raw.sendto(datagram, (HOSTILE_ADDR, 0))
    return 1 + len(sources)


@guest_only
@pytest.mark.parametrize("impl_name", sorted(IMPLS))
def test_guest_hostile_sources_get_no_reply(impl_name: str, clean_kernel_log: None) -> None:
    """Requests whose source no socket could answer (the limited broadcast, a directed
    broadcast of a local subnet, multicast, 0.0.0.0, source port 0) reach the module and
    get no reply: captures on lo and on the subnet's interface see nothing from the
    server's port but the reply to an ordinary request sent after them."""
    with _hostile_subnet():
        local = subprocess.run(
            ["ip", "route", "show", "table", "local", "dev", HOSTILE_DEV],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        ((directed, _port),) = RAW_BROADCAST_ROUTED_SOURCES.values()
        assert f"broadcast {directed} " in local, local
        server = _kmod_impl(impl_name).start(ServerConfig(addr="0.0.0.0"))
        assert isinstance(server, ModuleServer)
        captures = [Capture(None, dev, GUEST_PORT) for dev in ("lo", HOSTILE_DEV)]
        datagrams: list[Datagram] = []
        try:
            hostile = _send_hostile_requests()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                client.bind(("127.0.0.1", 0))
                client.settimeout(2.0)
                client_port = client.getsockname()[1]
                client.sendto(b"HELLO ordinary", (HOSTILE_ADDR, GUEST_PORT))
                assert client.recv(2048) == b"GOT ITordinary"
            time.sleep(0.3)  # settles what is still on its way before the captures are read
            for cap in captures:
                datagrams += cap.datagrams()
            counters = server.counters()
        finally:
            for cap in captures:
                cap.close()
            server.stop()
    replies = [d for d in datagrams if d.ports[0] == GUEST_PORT]
    seen = [(socket.inet_ntoa(d.ip[16:20]), d.ports[1], d.payload[:24]) for d in replies]
    print(f"\n{impl_name}: from the server's port {seen}; counters {counters}")
    assert replies and all(d.ports[1] == client_port for d in replies), seen
    assert counters == {
        "received": hostile + 1,
        "answered": 1,
        "rejected": len(RAW_REFUSED_SOURCES) + 1,
        "send_errors": len(RAW_BROADCAST_ROUTED_SOURCES),
    }


SYSFS_CYCLES = 20
SYSFS_PASS_WAIT_S = 30.0
# a file removed before its open finds nothing; one removed between open and read, ENODEV
SYSFS_GONE_ERRNOS = (errno.ENOENT, errno.ENODEV)


def _module_sysfs_files(impl: KernelModuleImpl) -> list[str]:
    """Every sysfs file of the loaded module: its attributes and its parameters."""
    folders = (
        module.SYS_KERNEL / impl.module_name,
        Path("/sys/module") / impl.module_name / "parameters",
    )
    return sorted(str(entry) for folder in folders for entry in folder.iterdir())


def _read_until_stopped(
    paths: list[str],
    stop: multiprocessing.synchronize.Event,
    full_passes: multiprocessing.sharedctypes.Synchronized[int],
    results: multiprocessing.queues.Queue[dict[str, dict[int, int]]],
) -> None:
    """Reads every path over and over until ``stop``, counting the passes in which every
    read succeeded; puts, per path, the number of reads by outcome (0: read, else the
    errno) in ``results``."""
    outcomes: dict[str, dict[int, int]] = {path: {} for path in paths}
    while not stop.is_set():
        failed = False
        for path in paths:
            try:
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.read(fd, 4096)
                finally:
                    os.close(fd)
                code = 0
            except OSError as exc:
                code = exc.errno or -1
                failed = True
            outcomes[path][code] = outcomes[path].get(code, 0) + 1
        if not failed:
            with full_passes.get_lock():
                full_passes.value += 1
    results.put(outcomes)


@guest_only
@pytest.mark.parametrize("impl_name", sorted(IMPLS))
def test_guest_sysfs_reads_while_loading_and_unloading(
    impl_name: str, clean_kernel_log: None
) -> None:
    """Another process reads every sysfs file of the module in a tight loop while it is
    loaded and unloaded SYSFS_CYCLES times (each time loaded until one pass read them all):
    the kernel log stays clean, and every read either succeeds or finds the file gone."""
    impl = _kmod_impl(impl_name)
    first = impl.start(ServerConfig())
    paths = _module_sysfs_files(impl)
    first.stop()
    assert impl._ko is not None
    params = module_params(ServerConfig())
    ctx = multiprocessing.get_context("fork")
    stop = ctx.Event()
    full_passes = ctx.Value("q", 0)
    results: multiprocessing.queues.Queue[dict[str, dict[int, int]]] = ctx.Queue()
    reader = ctx.Process(target=_read_until_stopped, args=(paths, stop, full_passes, results))
    reader.start()
    try:
        for cycle in range(SYSFS_CYCLES):
            module.insmod(impl._ko, params)
            passes = full_passes.value
            deadline = time.monotonic() + SYSFS_PASS_WAIT_S
            while full_passes.value == passes:
                assert reader.is_alive(), f"the reader died (cycle {cycle}): {reader.exitcode}"
                assert time.monotonic() < deadline, f"no full pass while loaded (cycle {cycle})"
                time.sleep(0.005)
            module.rmmod(impl.module_name)
        stop.set()
        outcomes = results.get(timeout=SYSFS_PASS_WAIT_S)
    finally:
        stop.set()
        reader.join(timeout=SYSFS_PASS_WAIT_S)
        if reader.is_alive():
            reader.kill()
        module.rmmod(impl.module_name)
    print(f"\n{impl_name}: reads by outcome (0: read, else errno) {outcomes}")
    assert sorted(outcomes) == paths
    for path, counts in outcomes.items():
        assert counts.get(0, 0) >= SYSFS_CYCLES, (path, counts)
        unexpected = {
            os.strerror(code): n
            for code, n in counts.items()
            if code not in (0, *SYSFS_GONE_ERRNOS)
        }
        assert unexpected == {}, (path, counts)
