"""The manifest each impl folder carries (``manifest.toml``), parsed into frozen records.

A manifest says what an impl is, so that nothing downstream needs its name:

- ``kind``: userspace | kernel-module | ebpf; ``family``: one of FAMILIES (the report
  groups and colours impls by family);
- ``compare_with``: the impls the claim compares this one with (this one is the candidate);
- ``roles``: what the suite uses it for (ROLES; a role marked single has one holder);
- ``[requires]``: root, loadable modules, BPF, commands, Python packages;
- ``server_path``: transitions / sleeps on the request path (true or false), for the
  control impls whose differences isolate each (bench/analysis/effects.py);
- ``[options]``: defaults handed to the controller; ``[variants.NAME]``: a second impl
  from the same folder with some of these overridden.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from bench.errors import UsageError

Kind = Literal["userspace", "kernel-module", "ebpf"]
KINDS: tuple[Kind, ...] = ("userspace", "kernel-module", "ebpf")
FAMILIES = (
    "user-space blocking",
    "user-space busy-poll",
    "event loop and batching",
    "io_uring",
    "kernel bypass",
    "kernel module",
    "eBPF",
)
# role -> (single holder?, what it means)
ROLES: Mapping[str, tuple[bool, str]] = {
    "user-space-twin": (True, "the user-space server the kernel-side impls are judged against"),
    "compare-reference": (True, "default reference `bench compare` normalises metrics to"),
    "fidelity-server": (True, "the server the driver-fidelity check measures against"),
    "guard": (False, "measured by the CI regression guard"),
    "guard-reference": (True, "the reference the CI regression guard normalises to"),
    "claim": (False, "in the claim design's ladder (bench/runner/design.py)"),
    "claim-vm": (
        False,
        "in the ladder the vm environment measures by default (the comparisons only a "
        "modular kernel can make; bench/runner/design.py)",
    ),
    "transition-dose": (
        True,
        "the server whose extra_syscalls option the claim's dose-response measures",
    ),
    "path-control": (
        False,
        "a corner of the effects table's transitions × sleeps ladder (its server_path)",
    ),
}
KEYS = {
    "name", "kind", "family", "language", "summary", "controller", "compare_with", "roles",
    "requires", "options", "variants", "server_path",
}  # fmt: skip
# What the server does on each request's path; impls one property apart are the controls
# whose difference isolates it (bench/analysis/effects.py).
SERVER_PATH_KEYS = ("transitions", "sleeps")
REQUIRES_KEYS = {"root", "loadable_modules", "bpf", "python", "commands"}


class ManifestError(UsageError):
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
    family: str
    language: str
    summary: str
    folder: Path
    controller: str = "controller.py"
    compare_with: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    requires: Requirements = field(default_factory=Requirements)
    options: Mapping[str, str] = field(default_factory=dict)
    server_path: Mapping[str, bool] = field(default_factory=dict)

    @property
    def kernel_side(self) -> bool:
        """True when the impl answers in the kernel (a module or a BPF program)."""
        return self.kind != "userspace"


def _strings(raw: Mapping[str, Any], key: str, where: Path) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ManifestError(f"{where}: '{key}' must be a list of non-empty strings")
    return tuple(value)


def _requirements(raw: object, where: Path) -> Requirements:
    if not isinstance(raw, Mapping):
        raise ManifestError(f"{where}: [requires] must be a table")
    unknown = set(raw) - REQUIRES_KEYS
    if unknown:
        raise ManifestError(f"{where}: unknown [requires] keys {sorted(unknown)}")
    for key in ("root", "loadable_modules", "bpf"):
        if not isinstance(raw.get(key, False), bool):
            raise ManifestError(f"{where}: [requires] {key} must be true or false")
    return Requirements(
        root=bool(raw.get("root", False)),
        loadable_modules=bool(raw.get("loadable_modules", False)),
        bpf=bool(raw.get("bpf", False)),
        python=_strings(raw, "python", where),
        commands=_strings(raw, "commands", where),
    )


def _one(raw: Mapping[str, Any], folder: Path, where: Path) -> Manifest:
    unknown = set(raw) - KEYS
    if unknown:
        raise ManifestError(f"{where}: unknown keys {sorted(unknown)}")
    for key in ("name", "kind", "family", "language", "summary"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise ManifestError(f"{where}: missing or empty '{key}'")
    if raw["kind"] not in KINDS:
        raise ManifestError(f"{where}: kind {raw['kind']!r} is not one of {', '.join(KINDS)}")
    if raw["family"] not in FAMILIES:
        raise ManifestError(
            f"{where}: family {raw['family']!r} is not one of {', '.join(FAMILIES)}"
        )
    roles = _strings(raw, "roles", where)
    unknown_roles = [r for r in roles if r not in ROLES]
    if unknown_roles:
        raise ManifestError(
            f"{where}: unknown role {unknown_roles[0]!r} (known: {', '.join(ROLES)})"
        )
    options = raw.get("options", {})
    if not isinstance(options, Mapping):
        raise ManifestError(f"{where}: [options] must be a table")
    path = raw.get("server_path", {})
    if not isinstance(path, Mapping) or any(
        k not in SERVER_PATH_KEYS or not isinstance(v, bool) for k, v in path.items()
    ):
        raise ManifestError(
            f"{where}: server_path must map {' and '.join(SERVER_PATH_KEYS)} to true or false"
        )
    return Manifest(
        name=raw["name"],
        kind=cast(Kind, raw["kind"]),
        family=raw["family"],
        language=raw["language"],
        summary=raw["summary"],
        folder=folder,
        controller=str(raw.get("controller", "controller.py")),
        compare_with=_strings(raw, "compare_with", where),
        roles=roles,
        requires=_requirements(raw.get("requires", {}), where),
        options={str(k): str(v) for k, v in options.items()},
        server_path={str(k): bool(v) for k, v in path.items()},
    )


def load_manifests(folder: Path) -> list[Manifest]:
    """The impl described by ``folder/manifest.toml`` and its variants (``[variants.NAME]``)."""
    path = folder / "manifest.toml"
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{path}: not valid TOML: {exc}") from exc
    variants = raw.pop("variants", {})
    if not isinstance(variants, Mapping):
        raise ManifestError(f"{path}: [variants] must hold tables")
    found = [_one(raw, folder, path)]
    for name, override in variants.items():
        if not isinstance(override, Mapping):
            raise ManifestError(f"{path}: [variants.{name}] must be a table")
        merged = {**raw, **override, "name": name}
        merged["requires"] = {**raw.get("requires", {}), **override.get("requires", {})}
        merged["options"] = {**raw.get("options", {}), **override.get("options", {})}
        found.append(_one(merged, folder, path))
    return found


def family_rank(family: str) -> int:
    return FAMILIES.index(family) if family in FAMILIES else len(FAMILIES)
