"""What a results file says about its subjects: the impls it measured (from their manifests,
so that nothing downstream needs an impl's name) and the environments it measured in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.impl.manifest import Manifest, family_rank


@dataclass(frozen=True)
class ImplInfo:
    """An impl as its manifest described it when the run measured it."""

    name: str
    kind: str
    family: str
    language: str = ""
    summary: str = ""
    compare_with: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    server_path: Mapping[str, bool] = field(default_factory=dict)

    @property
    def kernel_side(self) -> bool:
        return self.kind != "userspace"

    def sort_key(self) -> tuple[int, str]:
        """Family by family (FAMILIES order), then by name."""
        return (family_rank(self.family), self.name)

    @classmethod
    def of(cls, manifest: Manifest) -> ImplInfo:
        return cls(
            name=manifest.name,
            kind=manifest.kind,
            family=manifest.family,
            language=manifest.language,
            summary=manifest.summary,
            compare_with=manifest.compare_with,
            roles=manifest.roles,
            server_path=dict(manifest.server_path),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "family": self.family,
            "language": self.language,
            "summary": self.summary,
            "compare_with": list(self.compare_with),
            "roles": list(self.roles),
            "server_path": dict(self.server_path),
        }

    @classmethod
    def from_json(cls, name: str, raw: Mapping[str, Any]) -> ImplInfo:
        return cls(
            name=name,
            kind=str(raw["kind"]),
            family=str(raw["family"]),
            language=str(raw.get("language") or ""),
            summary=str(raw.get("summary") or ""),
            compare_with=tuple(str(x) for x in raw.get("compare_with") or ()),
            roles=tuple(str(x) for x in raw.get("roles") or ()),
            server_path={str(k): bool(v) for k, v in (raw.get("server_path") or {}).items()},
        )


@dataclass(frozen=True)
class Environment:
    """One environment a run measured in.  ``described`` is False when results.json names
    the environment only in rows; ``record`` is the whole record as written."""

    name: str
    record: Mapping[str, Any] = field(default_factory=dict)

    @property
    def described(self) -> bool:
        return bool(self.record)

    @property
    def accel(self) -> str | None:
        value = self.record.get("accel")
        return None if value is None else str(value)

    @property
    def emulated(self) -> bool:
        return bool(self.record.get("emulated"))

    @property
    def calibration(self) -> Mapping[str, Any]:
        cal: Mapping[str, Any] = self.record.get("calibration") or {}
        return cal

    @property
    def placement(self) -> Mapping[str, Any]:
        placement: Mapping[str, Any] = self.record.get("placement") or {}
        return placement

    @property
    def split_placement(self) -> bool:
        """True when server and client were pinned to different CPUs."""
        server, client = self.placement.get("server_cpu"), self.placement.get("client_cpu")
        return server is not None and client is not None and server != client

    @property
    def virtualization(self) -> Mapping[str, Any]:
        found: Mapping[str, Any] = self.record.get("virtualization") or {}
        return found

    def label(self) -> str:
        """How the report names the kind of machine: emulated, a KVM guest of ours, what
        the kernel found it runs on (e.g. "virtualized (KVM guest)"), or native — the
        last only for a record that predates virtualization detection."""
        if self.accel is None:
            return "environment not described"
        if self.accel == "tcg" or self.emulated:
            return "emulated, TCG" if self.accel == "tcg" else "emulated"
        if self.accel == "kvm":
            return "KVM guest"
        detected = self.virtualization.get("label")
        return str(detected) if detected else "native (virtualization not recorded)"

    def get(self, key: str, default: Any = None) -> Any:
        return self.record.get(key, default)
