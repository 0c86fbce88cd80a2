"""The C socket servers share one scaffold (bench/native/hb_server.c): the common options,
the socket, the counters memfd and the stop signals.  Their counter names come from one
X-macro list per server (bench/native/hb_counters.h), which lays out the memfd in C and
which the Python side reads back from the binary (``--counters``)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from bench.impl.api import ImplError, ServerConfig
from bench.impl.memfd_counters import CountedServerProcess, counter_names
from bench.impl.registry import discover
from bench.native.build import (
    NATIVE_DIR,
    SERVER_SCAFFOLD,
    BuildError,
    build_executable,
    build_server,
)
from tests.conftest import free_udp_port

PROJECT_ROOT = Path(__file__).resolve().parents[1]
COUNTERS_H = NATIVE_DIR / "hb_counters.h"
SOCKET_SERVERS = ["blocking-c", "epoll-c", "recvmmsg-c", "iouring-c"]
COUNTED_SERVERS = ["epoll-c", "recvmmsg-c"]
RUN_S = 10.0


def header_lists(text: str) -> dict[str, list[str]]:
    """The X-macro lists of hb_counters.h: list macro name -> counter names in order."""
    lists: dict[str, list[str]] = {}
    for match in re.finditer(r"#define (HB_COUNTERS_\w+)\(X\)((?:[^\n]*\\\n)*[^\n]*)", text):
        lists[match.group(1)] = re.findall(r"\bX\((\w+)\)", match.group(2))
    return lists


def server_list(name: str) -> str:
    """The list macro the server's source lays its counters out from."""
    source = (PROJECT_ROOT / "impls" / name / "server.c").read_text()
    found = re.findall(r"^HB_DEFINE_COUNTERS\((\w+)\);", source, re.MULTILINE)
    assert len(found) == 1, f"{name}: one HB_DEFINE_COUNTERS(...) expected, found {found}"
    return str(found[0])


def _binary(name: str) -> Path:
    libs = ["-luring"] if name == "iouring-c" else []
    try:
        return build_server(f"hello-{name}", PROJECT_ROOT / "impls" / name, libs=libs)
    except BuildError as exc:  # a missing library skips, as the impl does
        pytest.skip(f"{name} does not build here: {exc}")


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=RUN_S)


def test_the_header_lists_are_parsed() -> None:
    lists = header_lists(COUNTERS_H.read_text())
    assert lists["HB_COUNTERS_EPOLL"] == [
        "answered",
        "rejected",
        "send_dropped",
        "send_failed",
        "wakeups",
    ]
    assert lists["HB_COUNTERS_RECVMMSG"] == ["answered", "rejected", "send_failed", "batches"]


@pytest.mark.parametrize("name", COUNTED_SERVERS)
def test_the_binary_names_its_counters_as_the_header_lists_them(name: str) -> None:
    lists = header_lists(COUNTERS_H.read_text())
    expected = lists[server_list(name)]
    binary = _binary(name)
    proc = _run([str(binary), "--counters"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == expected
    assert counter_names(binary) == tuple(expected)


@pytest.mark.parametrize("name", COUNTED_SERVERS)
def test_the_controller_reads_the_counters_the_binary_names(name: str) -> None:
    entry = discover()[name]
    assert entry.impl is not None
    server = entry.impl.start(ServerConfig(port=free_udp_port()))
    try:
        assert isinstance(server, CountedServerProcess)
        expected = header_lists(COUNTERS_H.read_text())[server_list(name)]
        assert list(server.counters()) == expected
        assert all(value == 0 for value in server.counters().values())
    finally:
        server.stop()


def test_counter_names_refuses_a_binary_without_counters() -> None:
    with pytest.raises(ImplError, match="--counters"):
        counter_names(_binary("blocking-c"))


@pytest.mark.parametrize("name", SOCKET_SERVERS)
def test_every_socket_server_is_built_on_the_scaffold(name: str) -> None:
    source = (PROJECT_ROOT / "impls" / name / "server.c").read_text()
    assert '#include "hb_server.h"' in source
    for call in ("hb_server_args(", "hb_server_socket("):
        assert call in source, f"{name} does not call {call}"
    for copied in ("memfd_create", "inet_pton", "sigaction", "signalfd"):
        assert not re.search(rf"\b{copied}\(", source), f"{name} calls {copied}() itself"


@pytest.mark.parametrize("name", SOCKET_SERVERS)
def test_the_common_options_are_checked_alike(name: str) -> None:
    binary = str(_binary(name))
    for bad in (["--port", "0"], ["--port", "65536"], ["--port", "x"]):
        proc = _run([binary, *bad])
        assert proc.returncode == 2, (bad, proc.stdout, proc.stderr)
        assert "--port must be 1..65535" in proc.stderr
        assert "READY" not in proc.stdout
    proc = _run([binary, "--no-such-option"])
    assert proc.returncode == 2
    assert f"usage: {binary} [--addr A] [--port N]" in proc.stderr
    proc = _run([binary, "--port", str(free_udp_port()), "stray"])
    assert proc.returncode == 2
    assert "usage:" in proc.stderr


def test_a_bad_address_is_not_bound() -> None:
    proc = _run([str(_binary("blocking-c")), "--addr", "no.such.addr", "--port", "3999"])
    assert proc.returncode == 1
    assert "cannot bind no.such.addr:3999" in proc.stderr


def test_a_changed_header_or_source_rebuilds(tmp_path: Path) -> None:
    (tmp_path / "value.h").write_text("#define VALUE 1\n")
    (tmp_path / "main.c").write_text(
        '#include <stdio.h>\n#include "value.h"\nint get(void);\n'
        'int main(void) { printf("%d %d\\n", VALUE, get()); return 0; }\n'
    )
    (tmp_path / "get.c").write_text("int get(void) { return 7; }\n")
    sources = [tmp_path / "main.c", tmp_path / "get.c"]
    first = build_executable("hb-two-files", sources)
    assert _run([str(first)]).stdout == "1 7\n"
    assert build_executable("hb-two-files", sources) == first  # cached
    (tmp_path / "value.h").write_text("#define VALUE 2\n")
    second = build_executable("hb-two-files", sources)
    assert second != first
    assert _run([str(second)]).stdout == "2 7\n"
    (tmp_path / "get.c").write_text("int get(void) { return 8; }\n")
    third = build_executable("hb-two-files", sources)
    assert third not in (first, second)
    assert _run([str(third)]).stdout == "2 8\n"


def test_the_scaffold_is_linked_into_every_server_build() -> None:
    assert SERVER_SCAFFOLD.exists()
    assert (NATIVE_DIR / "hb_server.h").exists()
