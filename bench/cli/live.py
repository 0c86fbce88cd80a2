"""The run's progress on the terminal: a live rich display, or plain lines for CI logs.

One bar per environment (host, vm): what is being measured (impl, mode, placement),
round x/N, phases done of the planned total, elapsed time and ETA.  Log lines print above
the bars.  When stdout is not a terminal, every step is one timestamped line instead, and
a line repeats the current step whenever nothing was printed for ``HEARTBEAT_S`` (a
calibration or a guest's boot prints no steps of its own for a while)."""

from __future__ import annotations

import threading
import time
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from bench.runner.progress import Step

HEARTBEAT_S = 10.0


def _what(step: Step) -> str:
    if step.stage in ("phase", "crosscheck") and step.impl:
        extra = " (cross-check)" if step.stage == "crosscheck" else ""
        return f"{step.impl} {step.mode or ''}{extra}".strip()
    return step.text


def _round(step: Step) -> str:
    return f"round {step.round}/{step.rounds}" if step.round and step.rounds else ""


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def _eta(first: tuple[float, int] | None, step: Step) -> str:
    """From the pace since the environment's first phase (calibration and boot aside)."""
    if first is None or not step.total or step.done is None or step.done <= first[1]:
        return "ETA —"
    pace = (time.monotonic() - first[0]) / (step.done - first[1])
    return f"ETA {_clock(pace * (step.total - step.done))}"


class LiveDisplay:
    """rich bars, one per environment; a context manager around the run."""

    def __init__(self, console: Console) -> None:
        self._bars = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.fields[env]:>4}[/bold]"),
            TextColumn("{task.description:<44}"),
            TextColumn("{task.fields[round]:>12}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            refresh_per_second=4,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> LiveDisplay:
        self._bars.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._bars.stop()

    def __call__(self, text: str) -> None:
        self._bars.console.log(escape(text))

    def step(self, step: Step) -> None:
        if step.stage == "finish":
            for task in self._tasks.values():
                self._bars.update(task, description="done")
            return
        if step.env not in self._tasks:
            self._tasks[step.env] = self._bars.add_task(
                _what(step), total=step.total, env=step.env, round=""
            )
        task = self._tasks[step.env]
        self._bars.update(
            task,
            description=_what(step)[:44],
            round=_round(step),
            total=step.total,
            completed=step.done or 0,
        )


class PlainLines:
    """One timestamped line per step and log line, and a heartbeat in silences."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._lock = threading.Lock()
        self._last: Step | None = None
        self._printed = time.monotonic()
        self._started: dict[str, float] = {}
        self._first: dict[str, tuple[float, int]] = {}  # env -> (time, done) at its 1st phase
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True)

    def __enter__(self) -> PlainLines:
        self._beat.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._beat.join(timeout=2)

    def _print(self, text: str) -> None:
        with self._lock:
            stamp = time.strftime("%H:%M:%S")
            self._console.print(f"{stamp} {escape(text)}", highlight=False)
            self._printed = time.monotonic()

    def __call__(self, text: str) -> None:
        self._print(text)

    def line(self, step: Step) -> str:
        started = self._started.setdefault(step.env, time.monotonic())
        if step.stage == "phase":
            self._first.setdefault(step.env, (time.monotonic(), step.done or 0))
        parts = [f"[{step.env}]", _what(step)]
        if step.round:
            parts.append(_round(step))
        if step.total:
            parts.append(f"{step.done or 0}/{step.total} phases")
        parts += [
            f"{_clock(time.monotonic() - started)} elapsed",
            _eta(self._first.get(step.env), step),
        ]
        return " · ".join(parts)

    def step(self, step: Step) -> None:
        self._last = step
        self._print(self.line(step))

    def _heartbeat(self) -> None:
        while not self._stop.wait(1.0):
            last = self._last
            if last is not None and time.monotonic() - self._printed >= HEARTBEAT_S:
                self._print(self.line(last) + " (still at it)")


def display(console: Console) -> LiveDisplay | PlainLines:
    """Bars on a terminal, plain lines otherwise."""
    return LiveDisplay(console) if console.is_terminal else PlainLines(console)
