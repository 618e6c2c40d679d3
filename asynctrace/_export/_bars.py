"""The cells of a terminal timeline row: what each column of a bar shows.

Problem: a bar is drawn cell by cell from its spans and from the awaits and blocked steps under
them, and a grouped row (``fetch() ×2,000``) or a task with 20,000 calls has that many spans
to paint: in Python, drawing a 22,000-span run took longer than building its trace.

Solution: :func:`paint_rows` gathers the awaits and blocked steps of the drawn rows' tracks once,
as one :class:`Marks` per track (sorted so that the ones overlapping a span are found by
bisection), and gives each row its cells' levels: 0 empty, 1 waiting, 2 running, 3 blocked; a
group's cell shows its busiest span.  The C accelerator (``_cbars.paint_rows``, built with
asynctrace) does it with the same arithmetic, in the same order, so both give the same cells;
the Python version below is the reference and the fallback.

A span paints the cells it touches with how long it was alive in each, its marks with how
long it waited or blocked there.  A cell shows the span if it filled at least half of it (so
that bars end where they round to, and two spans that meet at t do not share a cell); a span
shorter than that still shows, in its fullest cell.  A shown cell is blocked if any blocked
step touched it, else waiting if the span waited at least half its time there, else running.
"""

from __future__ import annotations

import bisect
import itertools
import math
import operator
from collections.abc import Callable, Iterable, Sequence
from itertools import chain, repeat
from typing import Any, Protocol

from .._model._spans import Span
from .._native import extension

__all__ = ["EMPTY", "NO_MARKS", "Item", "Mark", "Marks", "paint_rows", "row_bounds"]

EMPTY, WAITING, RUNNING, BLOCKED = 0, 1, 2, 3
Mark = tuple[float, float, bool]  # start, end, is a blocked step (else an await)
_START, _END, _BLOCKED = operator.itemgetter(0), operator.itemgetter(1), operator.itemgetter(2)
_SPAN_START = operator.attrgetter("start")
_SPAN_END = operator.attrgetter("end")
_SPAN_TRACK = operator.attrgetter("track")


class Marks:
    """A track's awaits and blocked steps, sorted by start, found by time: a row's span needs
    only the ones that overlap it (a task with 20,000 calls on its row asked all 22,000 for
    each: 8 s).  ``ends_so_far[i]`` is the latest end among the first ``i + 1``."""

    __slots__ = ("any_blocked", "ends_so_far", "marks", "starts")

    def __init__(self, marks: Iterable[Mark]) -> None:
        self.marks = sorted(marks, key=_START)
        self.starts = list(map(_START, self.marks))
        self.ends_so_far = list(itertools.accumulate(map(_END, self.marks), max))
        self.any_blocked = any(map(_BLOCKED, self.marks))

    def overlapping(self, a: float, b: float) -> list[Mark]:
        """The marks with ``start <= b`` and ``end >= a``."""
        first = bisect.bisect_left(self.ends_so_far, a)  # before it, every mark ended before a
        last = bisect.bisect_right(self.starts, b)
        return [m for m in self.marks[first:last] if m[1] >= a]


NO_MARKS = Marks(())
# A span shown as waiting throughout without painting its cells (_waits_throughout) lasts at
# most this many steps and has at most this many marks: its sums' rounding stays far under a
# cell.
_MOST_CELLS = 1_000_000
_MOST_MARKS = 100_000
_AT_LEAST_WAITING = bytes.maketrans(bytes([EMPTY]), bytes([WAITING]))
Item = tuple[float, float, Marks]  # a span's start and end, and its track's marks


def cell_range(a: float, b: float, t0: float, step: float, cols: int) -> tuple[int, int]:
    """The first and last cells that ``[a, b]`` touches (clipped to the bar), or (0, -1).

    ``max(x, y)`` and ``min(x, y)`` are spelled ``y if y > x else x`` and ``y if y < x else x``
    (what they compute, for NaN too): a call each is too many for 60,000 spans.
    """
    right = t0 + cols * step
    a = t0 if t0 > a else a  # a window cuts what lies outside it
    b = right if right < b else b
    if b < a:
        return 0, -1
    top = cols - 1
    first = int((a - t0) / step)
    first = first if first < top else top
    first = first if first > 0 else 0
    last = math.ceil((b - t0) / step) - 1
    last = last if last < top else top
    last = last if last > 0 else 0
    return first, last if last > first else first


