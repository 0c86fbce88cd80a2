"""A throwaway PostgreSQL server for the tests: Debian's binaries, a cluster in a fresh
temporary folder, reachable only through a Unix socket in that folder (no TCP port), with
trust authentication for one superuser.

PostgreSQL refuses to run as root, so when the tests run as root the cluster belongs to the
``postgres`` account that Debian's package creates, and initdb and pg_ctl run as that
account (``runuser``).  Nothing here touches a cluster the package may have started.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BINARIES = Path("/usr/lib/postgresql")
SUPERUSER = "hellobench"
SERVER_ACCOUNT = "postgres"  # what Debian's package creates; used when the tests run as root
PORT = 5432  # names the socket file only: the server listens on no TCP address
START_TIMEOUT_S = 60
MISSING = (
    "PostgreSQL server binaries not found ({where}/*/bin/initdb): run scripts/bootstrap.sh, "
    "which installs Debian's postgresql package"
)


class PostgresUnavailable(RuntimeError):
    """The server could not be found or started; the message says what to do."""


@dataclass(frozen=True)
class PostgresServer:
    """A running throwaway server: its socket folder and the superuser to connect as."""

    socket_dir: Path
    user: str = SUPERUSER
    port: int = PORT

    def url(self, database: str = "postgres") -> str:
        """A ``postgresql://`` URL of ``database`` over the server's Unix socket."""
        return f"postgresql://{self.user}@/{database}?host={self.socket_dir}&port={self.port}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        import psycopg

        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"{name!r} is not a plain database name")
        with psycopg.connect(
            host=str(self.socket_dir), port=self.port, user=self.user, dbname="postgres",
            autocommit=True,
        ) as conn:  # fmt: skip
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)


def bin_dir() -> Path:
    """The newest installed server version's bin folder; PostgresUnavailable if none."""
    found = sorted(
        (p.parent for p in BINARIES.glob("*/bin/initdb")),
        key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.name)] or [0],
    )
    if not found:
        raise PostgresUnavailable(MISSING.format(where=BINARIES))
    return found[-1]


def _as_server_account(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    if shutil.which("runuser") is None:
        raise PostgresUnavailable("runuser not found: needed to run PostgreSQL as non-root")
    return ["runuser", "-u", SERVER_ACCOUNT, "--", *argv]


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(
        _as_server_account(argv), capture_output=True, text=True, timeout=START_TIMEOUT_S
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-2000:]
        raise PostgresUnavailable(f"{what} failed (exit {done.returncode}): {tail}")


def _own(folder: Path) -> None:
    """Hand ``folder`` to the server account when running as root."""
    if os.geteuid() != 0:
        return
    try:
        account = pwd.getpwnam(SERVER_ACCOUNT)
    except KeyError:
        raise PostgresUnavailable(
            f"no {SERVER_ACCOUNT!r} account to run PostgreSQL as: run scripts/bootstrap.sh"
        ) from None
    os.chown(folder, account.pw_uid, account.pw_gid)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a server in a new temporary folder; stop it and remove the folder on exit,
    whatever happened in between."""
    binaries = bin_dir()
    # not under pytest's tmp_path: its parents are private to root, and the server account
    # must reach the socket and the data folder
    root = Path(tempfile.mkdtemp(prefix="hellobench-pg-"))
    data, log = root / "data", root / "server.log"
    started = False
    try:
        root.chmod(0o755)
        _own(root)
        _run(
            [str(binaries / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust",
             "--encoding=UTF8", "--locale=C", "--no-sync"],
            "initdb",
        )  # fmt: skip
        options = (
            f"-k {root} -p {PORT} -c listen_addresses='' -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        started = True  # from here on a half-started server is stopped too
        try:
            _run(
                [str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-w",
                 "-t", str(START_TIMEOUT_S), "-o", options, "start"],
                "pg_ctl start",
            )  # fmt: skip
        except PostgresUnavailable as exc:
            server_log = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise PostgresUnavailable(f"{exc}\n{server_log}") from None
        yield PostgresServer(socket_dir=root)
    finally:
        try:
            if started:
                subprocess.run(
                    _as_server_account(
                        [str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                         "stop"]
                    ),
                    capture_output=True,
                    timeout=START_TIMEOUT_S,
                )  # fmt: skip
        finally:
            shutil.rmtree(root, ignore_errors=True)
