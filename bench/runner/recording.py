"""The run being measured and where it lives: every row and skip is saved as it comes, so
that an interrupted run leaves the rows it measured (marked incomplete)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.results.rows import PhaseRow
from bench.results.run import Run


@dataclass
class Recording:
    run: Run
    run_dir: Path
    failures: list[str] = field(default_factory=list)

    def add_row(self, row: PhaseRow) -> None:
        self.run.add_row(row)
        if not row.ok:
            self.failures.append(f"{row.impl} {row.mode} trial {row.trial}: {row.error}")
        self.save()

    def skip(self, impl: str, env: str, reason: str) -> None:
        self.run.skip(impl, env, reason)
        self.save()

    def save(self) -> Path:
        return self.run.save(self.run_dir)