def _span_levels(
    item: Item,
    t0: float,
    step: float,
    cols: int,
    levels: bytearray,
    edges: list[float],
    exact_cells: bool,
) -> None:
    start, end, marks = item
    base, top = cell_range(start, end, t0, step, cols)
    if top < base:
        return
    if not marks.any_blocked and min(levels[base : top + 1]) >= RUNNING:
        return  # without a blocked step it shows running at most: its cells show that already
    found = marks.overlapping(start, end)
    if exact_cells and _waits_throughout(start, end, found, step):
        # the cells it covers whole (edges[first] >= start, edges[last + 1] <= end) show
        first = bisect.bisect_left(edges, start, base, top + 1)
        last = bisect.bisect_right(edges, end, base, top + 2) - 2
        if first <= last:
            levels[first : last + 1] = levels[first : last + 1].translate(_AT_LEAST_WAITING)
            for i in (*range(base, first), *range(last + 1, top + 1)):  # in part: as paint()
                lo, hi = edges[i], edges[i + 1]
                width = (end if end < hi else hi) - (start if start > lo else lo)
                if (width if width > 1e-12 else 1e-12) >= step / 2 and not levels[i]:
                    levels[i] = WAITING
            return
    n = top - base + 1
    alive = [0.0] * n
    waiting = [0.0] * n
    blocked = [0.0] * n

    def paint(cells: list[float], a: float, b: float) -> None:
        first, last = cell_range(a, b, t0, step, cols)
        # an instant at the span's very end can fall in the cell after it, which is not shown
        first = base if base > first else first
        last = top if top < last else last
        for i in range(first, last + 1):
            lo, hi = edges[i], edges[i + 1]
            if a <= lo and hi <= b:  # a whole cell: its width, as the general case gives it
                width = hi - lo
            else:
                width = (b if b < hi else hi) - (a if a > lo else lo)
            cells[i - base] += width if width > 1e-12 else 1e-12  # an instant still shows

    paint(alive, start, end)
    for m_start, m_end, is_blocked in found:
        a = start if start > m_start else m_start
        b = end if end < m_end else m_end
        if b >= a:
            paint(blocked if is_blocked else waiting, a, b)
    shown = [a >= step / 2 for a in alive]
    if not any(shown) and any(alive):
        shown[alive.index(max(alive))] = True
    for i in range(n):
        if not shown[i]:
            continue
        if blocked[i] > 0:
            level = BLOCKED
        elif waiting[i] * 2 >= alive[i]:
            level = WAITING
        else:
            level = RUNNING
        if level > levels[base + i]:
            levels[base + i] = level


def _waits_throughout(start: float, end: float, found: list[Mark], step: float) -> bool:
    """Whether a span of three cells or more shows waiting in every cell it shows, whatever
    its cells are: no blocked step, and its time outside its awaits under an eighth of a cell.

    Why that is exact: a cell shows running only if the span waited less than half the time it
    was alive there, and a shown cell holds at least half a cell of it (one it covers whole
    does, so the fullest-cell rule for short spans is not met), so more than a quarter of a
    cell of its time outside the awaits would lie in that one cell.  Each width is a difference
    of floats, off by at most one part in 2**53 of itself; the bounds on the span's length and
    on its awaits' number keep the sums' rounding under a millionth of a cell, far inside the
    margin from an eighth to a quarter.
    """
    if not 3 * step <= end - start <= _MOST_CELLS * step or len(found) > _MOST_MARKS:
        return False
    covered = 0.0
    low = high = start  # the awaits so far, merged: the last stretch is [low, high]
    for m_start, m_end, is_blocked in found:  # by start
        if is_blocked:
            return False
        a = start if start > m_start else m_start
        b = end if end < m_end else m_end
        if b < a:
            continue
        if a > high:
            covered += high - low
            low = a
        if b > high:
            high = b
    covered += high - low
    return (end - start) - covered <= step / 8


def row_levels_python(items: Sequence[Item], t0: float, step: float, cols: int) -> bytes:
    """Each cell's level (0 to 3), the highest of ``items``'; the reference implementation.

    What a span cannot change is not painted: with no blocked step on its track it shows at
    most running, so cells that show running already stay (a grouped row of 2,000 short calls,
    many to a cell: 90 ms of deep's timeline painted span by span); and a span that can only
    show waiting (see :func:`_waits_throughout`) has the cells it shows raised to waiting at
    once (the 2,000 tasks of fanout's grouped row, each awaiting nearly all its life: 60 ms).
    """
    levels = bytearray(cols)
    edges = [t0 + i * step for i in range(cols + 1)]  # cell i is [edges[i], edges[i + 1])
    # each cell's width within a millionth of a step (not so when t0 dwarfs the step)
    exact_cells = step >= (abs(t0) + cols * step) * 1e-6
    for item in items:
        _span_levels(item, t0, step, cols, levels, edges, exact_cells)
    return bytes(levels)


