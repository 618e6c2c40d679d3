"""The cells of a terminal timeline row: the C accelerator and the Python reference agree."""

from __future__ import annotations

import math
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asynctrace import _bars

try:
    from asynctrace._cbars import row_levels as c_row_levels
except ImportError:  # built without a C compiler: only the reference runs
    c_row_levels = None

needs_c = pytest.mark.skipif(
    c_row_levels is None and not os.environ.get("CI"), reason="built without a C compiler"
)

# Times on a coarse grid make exact ties (a span that ends where a cell does, an instant, a
# wait of exactly half a cell) common, as under virtual time; the fine ones are anything.
coarse = st.integers(0, 40).map(lambda k: k * 0.125)
fine = st.floats(0, 5, allow_nan=False)
times = st.one_of(coarse, fine)


@st.composite
def rows(draw: st.DrawFn) -> tuple[list[_bars.Item], float, float, int]:
    items: list[_bars.Item] = []
    for _ in range(draw(st.integers(0, 6))):
        a, b = sorted((draw(times), draw(times)))
        marks = []
        for _ in range(draw(st.integers(0, 5))):
            c, d = sorted((draw(times), draw(times)))
            marks.append((c, d, draw(st.booleans())))
        items.append((a, b, _bars.Marks(marks)))
    t0 = draw(st.one_of(st.just(0.0), coarse, fine))
    cols = draw(st.integers(1, 50))
    step = draw(st.one_of(st.just(0.125), st.floats(1e-3, 1.0)))
    return items, t0, step, cols


@needs_c
@settings(max_examples=3000, deadline=None)
@given(rows())
def test_c_and_python_paint_the_same_cells(row: tuple[list[_bars.Item], float, float, int]) -> None:
    assert c_row_levels is not None
    assert c_row_levels(*row) == _bars.row_levels_python(*row)


def test_levels_of_a_simple_row() -> None:
    # a task alive over cells 0-3, waiting in cells 1-2, blocked in cell 3
    items = [(0.0, 4.0, _bars.Marks([(1.0, 3.0, False), (3.0, 4.0, True)]))]
    assert list(_bars.row_levels(items, 0.0, 1.0, 6)) == [2, 1, 1, 3, 0, 0]
    assert _bars.row_levels_python(items, 0.0, 1.0, 6) == _bars.row_levels(items, 0.0, 1.0, 6)


def test_an_instant_still_shows_and_a_group_shows_its_busiest() -> None:
    assert list(_bars.row_levels([(2.5, 2.5, _bars.NO_MARKS)], 0.0, 1.0, 4)) == [0, 0, 2, 0]
    waiting = (0.0, 2.0, _bars.Marks([(0.0, 2.0, False)]))
    running = (1.0, 2.0, _bars.NO_MARKS)
    assert list(_bars.row_levels([waiting, running], 0.0, 1.0, 2)) == [1, 2]


@needs_c
def test_what_c_refuses_the_reference_decides() -> None:
    assert c_row_levels is not None
    for bad in (math.inf, math.nan):
        with pytest.raises(ValueError):
            c_row_levels([(0.0, bad, _bars.NO_MARKS)], 0.0, 1.0, 4)
    with pytest.raises(ValueError):
        c_row_levels([], 0.0, 0.0, 4)  # a step that is not positive
    # row_levels then runs the reference, which fails (or not) as the terminal always did
    with pytest.raises(ValueError):
        _bars.row_levels([(0.0, math.nan, _bars.NO_MARKS)], 0.0, 1.0, 4)
