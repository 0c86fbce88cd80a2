"""A page's figures drawn together by forked workers read exactly as drawn one by one: a
figure that raises becomes a one-line note, a worker that dies leaves its figures to be
drawn here, and outside a batch a figure is drawn at once."""

from __future__ import annotations

import functools
import os
from typing import Any

from bench.report.drawing import Figure, FigureBatch, FigureNote, draw_figure


def _svg(n: int) -> str:
    return f"<svg>{n}</svg>"


def _broken() -> str:
    raise ValueError("no data for this one")


def test_a_batch_draws_what_drawing_one_by_one_draws() -> None:
    batch = FigureBatch(workers=2)
    with batch.collecting():
        shown: list[Any] = [
            draw_figure(f"f{n}", f"caption {n}", functools.partial(_svg, n)) for n in range(5)
        ]
        note: Any = draw_figure("broken", "never shown", _broken)
    batch.start()
    batch.finish()
    for n, figure in enumerate(shown):
        assert (figure.title, figure.svg, figure.caption) == (f"f{n}", _svg(n), f"caption {n}")
    assert not hasattr(note, "svg")  # the template's test: a note has no svg
    assert note.error and "ValueError: no data for this one" in note.reason


def test_figures_queued_after_a_start_are_drawn_too() -> None:
    batch = FigureBatch(workers=2)
    with batch.collecting():
        first: Any = draw_figure("first", "", lambda: _svg(1))
    batch.start()
    with batch.collecting():
        second: Any = draw_figure("second", "", lambda: _svg(2))
    batch.start()
    batch.finish()
    assert (first.svg, second.svg) == (_svg(1), _svg(2))


def test_a_worker_that_dies_leaves_its_figures_to_be_drawn_here() -> None:
    parent = os.getpid()

    def dies_in_a_worker() -> str:
        if os.getpid() != parent:
            os._exit(3)
        return _svg(7)

    batch = FigureBatch(workers=2)
    with batch.collecting():
        figures: list[Any] = [draw_figure(f"f{n}", "", dies_in_a_worker) for n in range(3)]
    batch.start()
    batch.finish()
    assert [f.svg for f in figures] == [_svg(7)] * 3


def test_outside_a_batch_a_figure_is_drawn_at_once() -> None:
    assert draw_figure("now", "c", lambda: _svg(0)) == Figure("now", _svg(0), "c")
    drawn = draw_figure("bad", "c", _broken)
    assert isinstance(drawn, FigureNote) and drawn.error