class Timed(Protocol):
    """What a row's spans and the marks are read for (a :class:`~asynctrace._model._spans.Span`)."""

    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def track(self) -> int: ...


def paint_rows_python(
    rows: Sequence[Sequence[Timed]],
    awaits: Sequence[Timed],
    blocked: Sequence[Timed],
    t0: float,
    step: float,
    cols: int,
) -> list[bytes]:
    """Each row's cells' levels, its spans painted with the ``awaits`` and ``blocked`` steps of
    their tracks; the reference implementation."""
    tracks = {span.track for row in rows for span in row}
    by_track: dict[int, list[Mark]] = {}
    # the marks as (start, end, is blocked), made by map() rather than one Python call each
    for spans, is_blocked in ((awaits, False), (blocked, True)):
        found = zip(map(_SPAN_START, spans), map(_SPAN_END, spans), repeat(is_blocked))
        for track, mark in zip(map(_SPAN_TRACK, spans), found, strict=True):
            if track not in tracks:
                continue
            same = by_track.get(track)
            if same is None:
                by_track[track] = [mark]
            else:
                same.append(mark)
    marks = {track: Marks(found) for track, found in by_track.items()}
    return [
        row_levels_python(
            list(
                zip(
                    map(_SPAN_START, row),
                    map(_SPAN_END, row),
                    map(marks.get, map(_SPAN_TRACK, row), repeat(NO_MARKS)),
                    strict=True,
                )
            ),
            t0,
            step,
            cols,
        )
        for row in rows
    ]


_PaintRows = Callable[
    [Sequence[Sequence[Timed]], Sequence[Timed], Sequence[Timed], float, float, int], list[bytes]
]


def _load_cbars() -> Any:
    """``_cbars``, told once which class a span is (whose fields it then reads in place);
    None without C (see ``_native.py``)."""
    module = extension("_cbars")
    if module is not None:
        module.configure(Span)
    return module


_CBARS = _load_cbars()


def c_function(name: str) -> Any:
    """The function ``name`` of the C extension ``_cbars``; None without it."""
    return None if _CBARS is None else getattr(_CBARS, name)


_C_PAINT_ROWS: _PaintRows | None = c_function("paint_rows")


def paint_rows(
    rows: Sequence[Sequence[Timed]],
    awaits: Sequence[Timed],
    blocked: Sequence[Timed],
    t0: float,
    step: float,
    cols: int,
) -> list[bytes]:
    """Each row's cells' levels (0 empty, 1 waiting, 2 running, 3 blocked): its spans alive,
    in the ``awaits`` and the ``blocked`` steps of their tracks.

    Raises:
        ValueError: a time is not a finite number (as ``int()`` of one would).
    """
    if _C_PAINT_ROWS is not None:
        try:
            return _C_PAINT_ROWS(rows, awaits, blocked, t0, step, cols)
        except (ValueError, TypeError, OverflowError):  # not finite, not a float: Python says it
            pass
    return paint_rows_python(rows, awaits, blocked, t0, step, cols)


Bounds = tuple[float | None, float | None, list[tuple[float, float]]]


def row_bounds_python(rows: Sequence[Sequence[Timed]]) -> Bounds:
    """The first start and the last end of all ``rows``' spans (None without spans), and each
    row's: where the axis runs and each row's numbers; the reference implementation."""
    first = min(map(_SPAN_START, chain.from_iterable(rows)), default=None)
    last = max(map(_SPAN_END, chain.from_iterable(rows)), default=None)
    return first, last, [(min(map(_SPAN_START, row)), max(map(_SPAN_END, row))) for row in rows]


_C_ROW_BOUNDS: Callable[[Sequence[Sequence[Timed]]], Bounds] | None = c_function("row_bounds")


def row_bounds(rows: Sequence[Sequence[Timed]]) -> Bounds:
    """:func:`row_bounds_python`, in C (``_cbars.row_bounds``) when it is built and every time
    is a float: one pass over a 22,000-span timeline's drawn spans rather than four."""
    if _C_ROW_BOUNDS is not None:
        try:
            return _C_ROW_BOUNDS(rows)
        except (ValueError, TypeError):  # not a float, a row without spans: Python says it
            pass
    return row_bounds_python(rows)
