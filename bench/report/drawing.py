"""The report's figures as drawn: each from its own function, a failure said on the page in
one line (never raised), and a page's figures drawn together by forked workers, one per
CPU, while the page's tables are computed (matplotlib holds the interpreter: two CPUs
draw a page's figures in about half the time).  Where no worker can be started, the
figures are drawn here, one after another, with the same outcome."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

MAX_WORKERS = 4
WAIT_S = 600.0  # a page's figures; past this the rest are drawn here


@dataclass(frozen=True)
class Figure:
    title: str
    svg: str
    caption: str


@dataclass(frozen=True)
class FigureNote:
    """A figure the page does not draw, and why, in one line."""

    title: str
    reason: str
    error: bool = False  # drawing it raised (the reason names the exception)


def draw_now(title: str, caption: str, draw: Callable[[], str]) -> Figure | FigureNote:
    """Draw one figure: ``draw`` returns its SVG.  When drawing raises, the figure is a
    note with the exception's type and message, and the rest of the page renders."""
    try:
        svg = draw()
    except Exception as exc:  # any failure of one figure is said on the page, not raised
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:400]
        log.warning("figure %r not drawn: %s", title, reason, exc_info=True)
        return FigureNote(title, reason, error=True)
    return Figure(title, svg, caption)


class PendingFigure:
    """A figure queued with its page's others: once they are drawn it reads as the Figure
    or FigureNote its drawing gave (``svg`` is undefined for a note, as the page's
    template tests)."""

    def __init__(self, title: str, caption: str, draw: Callable[[], str]) -> None:
        self.title, self.caption, self.draw = title, caption, draw
        self.drawn: Figure | FigureNote | None = None

    def __getattr__(self, name: str) -> Any:
        drawn = self.__dict__.get("drawn")
        if drawn is None:
            title = self.__dict__.get("title")
            raise AttributeError(f"{name}: the figure {title!r} is not drawn yet")
        return getattr(drawn, name)


_queue: list[PendingFigure] | None = None  # the batch being collected (inherited by workers)


def draw_figure(title: str, caption: str, draw: Callable[[], str]) -> Figure | FigureNote:
    """One figure of the page: drawn now, or queued when a batch is being collected."""
    if _queue is None:
        return draw_now(title, caption, draw)
    pending = PendingFigure(title, caption, draw)
    _queue.append(pending)
    return pending  # type: ignore[return-value]  # reads as Figure or FigureNote once drawn


def _draw_queued(index: int) -> Figure | FigureNote:
    assert _queue is not None
    item = _queue[index]
    return draw_now(item.title, item.caption, item.draw)


class FigureBatch:
    """``with batch.collecting(): ...`` queues the figures asked for inside; ``start()``
    hands those queued since the last start to forked workers (so the figures whose data
    is ready first are drawn first); ``finish()`` waits for them and fills every pending
    figure, drawing here whatever the workers did not (a worker that died, or none)."""

    def __init__(self, workers: int | None = None) -> None:
        self.pending: list[PendingFigure] = []
        self.workers = workers if workers is not None else min(MAX_WORKERS, _cpus())
        self._handed = 0  # how many of ``pending`` went to workers
        self._pools: list[tuple[ProcessPoolExecutor, list[Future[Figure | FigureNote]], int]] = []

    @contextlib.contextmanager
    def collecting(self) -> Iterator[FigureBatch]:
        global _queue
        outer, _queue = _queue, self.pending
        try:
            yield self
        finally:
            _queue = outer

    def start(self) -> None:
        global _queue
        first, last = self._handed, len(self.pending)
        self._handed = last
        if self.workers < 2 or last == first:
            return
        outer, _queue = _queue, self.pending[first:last]  # what the forked workers see
        try:
            pool = ProcessPoolExecutor(
                min(self.workers, last - first),
                mp_context=multiprocessing.get_context("fork"),
                initializer=_worker_signals,
            )
            futures = [pool.submit(_draw_queued, i) for i in range(last - first)]
        except (OSError, ValueError, RuntimeError) as exc:
            log.warning("figures drawn one after another: no worker started (%s)", exc)
            return
        finally:
            _queue = outer  # the workers are forked at the first submit: they have it
        self._pools.append((pool, futures, first))

    def finish(self) -> None:
        pools, self._pools = self._pools, []
        for pool, futures, first in pools:
            try:
                for i, future in enumerate(futures):
                    self.pending[first + i].drawn = future.result(WAIT_S)
            except Exception as exc:  # a worker that died or hung: the rest are drawn here
                log.warning("figures drawn here after a worker failed: %s", exc)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        for item in self.pending:
            if item.drawn is None:
                item.drawn = draw_now(item.title, item.caption, item.draw)


def _worker_signals() -> None:
    """A worker stops at SIGTERM and leaves Ctrl-C to the parent, which stops the pool."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
