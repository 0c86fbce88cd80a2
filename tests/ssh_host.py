"""A second "host" for two-host tests: a network namespace joined to this one by a veth
pair (198.18.7.1 here, 198.18.7.2 there), running Debian's OpenSSH server with a host key
and an authorized key made for the test.  Everything is torn down at the end, on failure
too: every process inside the namespace is killed, then the namespace (and with it the
veth pair) is deleted.

The "remote" shares this machine's filesystem; the agent keeps its own ledger, apart from
the driver's."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from bench.system.netns import SUITE_PREFIX

SSHD = Path("/usr/sbin/sshd")
HERE_ADDR = "198.18.7.1"
THERE_ADDR = "198.18.7.2"
PREFIXLEN = 24
READY_TIMEOUT_S = 15.0
EXIT_TIMEOUT_S = 10.0
PRIVSEP_DIR = Path("/run/sshd")


@dataclass(frozen=True)
class SshHost:
    netns: str
    interface: str  # the netns end of the veth pair
    local_interface: str
    address: str
    identity: Path
    known_hosts: Path
    sshd_pid: int
    log: Path

    @property
    def target(self) -> str:
        return f"root@{self.address}"

    @property
    def ssh_options(self) -> tuple[str, ...]:
        return (
            f"IdentityFile={self.identity}",
            f"UserKnownHostsFile={self.known_hosts}",
            "GlobalKnownHostsFile=/dev/null",
            "StrictHostKeyChecking=yes",
            "IdentitiesOnly=yes",
        )

    def cli_options(self) -> list[str]:
        return [arg for opt in self.ssh_options for arg in ("--ssh-option", opt)]

    def pids(self) -> list[int]:
        """Every process inside the namespace."""
        out = _run("ip", "netns", "pids", self.netns, check=False).stdout
        return [int(p) for p in out.split()]

    def processes(self) -> dict[int, str]:
        """pid -> command line of every process inside the namespace but sshd's listener."""
        found: dict[int, str] = {}
        for pid in self.pids():
            if pid == self.sshd_pid:
                continue
            with suppress(OSError):
                raw = Path(f"/proc/{pid}/cmdline").read_bytes()
                found[pid] = raw.replace(b"\0", b" ").decode(errors="replace").strip()
        return found

    def session_pids(self) -> list[int]:
        """sshd's per-connection processes (not the listener)."""
        return [pid for pid, cmd in self.processes().items() if cmd.startswith("sshd")]

    def link(self) -> str:
        return _run("ip", "-n", self.netns, "link", "show", "dev", self.interface).stdout


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc


def _keygen(path: Path) -> None:
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hellobench-test", "-f", str(path))


def _config(folder: Path) -> Path:
    path = folder / "sshd_config"
    path.write_text(
        "\n".join(
            [
                f"ListenAddress {THERE_ADDR}",
                "Port 22",
                f"HostKey {folder / 'host_key'}",
                f"AuthorizedKeysFile {folder / 'authorized_keys'}",
                "PermitRootLogin prohibit-password",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "StrictModes no",
                "UsePAM no",
                f"PidFile {folder / 'sshd.pid'}",
                "LogLevel VERBOSE",
                "MaxStartups 50",
                "",
            ]
        )
    )
    return path


def _wait_listening() -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((THERE_ADDR, 22)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"sshd did not listen on {THERE_ADDR}:22 within {READY_TIMEOUT_S} s")


def _kill_all(host_netns: str) -> None:
    """SIGKILL every process inside the namespace, bounded wait until none is left."""
    deadline = time.monotonic() + EXIT_TIMEOUT_S
    while time.monotonic() < deadline:
        out = _run("ip", "netns", "pids", host_netns, check=False).stdout
        pids = [int(p) for p in out.split()]
        if not pids:
            return
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


@contextmanager
def ssh_host(folder: Path) -> Iterator[SshHost]:
    """The namespace, the veth pair and sshd, removed on the way out whatever happens."""
    tag = f"{os.getpid() % 100000}"
    netns = f"{SUITE_PREFIX}ssh{tag}"
    here, there = f"hb-sh{tag}", f"hb-sn{tag}"
    made_privsep = not PRIVSEP_DIR.exists()
    sshd: subprocess.Popen[bytes] | None = None
    log = folder / "sshd.log"
    _run("ip", "netns", "add", netns)
    try:
        _run("ip", "link", "add", here, "type", "veth", "peer", "name", there, "netns", netns)
        _run("ip", "addr", "add", f"{HERE_ADDR}/{PREFIXLEN}", "dev", here)
        _run("ip", "link", "set", here, "up")
        _run("ip", "-n", netns, "link", "set", "lo", "up")
        _run("ip", "-n", netns, "addr", "add", f"{THERE_ADDR}/{PREFIXLEN}", "dev", there)
        _run("ip", "-n", netns, "link", "set", there, "up")
        _keygen(folder / "host_key")
        _keygen(folder / "client_key")
        (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
        host_pub = (folder / "host_key.pub").read_text().split()
        (folder / "known_hosts").write_text(f"{THERE_ADDR} {host_pub[0]} {host_pub[1]}\n")
        if made_privsep:
            PRIVSEP_DIR.mkdir(mode=0o755)
        config = _config(folder)
        with open(log, "wb") as err:
            sshd = subprocess.Popen(
                ["ip", "netns", "exec", netns, str(SSHD), "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
            )
        _wait_listening()
        yield SshHost(
            netns=netns,
            interface=there,
            local_interface=here,
            address=THERE_ADDR,
            identity=folder / "client_key",
            known_hosts=folder / "known_hosts",
            sshd_pid=sshd.pid,
            log=log,
        )
    finally:
        if sshd is not None:
            sshd.kill()
            with suppress(subprocess.TimeoutExpired):
                sshd.wait(timeout=EXIT_TIMEOUT_S)
        _kill_all(netns)
        _run("ip", "netns", "del", netns, check=False)
        _run("ip", "link", "del", here, check=False)  # gone with the namespace, normally
        if made_privsep:
            with suppress(OSError):
                PRIVSEP_DIR.rmdir()
