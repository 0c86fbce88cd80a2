"""The manifest each impl folder carries (``manifest.toml``), parsed into frozen records."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

Kind = Literal["userspace", "kernel-module", "ebpf"]
KINDS: tuple[Kind, ...] = ("userspace", "kernel-module", "ebpf")


class ManifestError(ValueError):
    """A manifest that cannot be used, with the file it came from."""


@dataclass(frozen=True)
class Requirements:
    root: bool = False
    loadable_modules: bool = False
    bpf: bool = False
    python: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()


@dataclass(frozen=True)
class Manifest:
    name: str
    kind: Kind
    language: str
    summary: str
    folder: Path
    controller: str = "controller.py"
    requires: Requirements = field(default_factory=Requirements)
    options: Mapping[str, str] = field(default_factory=dict)


def _requirements(raw: Mapping[str, Any], where: Path) -> Requirements:
    unknown = set(raw) - {"root", "loadable_modules", "bpf", "python", "commands"}
    if unknown:
        raise ManifestError(f"{where}: unknown [requires] keys {sorted(unknown)}")
    return Requirements(
        root=bool(raw.get("root", False)),
        loadable_modules=bool(raw.get("loadable_modules", False)),
        bpf=bool(raw.get("bpf", False)),
        python=tuple(raw.get("python", ())),
        commands=tuple(raw.get("commands", ())),
    )


def _one(raw: Mapping[str, Any], folder: Path, where: Path) -> Manifest:
    for key in ("name", "kind", "language", "summary"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise ManifestError(f"{where}: missing or empty '{key}'")
    if raw["kind"] not in KINDS:
        raise ManifestError(f"{where}: kind must be one of {', '.join(KINDS)}")
    return Manifest(
        name=raw["name"],
        kind=cast(Kind, raw["kind"]),
        language=raw["language"],
        summary=raw["summary"],
        folder=folder,
        controller=str(raw.get("controller", "controller.py")),
        requires=_requirements(raw.get("requires", {}), where),
        options={str(k): str(v) for k, v in raw.get("options", {}).items()},
    )


def load_manifests(folder: Path) -> list[Manifest]:
    """The impl described by ``folder/manifest.toml`` and its variants (``[variants.NAME]``)."""
    path = folder / "manifest.toml"
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ManifestError(f"{path}: {exc}") from exc
    variants = raw.pop("variants", {})
    base = _one(raw, folder, path)
    found = [base]
    for name, override in variants.items():
        merged = {**raw, **override, "name": name}
        merged["requires"] = {**raw.get("requires", {}), **override.get("requires", {})}
        merged["options"] = {**raw.get("options", {}), **override.get("options", {})}
        found.append(_one(merged, folder, path))
    return found
