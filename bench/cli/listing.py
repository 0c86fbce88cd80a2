"""``bench list``: every registered impl, and why it cannot run here if it cannot."""

from __future__ import annotations

import argparse
import json

from rich.console import Console

from bench.errors import EXIT_OK
from bench.impl.registry import discover


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="one JSON record per impl")


def run(args: argparse.Namespace, console: Console) -> int:
    records = [
        {
            "name": e.name,
            "kind": e.manifest.kind,
            "family": e.manifest.family,
            "language": e.manifest.language,
            "summary": e.manifest.summary,
            "roles": list(e.manifest.roles),
            "compare_with": list(e.manifest.compare_with),
            "available": e.available,
            "reason": e.unavailable,
        }
        for e in discover().values()
    ]
    if args.json:
        print(json.dumps(records, indent=1))
        return EXIT_OK
    for r in records:
        state = (
            "[green]available[/green]"
            if r["available"]
            else f"[yellow]unavailable[/yellow]: {r['reason']}"
        )
        console.print(f"{r['name']:<20} {r['kind']:<14} {state}\n    {r['summary']}")
    return EXIT_OK
