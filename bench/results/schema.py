"""The JSON Schemas of results.json, and validation against them with one-line errors.

The current schema is ``SCHEMA_ID``; older ones are kept so that an old file is checked
against what it claims to be before it is migrated (bench/results/migrate.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema.exceptions

from bench.errors import UsageError

SCHEMA_ID = "hellobench/6"
SCHEMA_DIR = Path(__file__).resolve().parent / "schema"
SCHEMA_FILES = {
    "hellobench/1": SCHEMA_DIR / "results-v1.json",
    "hellobench/2": SCHEMA_DIR / "results-v2.json",
    "hellobench/3": SCHEMA_DIR / "results-v3.json",
    "hellobench/4": SCHEMA_DIR / "results-v4.json",
    "hellobench/5": SCHEMA_DIR / "results-v5.json",
    "hellobench/6": SCHEMA_DIR / "results-v6.json",
}


class ResultsError(UsageError):
    """A results file that cannot be used; the message is one line and names the file."""


@cache
def schema(schema_id: str = SCHEMA_ID) -> Mapping[str, Any]:
    loaded: Mapping[str, Any] = json.loads(SCHEMA_FILES[schema_id].read_text())
    return loaded


def one_line(text: str) -> str:
    return " ".join(text.split())


def validate(document: object, where: str = "results", schema_id: str | None = None) -> str:
    """Check ``document`` against its own schema (or ``schema_id``); returns the schema id.

    ResultsError when it is not an object, names an unknown schema, or does not match."""
    if not isinstance(document, dict):
        raise ResultsError(f"{where}: not a results document (top level is not an object)")
    version = schema_id or document.get("schema")
    if version not in SCHEMA_FILES:
        known = ", ".join(repr(k) for k in SCHEMA_FILES)
        raise ResultsError(f"{where}: schema {version!r} is not supported (known: {known})")
    assert isinstance(version, str)
    validator = jsonschema.Draft202012Validator(schema(version))
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is not None:
        at = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ResultsError(
            one_line(f"{where}: does not match {version} at {at}: {error.message}")[:300]
        )
    return version
