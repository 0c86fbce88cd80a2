"""Finds impls by convention: every folder under impls/ with a manifest.toml, plus folders
that installed packages register through the ``hellobench.impls`` entry point group."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from bench import PROJECT_ROOT
from bench.host import HostCapabilities, capabilities
from bench.impl.api import Impl
from bench.impl.manifest import Manifest, ManifestError, load_manifests

ENTRY_POINT_GROUP = "hellobench.impls"


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
    """Folders that hold impl folders: $HELLOBENCH_IMPLS (path list) or the project's impls/."""
    env = os.environ.get("HELLOBENCH_IMPLS")
    roots = [Path(p) for p in env.split(os.pathsep) if p] if env else [PROJECT_ROOT / "impls"]
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


def discover(host: HostCapabilities | None = None) -> dict[str, Entry]:
    """Every registered impl by name, each with its availability on ``host``."""
    host = host or capabilities()
    entries: dict[str, Entry] = {}
    for folder in _impl_folders(impl_roots()):
        for manifest in load_manifests(folder):
            if manifest.name in entries:
                raise ManifestError(f"{folder}: impl name {manifest.name!r} registered twice")
            entries[manifest.name] = _entry(manifest, host)
    return entries
