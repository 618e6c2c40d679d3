"""The cells of a terminal timeline row: what each column of a bar shows.

Problem: a bar is drawn cell by cell from its spans and from the awaits and blocked steps under
them, and a grouped row (``fetch() ×2,000``) or a task with 20,000 calls has that many spans
to paint: in Python, drawing a 22,000-span run took longer than building its trace.

Solution: :func:`row_levels` takes a row's spans as plain numbers, each with its track's
:class:`Marks` (awaits, blocked steps, sorted so that the ones overlapping a span are found by
bisection), and returns each cell's level: 0 empty, 1 waiting, 2 running,
3 blocked; a group's cell shows its busiest span.  The C accelerator (``_cbars.row_levels``,
built with asynctrace) does it with the same arithmetic, in the same order, so both give the
same cells; the Python version below is the reference and the fallback.

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
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

__all__ = ["EMPTY", "NO_MARKS", "Item", "Mark", "Marks", "row_levels"]

EMPTY, WAITING, RUNNING, BLOCKED = 0, 1, 2, 3
Mark = tuple[float, float, bool]  # start, end, is a blocked step (else an await)
_START, _END = operator.itemgetter(0), operator.itemgetter(1)


class Marks:
    """A track's awaits and blocked steps, sorted by start, found by time: a row's span needs
    only the ones that overlap it (a task with 20,000 calls on its row asked all 22,000 for
    each: 8 s).  ``ends_so_far[i]`` is the latest end among the first ``i + 1``."""

    __slots__ = ("ends_so_far", "marks", "starts")

    def __init__(self, marks: Iterable[Mark]) -> None:
        self.marks = sorted(marks, key=_START)
        self.starts = list(map(_START, self.marks))
        self.ends_so_far = list(itertools.accumulate(map(_END, self.marks), max))

    def overlapping(self, a: float, b: float) -> list[Mark]:
        """The marks with ``start <= b`` and ``end >= a``."""
        first = bisect.bisect_left(self.ends_so_far, a)  # before it, every mark ended before a
        last = bisect.bisect_right(self.starts, b)
        return [m for m in self.marks[first:last] if m[1] >= a]


NO_MARKS = Marks(())
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
    item: Item, t0: float, step: float, cols: int, levels: list[int], edges: list[float]
) -> None:
    start, end, marks = item
    base, top = cell_range(start, end, t0, step, cols)
    if top < base:
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
    for m_start, m_end, is_blocked in marks.overlapping(start, end):
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


def row_levels_python(items: Sequence[Item], t0: float, step: float, cols: int) -> bytes:
    """Each cell's level (0 to 3), the highest of ``items``'; the reference implementation."""
    levels = [EMPTY] * cols
    edges = [t0 + i * step for i in range(cols + 1)]  # cell i is [edges[i], edges[i + 1])
    for item in items:
        _span_levels(item, t0, step, cols, levels, edges)
    return bytes(levels)


_RowLevels = Callable[[Sequence[Item], float, float, int], bytes]


def c_function(name: str) -> Any:
    """The function ``name`` of the C extension ``_cbars``; None without it (not built, or
    ``ASYNCTRACE_NO_SPEEDUPS`` set, as in ``_coro.py``: to test the pure-Python path)."""
    if os.environ.get("ASYNCTRACE_NO_SPEEDUPS"):
        return None
    try:
        from . import _cbars
    except ImportError:  # built without a C compiler
        return None
    return getattr(_cbars, name)


_C_ROW_LEVELS: _RowLevels | None = c_function("row_levels")


def row_levels(items: Sequence[Item], t0: float, step: float, cols: int) -> bytes:
    """Each cell's level (0 empty, 1 waiting, 2 running, 3 blocked) for a row of ``items``.

    Raises:
        ValueError: a time is not a finite number (as ``int()`` of one would).
    """
    if _C_ROW_LEVELS is not None:
        try:
            return _C_ROW_LEVELS(items, t0, step, cols)
        except (ValueError, TypeError, OverflowError):  # not finite, not a float: Python says it
            pass
    return row_levels_python(items, t0, step, cols)
