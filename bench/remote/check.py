"""``bench remote-check``: what a server host lacks for two-host runs, one line each.

The agent reports its own side (``report_here``, run there as ``bench agent --check``);
this side adds what only it can tell: whether ssh reaches the host, whether the Python and
the project folder are there, whether the versions match."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from typing import Any

from bench import __version__
from bench.host.capabilities import capabilities
from bench.remote.ssh import ServerHost, run_agent_once

MISSING_PYTHON = 3
MISSING_DIR = 4


def report_here() -> dict[str, Any]:
    """This host's side of the check: what is missing, and notes that are not fixable
    by installing something (a kernel without module support)."""
    host = capabilities()
    missing: list[str] = []
    notes: list[str] = []
    if os.geteuid() != 0:
        missing.append(f"root: the agent runs as uid {os.geteuid()} (servers and eBPF need root)")
    for tool, why in (("clang", "builds the eBPF impls"), ("bpftool", "loads them")):
        if shutil.which(tool) is None:
            missing.append(f"{tool}: not installed ({why})")
    if not host.bpf and host.is_root:
        missing.append(f"BPF: {host.bpf_reason}")
    if not host.loadable_modules:
        if host.modules_reason.startswith("no kernel headers"):
            missing.append(f"kernel headers: {host.modules_reason} (kmod impls build with them)")
        else:
            notes.append(f"kernel modules cannot load: {host.modules_reason} (kmod impls skipped)")
    return {"version": __version__, "python": sys.version.split()[0], "missing": missing,
            "notes": notes}  # fmt: skip


def _probe_command(host: ServerHost) -> str:
    python, folder = shlex.quote(host.python), shlex.quote(host.directory)
    return (
        f"command -v {python} >/dev/null 2>&1 || exit {MISSING_PYTHON}; "
        f"cd {folder} 2>/dev/null || exit {MISSING_DIR}; "
        f"exec {shlex.join([host.python, '-m', 'bench', 'agent', '--check'])}"
    )


def check_remote(host: ServerHost) -> tuple[list[str], list[str]]:
    """(missing, notes) on ``host``; an unreachable host is one missing line."""
    code, out, err = run_agent_once(host, command=_probe_command(host))
    last = (err.strip().splitlines() or ["no message"])[-1]
    if code == 255:
        return [f"ssh: cannot reach {host.target}: {last}"], []
    if code == MISSING_PYTHON:
        return [f"Python: {host.python} not found on {host.host}"], []
    if code == MISSING_DIR:
        return [f"hellobench: no folder {host.directory} on {host.host}"], []
    found = None
    for line in out.splitlines():
        try:
            found = json.loads(line)
        except ValueError:
            continue
    if not isinstance(found, dict):
        return [f"hellobench: {host.python} -m bench agent --check failed there: {last}"], []
    missing = [str(m) for m in found.get("missing") or ()]
    if found.get("version") != __version__:
        missing.insert(0, f"hellobench: version {found.get('version')} there, {__version__} here")
    return missing, [str(n) for n in found.get("notes") or ()]
