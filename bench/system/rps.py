"""Receive packet steering (RPS): which CPU processes a device's received packets.

On lo and veth a packet is "received" inside the sender's own transmit call, so without
RPS a kernel-side reply (XDP, tc, an encap socket) is built on the client's CPU, inline in
its send.  Steering the server end's receive queues to the server CPU moves that work where
a NIC's interrupt would put it.  The previous masks are recorded in the ledger before the
first write, so a run that is killed still has them restored by ``bench cleanup``.

Device names, queue paths and masks are checked before use (a ledger record is read back
from a file), and reach the commands as arguments, never as script text.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.errors import HellobenchError
from bench.system import ledger
from bench.system.ledger import Record
from bench.system.netns import COMMAND_TIMEOUT_S, exec_prefix
from bench.system.netns import exists as netns_exists

KIND = "rps"
CLEANER = "bench.system.rps:restore_recorded"
SYS_NET = Path("/sys/class/net")
DEVICE = re.compile(r"[A-Za-z0-9_.:@-]{1,15}")  # IFNAMSIZ - 1, no "/" and no space
QUEUE_FILE = re.compile(rf"{SYS_NET}/{DEVICE.pattern}/queues/rx-[0-9]{{1,5}}/rps_cpus")
MASK = re.compile(r"[0-9a-fA-F]{1,16}(,[0-9a-fA-F]{1,16}){0,63}")
# read every receive queue's mask of the device named by $1; write $1 into the file $2
READ_SCRIPT = 'for f in /sys/class/net/"$1"/queues/rx-*/rps_cpus; do echo "$f $(cat "$f")"; done'
WRITE_SCRIPT = 'printf "%s\\n" "$1" > "$2"'


class RpsError(HellobenchError):
    """Steering could not be read, set or restored."""


def cpu_mask(cpu: int | None) -> str:
    """The rps_cpus value that steers to ``cpu`` (None: RPS off, "0")."""
    return "0" if cpu is None else format(1 << cpu, "x")


def _checked_device(device: str) -> str:
    if not DEVICE.fullmatch(device):
        raise RpsError(f"{device!r} is not a network device name")
    return device


def _checked_masks(masks: dict[str, str]) -> dict[str, str]:
    for path, mask in masks.items():
        if not QUEUE_FILE.fullmatch(path):
            raise RpsError(f"{path!r} is not a receive queue's rps_cpus file")
        if not MASK.fullmatch(mask):
            raise RpsError(f"{mask!r} is not a CPU mask")
    return masks


def _run(netns: str | None, script: str, *values: str) -> str:
    """Run the fixed ``script`` with ``values`` as its arguments, in ``netns``: sysfs shows
    a namespace's devices only to a process that mounted it there, which ``ip netns exec``
    does."""
    argv = [*exec_prefix(netns), "sh", "-c", script, "sh", *values]
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RpsError(f"{' '.join(argv[:-1])}: {exc}") from exc
    if proc.returncode != 0:
        raise RpsError(f"rps in {netns or 'this namespace'}: {proc.stderr.strip()}")
    return proc.stdout


def read_masks(netns: str | None, device: str) -> dict[str, str]:
    """rps_cpus of every receive queue of ``device``, by queue file path (in this
    namespace read directly: a shell per read cost a tenth of a second under emulation)."""
    _checked_device(device)
    masks: dict[str, str] = {}
    if netns is None:
        for queue in sorted(SYS_NET.glob(f"{device}/queues/rx-*/rps_cpus")):
            try:
                masks[str(queue)] = queue.read_text().strip()
            except OSError as exc:
                raise RpsError(f"reading {queue}: {exc}") from exc
    else:
        for line in _run(netns, READ_SCRIPT, device).splitlines():
            path, _, mask = line.partition(" ")
            if mask and "*" not in path:
                masks[path] = mask.strip()
    if not masks:
        raise RpsError(f"{device} in {netns or 'this namespace'} has no RPS queues")
    return _checked_masks(masks)


def write_masks(netns: str | None, masks: dict[str, str]) -> None:
    for path, mask in _checked_masks(masks).items():
        if netns is not None:
            _run(netns, WRITE_SCRIPT, mask, path)
            continue
        try:
            Path(path).write_text(f"{mask}\n")
        except OSError as exc:
            raise RpsError(f"rps in this namespace: writing {path}: {exc}") from exc


def _ident(netns: str | None, device: str) -> str:
    return f"{netns or 'host'}-{device}"


@contextmanager
def steered(netns: str | None, device: str, cpu: int | None) -> Iterator[None]:
    """For the body, ``device``'s receive processing runs on ``cpu`` (None: RPS off); the
    previous masks are restored afterwards, whatever happens."""
    previous = read_masks(netns, device)
    wanted = {path: cpu_mask(cpu) for path in previous}
    if _same(previous, wanted):
        yield
        return
    ident = _ident(netns, device)
    ledger.record(KIND, ident, CLEANER, netns=netns, masks=previous)
    try:
        write_masks(netns, wanted)
        yield
    finally:
        write_masks(netns, previous)
        ledger.release(KIND, ident)


def _same(a: dict[str, str], b: dict[str, str]) -> bool:
    return all(int(a[k].replace(",", ""), 16) == int(b[k], 16) for k in b)


def restore_recorded(rec: Record) -> None:
    """Ledger cleaner for kind ``rps``: put the recorded masks back (a namespace that is
    gone took its devices with it)."""
    netns = rec.details.get("netns")
    if netns and not netns_exists(str(netns)):
        return
    write_masks(netns, {str(k): str(v) for k, v in dict(rec.details.get("masks") or {}).items()})
