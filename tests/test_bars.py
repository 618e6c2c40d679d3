"""The cells of a terminal timeline's rows: the C accelerator and the Python reference agree."""

from __future__ import annotations

import itertools
import math
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asynctrace._export import _bars
from asynctrace._model._spans import Span

try:
    from asynctrace._cbars import paint_rows as c_paint_rows
except ImportError:  # built without a C compiler: only the reference runs
    c_paint_rows = None

needs_c = pytest.mark.skipif(
    c_paint_rows is None and not os.environ.get("CI"), reason="built without a C compiler"
)

# Times on a coarse grid make exact ties (a span that ends where a cell does, an instant, a
# wait of exactly half a cell) common, as under virtual time; the fine ones are anything.
coarse = st.integers(0, 40).map(lambda k: k * 0.125)
fine = st.floats(0, 5, allow_nan=False)
times = st.one_of(coarse, fine)
_ids = itertools.count(1)


def span(start: float, end: float, track: int = 1) -> Span:
    return Span(next(_ids), None, "task", "x", start, end, track)


@st.composite
def spans(draw: st.DrawFn, most: int) -> list[Span]:
    found = []
    for _ in range(draw(st.integers(0, most))):
        a, b = sorted((draw(times), draw(times)))
        found.append(span(a, b, draw(st.integers(1, 4))))
    return found


Case = tuple[list[list[Span]], list[Span], list[Span], float, float, int]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    rows = [draw(spans(4)) for _ in range(draw(st.integers(0, 3)))]
    t0 = draw(st.one_of(st.just(0.0), coarse, fine))
    cols = draw(st.integers(1, 50))
    step = draw(st.one_of(st.just(0.125), st.floats(1e-3, 1.0)))
    return rows, draw(spans(8)), draw(spans(3)), t0, step, cols


@st.composite
def busy_rows(draw: st.DrawFn) -> Case:
    """Rows of tasks each awaiting nearly all its life, one await after another (a grouped
    row of 2,000 such tasks is what the Python painter passes over without painting each),
    some with a blocked step or a longer stretch outside its awaits, cut by any window."""
    rows: list[list[Span]] = []
    awaits: list[Span] = []
    blocked: list[Span] = []
    track = 0
    for _ in range(draw(st.integers(1, 3))):
        row = []
        for _ in range(draw(st.integers(1, 6))):
            track += 1
            t = start = draw(times)
            for _ in range(draw(st.integers(0, 8))):
                t += draw(st.sampled_from([0.0, 1e-6, 0.01, 0.05, 0.3]))  # outside an await
                length = draw(st.one_of(coarse, fine))
                wait = span(t, t + length, track)
                (blocked if draw(st.integers(0, 20)) == 0 else awaits).append(wait)
                t += length
            row.append(span(start, t + draw(st.sampled_from([0.0, 1e-6, 0.2]))))
            row[-1].track = track
        rows.append(row)
    t0 = draw(st.one_of(st.just(0.0), coarse, fine))
    step = draw(st.one_of(st.just(0.125), st.floats(1e-3, 1.0)))
    return rows, awaits, blocked, t0, step, draw(st.integers(1, 60))


@needs_c
@settings(max_examples=6000, deadline=None)
@given(st.one_of(cases(), busy_rows()))
def test_c_and_python_paint_the_same_cells(case: Case) -> None:
    assert c_paint_rows is not None
    assert c_paint_rows(*case) == _bars.paint_rows_python(*case)


def test_a_task_awaiting_all_its_life_shows_waiting_where_it_shows() -> None:
    # four tasks awaiting back to back, 1 us between awaits, over cells 1-8 of 10; the cells a
    # task covers in part show it when it fills half of them, as painted cell by cell
    tasks = [span(1.0 + k * 0.01, 8.6, track=k + 1) for k in range(4)]
    awaits = [
        span(task.start + 1e-6 + i, min(task.start + i + 1.0, 8.6), track=task.track)
        for task in tasks
        for i in range(8)
    ]
    case = ([tasks], awaits, [], 0.0, 1.0, 10)
    assert [list(row) for row in _bars.paint_rows_python(*case)] == [[0, 1, 1, 1, 1, 1, 1, 1, 1, 0]]
    assert _bars.paint_rows_python(*case) == _bars.paint_rows(*case)


