"""Writing results.json: versioned, validated against the shipped JSON Schema, written
atomically so that a reader never sees half a file."""

from __future__ import annotations

import json
import os
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_VERSION = "hellobench/1"
SCHEMA_FILE = Path(__file__).resolve().parent / "schema" / "results-v1.json"
RESULTS_NAME = "results.json"
INCOMPLETE_MARKER = "INCOMPLETE"


@cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return loaded


def validate(document: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError when ``document`` is not a valid results file."""
    jsonschema.validate(document, schema())


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes it private; results are for everyone to read
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_results(run_dir: Path, document: dict[str, Any]) -> Path:
    """Validate and atomically write ``run_dir/results.json``; returns its path."""
    validate(document)
    path = run_dir / RESULTS_NAME
    write_atomic(path, json.dumps(document, indent=1, sort_keys=False) + "\n")
    marker = run_dir / INCOMPLETE_MARKER
    if document["complete"]:
        marker.unlink(missing_ok=True)
    else:
        marker.write_text("this run did not finish; results.json holds the rows measured so far\n")
    return path
