"""Finds impls by convention: every folder under impls/ with a manifest.toml (the checkout's,
or the copy an installed wheel carries), plus folders that installed packages register
through the ``hellobench.impls`` entry point group.  Finding none is an error, never an
empty list.

``manifests()`` reads the manifests only; ``discover()`` also loads each controller and says
whether the impl can run here.  Both check the manifests against each other: names are
unique, ``compare_with`` names registered impls, a single-holder role has one holder.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from bench import PROJECT_ROOT, SHIPPED_IMPLS, in_checkout
from bench.host.capabilities import HostCapabilities, capabilities
from bench.impl.api import Impl
from bench.impl.manifest import ROLES, Manifest, ManifestError, load_manifests

ENTRY_POINT_GROUP = "hellobench.impls"


class NoImplsError(ManifestError):
    """No impl folder was found where impls are looked for (bad input: exit 2)."""


@dataclass(frozen=True)
class Entry:
    """A registered impl and whether it can run on this machine."""

    manifest: Manifest
    impl: Impl | None
    unavailable: str | None

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def available(self) -> bool:
        return self.unavailable is None


def impl_roots() -> list[Path]:
    """Folders that hold impl folders: $HELLOBENCH_IMPLS (path list), or the checkout's
    impls/, or those an installed wheel carries; then any that packages register."""
    env = os.environ.get("HELLOBENCH_IMPLS")
    default = PROJECT_ROOT / "impls" if in_checkout() else SHIPPED_IMPLS
    roots = [Path(p) for p in env.split(os.pathsep) if p] if env else [default]
    for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        provided = point.load()()
        roots.extend(Path(p) for p in (provided if isinstance(provided, list) else [provided]))
    return roots


def _impl_folders(roots: Iterable[Path]) -> list[Path]:
    folders: list[Path] = []
    for root in roots:
        if (root / "manifest.toml").exists():
            folders.append(root)
        elif root.is_dir():
            folders.extend(sorted(p for p in root.iterdir() if (p / "manifest.toml").exists()))
    return folders


def _load_controller(manifest: Manifest) -> ModuleType:
    path = manifest.folder / manifest.controller
    module_name = "hellobench_impl_" + manifest.folder.name.replace("-", "_")
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ManifestError(f"{path}: cannot load controller")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _entry(manifest: Manifest, host: HostCapabilities) -> Entry:
    try:
        impl = _load_controller(manifest).create(manifest)
    except Exception as exc:  # a broken third-party controller must not break the registry
        return Entry(manifest, None, f"controller failed to load: {exc}")
    if not isinstance(impl, Impl):
        return Entry(manifest, None, "controller's create() did not return an Impl")
    return Entry(manifest, impl, impl.unavailable_reason(host))


def _check(found: dict[str, Manifest]) -> None:
    for manifest in found.values():
        where = manifest.folder / "manifest.toml"
        for other in manifest.compare_with:
            if other not in found:
                raise ManifestError(f"{where}: compare_with names {other!r}, no registered impl")
            if other == manifest.name:
                raise ManifestError(f"{where}: compare_with names the impl itself")
    for role, (single, _) in ROLES.items():
        holders = sorted(m.name for m in found.values() if role in m.roles)
        if single and len(holders) > 1:
            raise ManifestError(f"role {role!r} is held by {', '.join(holders)}: one at most")


def manifests() -> dict[str, Manifest]:
    """Every registered impl's manifest by name (no controller is loaded)."""
    found: dict[str, Manifest] = {}
    for folder in _impl_folders(impl_roots()):
        for manifest in load_manifests(folder):
            if manifest.name in found:
                raise ManifestError(f"{folder}: impl name {manifest.name!r} registered twice")
            found[manifest.name] = manifest
    if not found:
        where = ", ".join(str(root) for root in impl_roots()) or "no folder"
        raise NoImplsError(f"no impl is registered: no impl folder with a manifest.toml in {where}")
    _check(found)
    return found


def discover(host: HostCapabilities | None = None) -> dict[str, Entry]:
    """Every registered impl by name, each with its availability on ``host``."""
    host = host or capabilities()
    return {name: _entry(manifest, host) for name, manifest in manifests().items()}


def role_holders(role: str, found: dict[str, Manifest] | None = None) -> list[str]:
    """The impls whose manifests give them ``role`` (a known role), by name."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    found = manifests() if found is None else found
    return sorted(name for name, m in found.items() if role in m.roles)


def role_holder(role: str, found: dict[str, Manifest] | None = None) -> str:
    """The one impl holding a single-holder ``role``; ManifestError when none does."""
    holders = role_holders(role, found)
    if not holders:
        raise ManifestError(f"no registered impl has the role {role!r} ({ROLES[role][1]})")
    return holders[0]