def test_levels_of_a_simple_row() -> None:
    # a task alive over cells 0-3, waiting in cells 1-2, blocked in cell 3; another track's
    # marks are not its
    task = span(0.0, 4.0)
    awaits = [span(1.0, 3.0), span(4.0, 6.0, track=2)]
    case = ([[task]], awaits, [span(3.0, 4.0)], 0.0, 1.0, 6)
    assert [list(levels) for levels in _bars.paint_rows(*case)] == [[2, 1, 1, 3, 0, 0]]
    assert _bars.paint_rows_python(*case) == _bars.paint_rows(*case)


def test_an_instant_still_shows_and_a_group_shows_its_busiest() -> None:
    assert list(_bars.paint_rows([[span(2.5, 2.5)]], [], [], 0.0, 1.0, 4)[0]) == [0, 0, 2, 0]
    waiting, running = span(0.0, 2.0, track=1), span(1.0, 2.0, track=2)
    rows = [[waiting, running], [running]]
    levels = _bars.paint_rows(rows, [span(0.0, 2.0, track=1)], [], 0.0, 1.0, 2)
    assert [list(row) for row in levels] == [[1, 2], [0, 2]]


@needs_c
def test_what_c_refuses_the_reference_decides() -> None:
    assert c_paint_rows is not None
    for bad in (math.inf, math.nan):
        with pytest.raises(ValueError):
            c_paint_rows([[span(0.0, bad)]], [], [], 0.0, 1.0, 4)
    with pytest.raises(ValueError):
        c_paint_rows([], [], [], 0.0, 0.0, 4)  # a step that is not positive
    with pytest.raises(TypeError):
        c_paint_rows([[span(0, 1)]], [], [], 0.0, 1.0, 4)  # an int time: Python compares it
    # paint_rows then runs the reference, which fails (or not) as the terminal always did
    with pytest.raises(ValueError):
        _bars.paint_rows([[span(0.0, math.nan)]], [], [], 0.0, 1.0, 4)
    assert list(_bars.paint_rows([[span(0, 1)]], [], [], 0.0, 1.0, 2)[0]) == [2, 0]


@needs_c
@settings(max_examples=500, deadline=None)
@given(st.lists(st.lists(st.tuples(st.floats(), st.floats()), min_size=1, max_size=4)))
def test_c_and_python_find_the_same_bounds(rows: list[list[tuple[float, float]]]) -> None:
    from asynctrace._cbars import row_bounds as c_row_bounds

    # any floats: NaN and infinities are kept or passed over exactly as min() and max() do
    spans = [[span(a, b) for a, b in row] for row in rows]
    assert repr(c_row_bounds(spans)) == repr(_bars.row_bounds_python(spans))
    with pytest.raises(TypeError):
        c_row_bounds([[span(0, 1)]])  # an int time: Python compares it
    assert _bars.row_bounds([[span(0, 1)]]) == (0, 1, [(0, 1)])


class Shifted(Span):
    """A Span whose times are computed: C reads an exact Span's slots, anything else's
    attributes."""

    __slots__ = ()

    def __getattribute__(self, name: str) -> object:
        if name in ("start", "end"):
            return 1.0 if name == "start" else 3.0
        return super().__getattribute__(name)


@needs_c
def test_c_reads_a_span_subclass_by_its_attributes() -> None:
    from types import SimpleNamespace

    from asynctrace._cbars import row_bounds as c_row_bounds

    shifted = Shifted(next(_ids), None, "task", "x", 0.0, 0.5, 1)
    plain = SimpleNamespace(start=0.5, end=4.0, track=1)
    rows: list[list[Span]] = [[shifted], [plain, span(0.0, 0.5)]]  # type: ignore[list-item]
    awaits = [span(2.0, 3.0), SimpleNamespace(start=0.5, end=1.0, track=1)]
    case = (rows, awaits, [], 0.0, 1.0, 5)
    assert c_paint_rows is not None
    assert c_paint_rows(*case) == _bars.paint_rows_python(*case)
    assert [list(levels) for levels in c_paint_rows(*case)] == [[0, 2, 1, 0, 0], [2, 2, 1, 2, 0]]
    bounds = (0.0, 4.0, [(1.0, 3.0), (0.0, 4.0)])
    assert c_row_bounds(rows) == _bars.row_bounds_python(rows) == bounds
