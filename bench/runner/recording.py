"""The run being measured and where it lives: rows are saved as they come, at most every
``SAVE_EVERY_S``, skips at once, so that an interrupted run leaves the rows it measured
(marked incomplete; a Ctrl-C saves every row, a kill loses at most the last seconds').
Writing the whole document after every phase, or after every impl's turn, cost a growing
share of a long run's time (tenths of a second per save under emulation)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.results.rows import PhaseRow
from bench.results.run import Run

SAVE_EVERY_S = 3.0


@dataclass
class Recording:
    run: Run
    run_dir: Path
    failures: list[str] = field(default_factory=list)
    saved_at: float = 0.0

    def add_row(self, row: PhaseRow) -> None:
        self.run.add_row(row)
        if not row.ok:
            self.failures.append(f"{row.impl} {row.mode} trial {row.trial}: {row.error}")
        self._soon()

    def skip(self, impl: str, env: str, reason: str) -> None:
        self.run.skip(impl, env, reason)
        self.save()

    def _soon(self) -> None:
        if time.monotonic() - self.saved_at >= SAVE_EVERY_S:
            self.save()

    def save(self) -> Path:
        """Write the run; the schema is checked on the complete run's save (checking the
        growing document on every save cost seconds per minute of a run)."""
        path = self.run.save(self.run_dir, check=self.run.complete)
        self.saved_at = time.monotonic()
        return path
