"""Reading older results files: each migration turns a document of one schema into the
next, so that everything downstream reads only the current one.

hellobench/1 → hellobench/2:
- every row gets its placement (``server_cpu``, ``client_cpu``) from its environment's
  ``placement`` (where the environment is not described: none);
- a failed pingpong row gets the run's ``outstanding`` (version 1 left it empty, which
  kept it apart from the configuration's other trials);
- the document gets ``impls``: version 1 did not describe its impls, so they are taken
  from the manifests registered now (bench/impl/registry.py, manifests only); an impl no
  manifest describes gets its kind from its rows and the family "unknown".  The document
  records under ``migrated`` what was filled in.

hellobench/2 → hellobench/3:
- every row's ``per_request`` gets ``server_eagain_syscalls`` and
  ``client_eagain_syscalls`` as null (version 2 did not count the syscalls that returned
  EAGAIN apart: not measured, never 0), and ``migrated`` says so.

hellobench/3 → hellobench/4:
- every row gets ``server_options`` where it is missing (empty: the manifest's defaults;
  writers of version 3 wrote it although the schema did not declare it), and ``migrated``
  says so when any was filled in.  Version 4 admits no undeclared property.

hellobench/4 → hellobench/5:
- nothing to fill in: version 4 rows have no validity gates (``gates``), and a row without
  gates reads as not checked; ``migrated`` says so.

hellobench/5 → hellobench/6:
- nothing to fill in: version 5 traced no anatomy (``anatomy`` absent reads as none);
  ``migrated`` says so.

``migrated`` keeps the version the file was written in (``from``); the note of each step
taken is appended to ``note``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from bench.impl.manifest import ManifestError
from bench.impl.registry import manifests
from bench.results.descriptions import ImplInfo
from bench.results.schema import SCHEMA_ID, ResultsError

Document = dict[str, Any]
EAGAIN_FIELDS = ("server_eagain_syscalls", "client_eagain_syscalls")


def _impls_from_manifests(document: Document) -> tuple[dict[str, Any], list[str]]:
    names = {str(r["impl"]) for r in document["results"]}
    names |= {str(s["impl"]) for s in document["skipped"] if s["impl"] != "*"}
    try:
        found = manifests()
    except ManifestError:
        found = {}
    kinds = {str(r["impl"]): str(r["kind"]) for r in document["results"]}
    impls: dict[str, Any] = {}
    undescribed: list[str] = []
    for name in sorted(names):
        if name in found:
            impls[name] = ImplInfo.of(found[name]).to_json()
        else:
            undescribed.append(name)
            impls[name] = {"kind": kinds.get(name, "userspace"), "family": "unknown"}
    return impls, undescribed


def v1_to_v2(document: Document) -> Document:
    out = copy.deepcopy(document)
    environments = out.get("environments") or {}
    outstanding = (out.get("config") or {}).get("outstanding")
    for row in out["results"]:
        placement = (environments.get(row["env"]) or {}).get("placement") or {}
        row.setdefault("server_cpu", placement.get("server_cpu"))
        row.setdefault("client_cpu", placement.get("client_cpu"))
        if row["mode"] == "pingpong" and row.get("outstanding") is None:
            row["outstanding"] = outstanding
    impls, undescribed = _impls_from_manifests(out)
    out["impls"] = impls
    out["schema"] = "hellobench/2"
    note = (
        "impl descriptions (kind, family, compare_with, roles) taken from the manifests "
        "registered when the file was read"
    )
    if undescribed:
        note += f"; no manifest for {', '.join(undescribed)} (family 'unknown')"
    out["migrated"] = {"from": "hellobench/1", "note": note}
    return out


def _noted(document: Document, version: str, note: str) -> dict[str, Any]:
    """``migrated`` of ``document`` read from ``version``, with ``note`` appended."""
    earlier = document.get("migrated")
    if not isinstance(earlier, dict):
        return {"from": version, "note": note}
    return {**earlier, "note": f"{earlier.get('note', '')}; {note}".lstrip("; ")}


def v2_to_v3(document: Document) -> Document:
    out = copy.deepcopy(document)
    for row in out["results"]:
        per_request = row["per_request"]
        for name in EAGAIN_FIELDS:
            per_request.setdefault(name, None)
    out["schema"] = "hellobench/3"
    note = (
        "syscalls that returned EAGAIN (polls that found nothing) not counted apart in "
        "hellobench/2: server_eagain_syscalls and client_eagain_syscalls not measured (null)"
    )
    out["migrated"] = _noted(out, "hellobench/2", note)
    return out


def v3_to_v4(document: Document) -> Document:
    out = copy.deepcopy(document)
    filled = 0
    for row in out["results"]:
        if "server_options" not in row:
            row["server_options"] = ""
            filled += 1
    out["schema"] = "hellobench/4"
    if filled:
        note = f"server_options not written in {filled} row(s): the manifest's defaults ('')"
        out["migrated"] = _noted(out, "hellobench/3", note)
    return out


def v4_to_v5(document: Document) -> Document:
    out = copy.deepcopy(document)
    out["schema"] = "hellobench/5"
    note = "phases not checked by validity gates (hellobench/4 had none)"
    out["migrated"] = _noted(out, "hellobench/4", note)
    return out


def v5_to_v6(document: Document) -> Document:
    out = copy.deepcopy(document)
    out["schema"] = "hellobench/6"
    note = "no anatomy traced (hellobench/5 had none)"
    out["migrated"] = _noted(out, "hellobench/5", note)
    return out


MIGRATIONS: dict[str, tuple[str, Callable[[Document], Document]]] = {
    "hellobench/1": ("hellobench/2", v1_to_v2),
    "hellobench/2": ("hellobench/3", v2_to_v3),
    "hellobench/3": ("hellobench/4", v3_to_v4),
    "hellobench/4": ("hellobench/5", v4_to_v5),
    "hellobench/5": ("hellobench/6", v5_to_v6),
}


def migrate(document: Document, version: str, where: str) -> Document:
    """``document`` (of schema ``version``) as a document of the current schema."""
    while version != SCHEMA_ID:
        if version not in MIGRATIONS:
            raise ResultsError(f"{where}: no migration from {version!r} to {SCHEMA_ID!r}")
        version, step = MIGRATIONS[version]
        document = step(document)
    return document
