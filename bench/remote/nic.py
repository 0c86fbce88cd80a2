"""The network interface that carries the driver's traffic: its address, driver, offloads
and queues (``ethtool -i/-k/-l`` where available, sysfs otherwise; "not available" rather
than a guess)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import psutil

NOT_AVAILABLE = "not available"
ETHTOOL_TIMEOUT_S = 10.0


def interface_of(address: str) -> str | None:
    """The interface that holds IPv4 ``address`` here, or None."""
    for name, addrs in psutil.net_if_addrs().items():
        if any(a.family == socket.AF_INET and a.address == address for a in addrs):
            return name
    return None


def _ethtool(flag: str, interface: str) -> str:
    if shutil.which("ethtool") is None:
        return f"{NOT_AVAILABLE}: ethtool not installed"
    try:
        proc = subprocess.run(
            ["ethtool", flag, interface], capture_output=True, text=True, timeout=ETHTOOL_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{NOT_AVAILABLE}: {exc}"
    if proc.returncode != 0:
        return f"{NOT_AVAILABLE}: {(proc.stderr or proc.stdout).strip()[:200]}"
    return proc.stdout.strip()


def _pairs(text: str) -> dict[str, str] | str:
    """``key: value`` lines as a dict (the text itself when it says "not available")."""
    if text.startswith(NOT_AVAILABLE):
        return text
    found: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip():
            found[key.strip()] = value.strip()
    return found


def sysfs_driver(interface: str) -> str:
    """The interface's driver as sysfs names it, or what its link type says."""
    link = Path(f"/sys/class/net/{interface}/device/driver")
    if link.exists():
        return link.resolve().name
    kind = _link_kind(interface)
    return kind if kind else NOT_AVAILABLE


def _link_kind(interface: str) -> str | None:
    """The link's kind (veth, bridge, ...) as ``ip -d -j link`` reports it."""
    try:
        proc = subprocess.run(
            ["ip", "-d", "-j", "link", "show", "dev", interface],
            capture_output=True,
            text=True,
            timeout=ETHTOOL_TIMEOUT_S,
        )
        links = json.loads(proc.stdout) if proc.returncode == 0 else []
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    kind = links[0].get("linkinfo", {}).get("info_kind") if links else None
    return kind if isinstance(kind, str) else None


def _queues(interface: str) -> dict[str, int] | str:
    folder = Path(f"/sys/class/net/{interface}/queues")
    if not folder.is_dir():
        return NOT_AVAILABLE
    names = [p.name for p in folder.iterdir()]
    return {
        "rx": sum(n.startswith("rx-") for n in names),
        "tx": sum(n.startswith("tx-") for n in names),
    }


def driver_name(interface: str) -> str:
    """The driver of ``interface``: ``ethtool -i``'s, else sysfs's, else not available."""
    info = _pairs(_ethtool("-i", interface))
    if isinstance(info, dict) and info.get("driver"):
        return info["driver"]
    return sysfs_driver(interface)


def collect_nic(interface: str) -> dict[str, Any]:
    """What the environment record says of the interface."""
    return {
        "interface": interface,
        "driver": driver_name(interface),
        "ethtool_driver_info": _pairs(_ethtool("-i", interface)),
        "offloads": _pairs(_ethtool("-k", interface)),
        "channels": _pairs(_ethtool("-l", interface)),
        "sysfs_queues": _queues(interface),
        "mtu": _mtu(interface),
    }


def _mtu(interface: str) -> int | str:
    try:
        return int(Path(f"/sys/class/net/{interface}/mtu").read_text())
    except (OSError, ValueError):
        return NOT_AVAILABLE
