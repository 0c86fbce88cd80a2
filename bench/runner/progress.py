"""How a run says where it is: log lines for people, and structured steps for a display.

A :class:`Progress` is called with a line of text (something happened: a skip, a
cleanup, a cross-check) and told each :class:`Step` (a phase begun: environment, impl,
mode, round x/N, phases done of the planned total).  The host renders the steps as a live
display (bench/cli/live.py).  A guest cannot draw on the host's terminal, so it prints
each step as one line, ``STEP_PREFIX`` and the step's JSON, to its console, which the host
reads as it comes (:class:`ConsoleRelay`) and renders as the vm environment's steps.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Protocol, TextIO

STEP_PREFIX = "HELLOBENCH-PROGRESS "
GUEST_MARKER = "HELLOBENCH-GUEST: "  # what the guest's init prints (bench/vm/init_script.py)


@dataclass(frozen=True)
class Step:
    """One step of a run in one environment.  ``done`` phases of ``total`` are finished
    when this one begins (``total`` None: not planned yet, as while a guest boots)."""

    env: str
    stage: str  # calibrate | phase | crosscheck | anatomy | boot | guest | finish
    text: str
    impl: str | None = None
    mode: str | None = None
    round: int | None = None  # 1-based
    rounds: int | None = None
    done: int | None = None
    total: int | None = None

    def line(self) -> str:
        return STEP_PREFIX + json.dumps(asdict(self), separators=(",", ":"))

    @staticmethod
    def parse(line: str) -> Step | None:
        """The step a console line carries, or None (any other line, or a damaged one)."""
        at = line.find(STEP_PREFIX)
        if at < 0:
            return None
        try:
            data: Any = json.loads(line[at + len(STEP_PREFIX) :])
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        known = {f.name for f in fields(Step)}
        try:
            return Step(**{k: v for k, v in data.items() if k in known})
        except TypeError:
            return None


class Progress(Protocol):
    def __call__(self, text: str) -> None: ...

    def step(self, step: Step) -> None: ...


class LogProgress:
    """Log lines to ``log``; steps are dropped (for callers that only want the log)."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self._log = log

    def __call__(self, text: str) -> None:
        self._log(text)

    def step(self, step: Step) -> None:
        del step


class StepLines:
    """What a guest's run prints: log lines as they are, and each step as one
    ``STEP_PREFIX`` line, flushed at once (the host reads the console as it comes)."""

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out or sys.stdout

    def __call__(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()

    def step(self, step: Step) -> None:
        self._out.write(step.line() + "\n")
        self._out.flush()


class ConsoleRelay(io.TextIOBase):
    """A text stream for a guest's console: the steps in it reach ``progress`` as steps of
    ``env``, the guest's own boot and exit markers as log lines; the rest is left to the
    console log."""

    def __init__(self, progress: Progress, env: str = "vm") -> None:
        super().__init__()
        self._progress = progress
        self._env = env
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._line(line.rstrip("\r"))
        return len(text)

    def _line(self, line: str) -> None:
        step = Step.parse(line)
        if step is not None:
            self._progress.step(replace(step, env=self._env))
        elif GUEST_MARKER in line:
            said = line[line.index(GUEST_MARKER) + len(GUEST_MARKER) :].strip()
            self._progress.step(Step(self._env, "guest", f"guest: {said}"))
