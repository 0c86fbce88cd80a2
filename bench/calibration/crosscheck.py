"""The driver checked against an independent client on the impls it measures.

sockperf cannot speak HELLO, so against the kernel-side servers (which answer HELLO only)
the driver is checked by a second client written apart from it (bench/native/rtt_probe.c:
blocking send/recv one request at a time, its own timing and percentiles).  Both run
against the same running server, pinned to the same CPU, under the same phase conditions
(receive steering, idle policy), alternating (ABAB...) so that drift hits both; the ratio
is the median of the per-repetition ratios of p50 RTT (ours / the probe's).  The check
holds when the ratio is within ``TOLERANCE`` of 1.
"""

from __future__ import annotations

import statistics
import subprocess
from dataclasses import dataclass, replace
from typing import Any

from bench.driver.client import DriverConfig, DriverError, run_driver
from bench.errors import HellobenchError
from bench.native.build import NATIVE_DIR, BuildError, build_executable
from bench.system.netns import exec_prefix

PROBE_SOURCE = NATIVE_DIR / "rtt_probe.c"
PROBE_COUNT = 2000
REPETITIONS = 3
TOLERANCE = 0.25
DRIVER_SECONDS = 0.3


class CrosscheckError(HellobenchError):
    """The independent client could not be built or did not measure."""


@dataclass(frozen=True)
class ProbeResult:
    count: int
    timeouts: int
    bad: int
    p50_ns: float | None
    p99_ns: float | None


def probe_binary() -> str:
    try:
        return str(build_executable("hello-rtt-probe", [PROBE_SOURCE]))
    except BuildError as exc:
        raise CrosscheckError(str(exc)) from exc


def probe_rtt(
    addr: str,
    port: int,
    size: int,
    cpu: int | None,
    netns: str | None,
    count: int = PROBE_COUNT,
    wire: str = "hello",
    socket: str = "connected",
) -> ProbeResult:
    """``count`` round trips of the independent client against ``addr``:``port``, in
    HELLO or (``wire="sockperf"``) in sockperf's own ping-pong messages, from a connected
    socket (send/recv) or an ``"unconnected"`` one (sendto/recvfrom with the address)."""
    argv = [*exec_prefix(netns), probe_binary(), addr, str(port), str(size), str(count)]
    argv += [str(-1 if cpu is None else cpu), wire, socket]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60 + count * 0.25)
    except subprocess.TimeoutExpired as exc:
        raise CrosscheckError(f"hello-rtt-probe did not finish: {exc}") from exc
    if proc.returncode != 0:
        raise CrosscheckError(f"hello-rtt-probe failed: {proc.stderr.strip()[-300:]}")
    values = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)

    def number(key: str) -> float | None:
        return float(values[key]) if key in values else None

    return ProbeResult(
        int(values.get("count", 0)),
        int(values.get("timeouts", 0)),
        int(values.get("bad", 0)),
        number("p50_ns"),
        number("p99_ns"),
    )


def crosscheck(driver: DriverConfig, repetitions: int = REPETITIONS) -> dict[str, Any]:
    """Our pingpong p50 against the probe's, alternating, against the server ``driver``
    points at (the caller holds the server and the phase conditions)."""
    ours_config = replace(
        driver, mode="pingpong", duration_s=DRIVER_SECONDS, sample_cap=0, outstanding=1
    )
    ours: list[float] = []
    theirs: list[float] = []
    ratios: list[float] = []
    for rep in range(repetitions):
        steps = ("ours", "theirs") if rep % 2 == 0 else ("theirs", "ours")
        got: dict[str, float] = {}
        for step in steps:
            if step == "ours":
                try:
                    p50 = run_driver(ours_config).latency_ns.get("p50")
                except (DriverError, OSError) as exc:
                    raise CrosscheckError(f"driver: {exc}") from exc
            else:
                probe = probe_rtt(driver.addr, driver.port, driver.size, driver.cpu, driver.netns)
                p50 = probe.p50_ns
            if p50 is None:
                raise CrosscheckError(f"{step}: no reply measured")
            got[step] = float(p50)
        ours.append(got["ours"])
        theirs.append(got["theirs"])
        ratios.append(got["ours"] / got["theirs"])
    return CrossCheck(tuple(ours), tuple(theirs), tuple(ratios)).record()


@dataclass(frozen=True)
class CrossCheck:
    """The p50 of each pair, ours and the probe's, in the order taken."""

    ours: tuple[float, ...]
    theirs: tuple[float, ...]
    ratios: tuple[float, ...]

    @property
    def ratio(self) -> float:
        """The median of the per-pair ratios."""
        return float(statistics.median(self.ratios))

    @property
    def within_tolerance(self) -> bool:
        return abs(self.ratio - 1.0) <= TOLERANCE

    def record(self) -> dict[str, Any]:
        """The check as a ``crosschecks`` entry records it (the caller adds where)."""
        return {
            "ours_p50_ns": statistics.median(self.ours),
            "probe_p50_ns": statistics.median(self.theirs),
            "ratio": self.ratio,
            "ratios": list(self.ratios),
            "within_tolerance": self.within_tolerance,
            "tolerance": TOLERANCE,
            "method": (
                f"{len(self.ratios)} alternating pairs: our pingpong for {DRIVER_SECONDS} s and "
                f"{PROBE_COUNT} round trips of hello-rtt-probe (an independent blocking client), "
                "same server, CPU and phase conditions; ratio = median of per-pair p50 ratios"
            ),
        }
