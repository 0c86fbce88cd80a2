"""The independent client the driver is checked against: it counts what it gets right,
and the cross-check runs both clients against one server."""

from __future__ import annotations

import pytest

from bench.calibration.crosscheck import TOLERANCE, crosscheck, probe_rtt
from bench.driver.client import DriverConfig
from tests.driver_servers import ThreadServer


def test_the_probe_times_every_correct_reply() -> None:
    srv = ThreadServer("correct")
    try:
        result = probe_rtt("127.0.0.1", srv.port, 64, None, None, count=200)
    finally:
        srv.close()
    assert (result.count, result.timeouts, result.bad) == (200, 0, 0)
    assert result.p50_ns is not None and result.p99_ns is not None
    assert 0 < result.p50_ns <= result.p99_ns
    assert len(srv.received) == 200 and all(d.startswith(b"HELLO ") for d in srv.received)
    numbers = {int.from_bytes(d[8:16], "little") for d in srv.received}
    assert numbers == set(range(200))  # every request its own number, echoed back


def test_the_probe_rejects_corrupt_replies_and_waits_out_lost_ones() -> None:
    corrupt = ThreadServer("corrupt")  # every 10th reply has its last byte flipped
    try:
        bad = probe_rtt("127.0.0.1", corrupt.port, 64, None, None, count=100)
    finally:
        corrupt.close()
    assert (bad.count, bad.bad, bad.timeouts) == (90, 10, 0)
    drop = ThreadServer("drop")  # every 10th request unanswered
    try:
        lost = probe_rtt("127.0.0.1", drop.port, 64, None, None, count=30)
    finally:
        drop.close()
    assert (lost.count, lost.timeouts, lost.bad) == (27, 3, 0)


def test_the_crosscheck_alternates_both_clients_against_one_server() -> None:
    srv = ThreadServer("correct")
    try:
        check = crosscheck(DriverConfig("pingpong", port=srv.port, size=64), repetitions=2)
    finally:
        srv.close()
    assert len(check["ratios"]) == 2 and check["tolerance"] == TOLERANCE
    assert check["ours_p50_ns"] > 0 and check["probe_p50_ns"] > 0
    assert check["within_tolerance"] == (abs(check["ratio"] - 1.0) <= TOLERANCE)
    probed = [d for d in srv.received if d[6:8] == b"\0\0" and len(d) == 64]
    assert len(probed) >= 2 * 2000  # both probe runs reached this server


def _sockperf_server() -> object:
    import shutil

    from bench.calibration.fidelity import SockperfServer
    from bench.system.ports import free_udp_port

    if shutil.which("sockperf") is None:
        pytest.skip("sockperf not installed")
    return SockperfServer(free_udp_port(), None, 120)


def test_the_probe_speaks_sockperf_to_sockperf_server() -> None:
    from bench.calibration.fidelity import SockperfServer

    peer = _sockperf_server()
    assert isinstance(peer, SockperfServer)
    try:
        result = probe_rtt("127.0.0.1", peer.port, 64, None, None, count=300, wire="sockperf")
        unconnected = probe_rtt(
            "127.0.0.1", peer.port, 64, None, None, 300, "sockperf", "unconnected"
        )
        # sockperf server answers nothing in HELLO: every request of the other wire is lost.
        hello = probe_rtt("127.0.0.1", peer.port, 64, None, None, count=3, wire="hello")
    finally:
        peer.stop()
    assert (result.count, result.timeouts, result.bad) == (300, 0, 0)
    assert (unconnected.count, unconnected.timeouts, unconnected.bad) == (300, 0, 0)
    assert (hello.count, hello.timeouts) == (0, 3)


def test_the_unconnected_probe_refuses_a_reply_from_another_address() -> None:
    import socket
    import struct
    import threading

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    stranger.bind(("127.0.0.1", 0))
    sock.settimeout(5.0)
    port = sock.getsockname()[1]
    rounds = 4

    def answer_from_another_port() -> None:
        for _ in range(2 * rounds):  # the connected probe's requests, then the unconnected's
            try:
                data, peer = sock.recvfrom(2048)
            except TimeoutError:
                return
            seq, _flags, size = struct.unpack(">QHI", data[:14])
            stranger.sendto(struct.pack(">QHI", seq, 2, size) + data[14:], peer)

    thread = threading.Thread(target=answer_from_another_port)
    thread.start()
    try:
        # A connected socket never sees the stranger's datagrams; an unconnected one sees
        # them and must check where they came from.
        connected = probe_rtt("127.0.0.1", port, 64, None, None, rounds, "sockperf")
        unconnected = probe_rtt(
            "127.0.0.1", port, 64, None, None, rounds, "sockperf", "unconnected"
        )
    finally:
        thread.join()
        sock.close()
        stranger.close()
    assert (connected.count, connected.timeouts) == (0, rounds)
    assert (unconnected.count, unconnected.bad) == (0, rounds)


def test_the_probe_refuses_an_unknown_socket_kind() -> None:
    from bench.calibration.crosscheck import CrosscheckError

    with pytest.raises(CrosscheckError, match="connected or unconnected"):
        probe_rtt("127.0.0.1", 9, 64, None, None, 1, "sockperf", "sideways")


def test_the_probe_refuses_a_sockperf_reply_to_another_request() -> None:
    import socket
    import struct
    import threading

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5.0)

    def answer_with_the_wrong_number() -> None:
        for _ in range(5):
            data, peer = sock.recvfrom(2048)
            seq, flags, size = struct.unpack(">QHI", data[:14])
            assert flags == 3 and size == len(data)
            sock.sendto(struct.pack(">QHI", seq + 1, 2, size) + data[14:], peer)

    thread = threading.Thread(target=answer_with_the_wrong_number)
    thread.start()
    try:
        result = probe_rtt("127.0.0.1", sock.getsockname()[1], 64, None, None, 5, "sockperf")
    finally:
        thread.join()
        sock.close()
    assert (result.count, result.bad) == (0, 5)
