"""Which rows the terminal timeline draws: internals, filters, depth, window, and grouping.

Problem: a real program's trace holds asyncio's own tasks (``_accept_connection2``, a server's
``getaddrinfo`` gather), thousands of similar tasks (one per test, one per request) and spans a
reader is not looking for; drawn all, in creation order, the forty rows that fit say little.

Solution: :func:`select_rows` keeps the program's rows: tasks and calls whose code is in the
standard library are hidden unless asked for, ``filter`` keeps the spans whose name matches (with
their ancestors for context and their descendants), ``depth`` cuts nested call rows and
``window`` drops rows outside a time range.  :func:`fold_rows` makes what is left fit: tasks of
one coroutine become one row ``fetch() ×221``, then the longest and the failed rows are kept.
Every walk up ``parent`` here is bounded: it stops at a span it has seen (a cycle).  A task
with 20,000 nested calls is as many rows to choose from: they are chosen task by task, the
calls' depths and groups found in C when it is built (``_cbars.call_depths``, ``by_key``), and
:class:`Row` objects made only for the rows drawn or folded.
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import functools
import itertools
import math
import operator
import os
import re
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any, TypeVar

from .._model._spans import Span, Trace
from .._model._timeline import display_name, row_label, spans_of_kind
from ._bars import c_function

__all__ = [
    "Row",
    "View",
    "add_view_options",
    "ancestors",
    "by_key",
    "fold_rows",
    "is_internal",
    "select_rows",
    "view_arguments",
]

_OWNERS = ("run", "task", "thread")
_KIND = operator.attrgetter("kind")
_NAME = operator.attrgetter("name")
_TRACK = operator.attrgetter("track")
_ATTRIBUTES = operator.attrgetter("attributes")
_STATUS = operator.attrgetter("status")
_START = operator.attrgetter("start")
_END = operator.attrgetter("end")
_START_SEQ = operator.attrgetter("start_seq")
_CALLS = ("coroutine", "gather")
_GLOB = re.compile(r"[*?\[]")
# A file of the standard library: in this interpreter's (the folder that holds asyncio's, a
# package never frozen, so it always has its file) or, for a trace read on another machine, in
# any ``lib/python3.N/`` (``Lib\`` on Windows); outside site-packages in both, which a virtual
# environment or a plain ``pip install`` keeps under such a folder.
_STDLIB_DIR = os.path.join(os.path.dirname(os.path.dirname(asyncio.__file__)), "")
_INSTALLED = tuple(os.path.join(name, "") for name in ("site-packages", "dist-packages"))
_STDLIB_PATH = re.compile(
    r"[\\/](?:lib[\\/]python3\.\d+t?|Lib)[\\/](?!site-packages[\\/]|dist-packages[\\/])"
)


# Plain classes, not dataclasses: every `asynctrace run` imports this module, and making a
# dataclass costs about 0.8 ms (its methods' source is compiled), 2.5 ms for these three.
class View:
    """What the terminal draws of a trace; no field changes any other output.

    Args:
        filter: keep the spans whose name matches (glob; without ``*?[``, a substring), their
            ancestors and their descendants.
        internals: also draw the tasks and calls whose code is asyncio's or the stdlib's.
        window: ``(start, end)`` in seconds of trace time; ``None`` on a side: the trace's edge.
        depth: draw call rows nested at most this deep under their task (0: task rows only).
    """

    __slots__ = ("depth", "filter", "internals", "window")

    def __init__(
        self,
        filter: str | None = None,
        internals: bool = False,
        window: tuple[float | None, float | None] | None = None,
        depth: int | None = None,
    ) -> None:
        self.filter = filter
        self.internals = internals
        self.window = window
        self.depth = depth


class Row:
    """One drawn row: a task, thread job or run (depth 0), a call under it, or a group."""

    __slots__ = ("depth", "member", "members", "span")  # a 20,000-call trace: as many rows

    def __init__(
        self, span: Span, depth: int, members: Sequence[Span] = (), member: bool = False
    ) -> None:
        self.span = span
        self.depth = depth
        self.members = members  # a group: every task it stands for
        self.member = member  # one task of the group above, drawn under it

    @property
    def spans(self) -> Sequence[Span]:
        return self.members or (self.span,)


Unit = tuple[list[Span], list[int]]
"""Rows drawn together: spans and their depths, a task's (depth 0) first, then its calls'."""


class Selection:
    """The rows to draw, in units, and why the others are not drawn."""

    __slots__ = ("internal", "matched", "outside", "units")

    def __init__(self, units: list[Unit]) -> None:
        self.units = units
        self.internal = 0  # rows hidden as asyncio's or the stdlib's
        self.matched = 0  # spans the filter matched
        self.outside = 0  # rows cut by --depth or --window


def ancestors(span: Span) -> Iterator[Span]:
    """``span``'s parent, its parent, ... up to a root, or to a span already seen (a cycle)."""
    seen = {id(span)}
    up = span.parent
    while up is not None and id(up) not in seen:
        seen.add(id(up))
        yield up
        up = up.parent


def is_internal_path(path: object) -> bool:
    """Whether a ``code.file.path`` is in the standard library (asyncio's own files included)."""
    return isinstance(path, str) and bool(path) and _in_stdlib(path)


@functools.lru_cache(maxsize=4096)  # a trace names few files, each on thousands of spans
def _in_stdlib(path: str) -> bool:
    if path.startswith("<frozen "):
        return True
    if path.startswith(_STDLIB_DIR) and not path.startswith(_INSTALLED, len(_STDLIB_DIR)):
        return True
    return _STDLIB_PATH.search(path) is not None


def is_internal(span: Span) -> bool:
    """Whether ``span`` is asyncio's (or the stdlib's) machinery, not the program's.

    A span with a code path is internal when the path is in the standard library; a gather
    without one when every task it started is internal.
    """
    path = span.attributes.get("code.file.path")
    if path is not None:
        return is_internal_path(path)
    if span.kind == "gather":
        tasks = [c for c in span.children if c.kind == "task"]
        return bool(tasks) and all(is_internal(c) for c in tasks)
    return False


def _matcher(pattern: str) -> re.Pattern[str]:
    if _GLOB.search(pattern):
        return re.compile(fnmatch.translate(pattern))
    return re.compile(f".*{re.escape(pattern)}.*", re.DOTALL)


def _matches(trace: Trace, pattern: str) -> tuple[set[int], int]:
    """Ids of the spans to keep for ``pattern`` (matches, ancestors, descendants), and matches."""
    rx = _matcher(pattern)
    keep: set[int] = set()
    walked: set[int] = set()
    matched = 0
    for span in trace.spans:
        names = (span.name, display_name(span), row_label(span) if span.kind in _OWNERS else "")
        if not any(rx.fullmatch(n) for n in names if n):
            continue
        matched += 1
        keep.update(id(s) for s in ancestors(span))
        stack = [span]
        while stack:  # descendants; a span seen twice (a cycle) is not walked again
            s = stack.pop()
            if id(s) not in walked:
                walked.add(id(s))
                keep.add(id(s))
                stack.extend(s.children)
    return keep, matched


def owned_calls(trace: Trace) -> list[tuple[Span, list[Span], list[int]]]:
    """Each track's owner, with its coroutine and gather calls in creation order and their
    depths; a run without calls (the header says what it was) only when it is alone."""
    coroutines, gathers = spans_of_kind(trace, "coroutine"), spans_of_kind(trace, "gather")
    if coroutines and gathers:
        calls_of_all = [s for s in trace.spans if s.kind in _CALLS]  # in the trace's order
    else:
        calls_of_all = coroutines or gathers
    # sorted() keeps each track's calls in the trace's order
    by_track = {
        track: list(calls)
        for track, calls in itertools.groupby(sorted(calls_of_all, key=_TRACK), key=_TRACK)
    }
    owned = []
    walk = len(trace.spans)
    owners = trace.tracks
    for owner in owners:
        calls = by_track.get(owner.span_id)
        if calls is not None:
            owned.append((owner, calls, call_depths(calls, owner, walk)))
        elif owner.kind != "run" or len(owners) == 1:
            owned.append((owner, [], []))
    return owned


def call_depths_python(calls: Sequence[Span], owner: Span, walk: int) -> list[int]:
    """Each call's depth: 1 + the calls above it on its track, below ``owner``; the reference.

    In start order a call's parent call comes first, so its depth is known.
    """
    depths: dict[int, int] = {}
    found = []
    for span in calls:
        up = span.parent
        if up is None or up.track != span.track or up is owner:
            depth = 1
        else:
            known = depths.get(id(up))  # nearly always: the call's parent is a call
            depth = known + 1 if known is not None else _depth_above(span, owner, depths, walk)
        depths[id(span)] = depth
        found.append(depth)
    return found


def _depth_above(span: Span, owner: Span, depths: dict[int, int], walk: int) -> int:
    """1 + the calls above ``span`` on its track, below ``owner``: ``walk`` steps up at most."""
    depth = 1
    up = span.parent
    for _ in range(walk):  # a longer walk: a cycle made after the build
        if up is None or up.track != span.track or up is owner:
            break
        known = depths.get(id(up))
        if known is not None:
            depth += known
            break
        if up.kind in _CALLS:
            depth += 1
        up = up.parent
    return depth


_C_CALL_DEPTHS: Callable[[Sequence[Span], Span, int], list[int]] | None = c_function("call_depths")


def call_depths(calls: Sequence[Span], owner: Span, walk: int) -> list[int]:
    """:func:`call_depths_python`, in C (``_cbars.call_depths``) when it is built."""
    if _C_CALL_DEPTHS is not None:
        return _C_CALL_DEPTHS(calls, owner, walk)
    return call_depths_python(calls, owner, walk)


def _internal_flags(spans: list[Span]) -> list[bool] | None:
    """:func:`is_internal` of each of ``spans``, or None when none is; asked once per file (a
    trace names few, and a program's calls are nearly never the stdlib's)."""
    paths = list(map(dict.get, map(_ATTRIBUTES, spans), itertools.repeat("code.file.path")))
    try:
        files: dict[object, bool] | None = dict.fromkeys(paths, False)
    except TypeError:  # a path that is no file name (a list, in a hostile trace)
        files = None
    if files is not None and all(map(isinstance, files, itertools.repeat(str))):
        for path in files:
            files[path] = _in_stdlib(path)
        return list(map(files.__getitem__, paths)) if any(files.values()) else None
    flags = list(map(is_internal, spans))
    return flags if any(flags) else None


def _picked(flags: list[bool], spans: list[Span], depths: list[int]) -> Unit:
    return list(itertools.compress(spans, flags)), list(itertools.compress(depths, flags))


def select_rows(trace: Trace, view: View) -> Selection:
    """The rows ``view`` keeps, in creation order, a task's calls after it.

    ``view.depth`` MUST NOT be negative (``render_timeline`` says so).
    """
    owned = owned_calls(trace)
    sel = Selection([])
    keep: set[int] | None = None
    if view.filter is not None:
        keep, sel.matched = _matches(trace, view.filter)
    lo, hi = view.window or (None, None)
    internals, depth = view.internals, view.depth
    several = len(owned) + sum(len(calls) for _, calls, _ in owned) > 1
    owners = [owner for owner, _, _ in owned]
    hidden = (None if internals else _internal_flags(owners)) or [False] * len(owners)
    units = sel.units
    for (owner, calls, depths), owner_hidden in zip(owned, hidden, strict=True):
        if not calls and keep is None and view.window is None:  # most tasks: no call drawn
            if owner_hidden:
                sel.internal += 1
            else:
                units.append(([owner], [0]))
            continue
        inside = None if internals else _internal_flags(calls)
        # asyncio.run's shutdown gather alone: the header names the run (its calls are counted)
        run_alone = owner.kind == "run" and several and inside is not None and all(inside)
        if keep is not None:
            kept = list(map(keep.__contains__, map(id, calls)))
            calls, depths = _picked(kept, calls, depths)
            if inside is not None:
                inside = list(itertools.compress(inside, kept))
        head = False
        if run_alone or (keep is not None and id(owner) not in keep):
            pass
        elif owner_hidden:
            sel.internal += 1 + len(calls)  # and its calls
            calls, depths = [], []
        elif (lo is not None and owner.end < lo) or (hi is not None and owner.start > hi):
            sel.outside += 1
        else:
            head = True
        if calls and inside is not None:
            outer = list(map(operator.not_, inside))
            sel.internal += len(calls) - sum(outer)
            calls, depths = _picked(outer, calls, depths)
        if calls and depth is not None:
            shallow = list(map(operator.le, depths, itertools.repeat(depth)))
            sel.outside += len(calls) - sum(shallow)
            calls, depths = _picked(shallow, calls, depths)
        if calls and view.window is not None:
            within = [
                not ((lo is not None and s.end < lo) or (hi is not None and s.start > hi))
                for s in calls
            ]
            sel.outside += len(calls) - sum(within)
            calls, depths = _picked(within, calls, depths)
        if head:
            units.append(([owner, *calls], [0, *depths]))
        elif calls and units:  # a call whose task is not drawn: under the rows above it
            units[-1][0].extend(calls)
            units[-1][1].extend(depths)
        elif calls:
            units.append((list(calls), list(depths)))
    if not internals and not units and keep is None and owned:
        # nothing of the program's own (a trace of asyncio alone): better its rows than none
        return Selection([([owner, *calls], [0, *depths]) for owner, calls, depths in owned])
    return sel


_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


def by_key_python(keys: Sequence[_K], values: Sequence[_V]) -> dict[_K, list[_V]]:
    """``values`` grouped by their ``keys``: the keys in first-seen order, each one's values in
    their order; the reference implementation."""
    groups: dict[_K, list[_V]] = {}
    for key, value in zip(keys, values, strict=True):
        same = groups.get(key)
        if same is None:
            groups[key] = [value]
        else:
            same.append(value)
    return groups


by_key: Callable[[Sequence[_K], Sequence[_V]], dict[_K, list[_V]]] = (
    c_function("by_key") or by_key_python
)
""":func:`by_key_python`, in C (``_cbars.by_key``) when it is built: 20,000 calls or awaits
grouped without a Python step each."""


def _group_calls(unit: Unit) -> list[Row]:
    """A task's repeated calls (a gather in a loop) as one row per name and depth: ``×111``."""
    spans, depths = unit
    calls = spans[1:]
    keys = list(zip(depths[1:], map(_KIND, calls), map(_NAME, calls), strict=True))
    rows = [Row(spans[0], depths[0])]
    for (depth, _, _), same in by_key(keys, calls).items():
        rows.append(Row(same[0], depth, same) if len(same) > 1 else Row(same[0], depth))
    return rows


def _ranked(members: Sequence[Span]) -> list[Span]:
    """A group's tasks, the failed first, then the longest, then in creation order; the keys
    made by map() rather than one Python call per task."""
    ok = map(operator.eq, map(_STATUS, members), itertools.repeat("ok"))
    longest = map(operator.neg, map(operator.sub, map(_END, members), map(_START, members)))
    keys = list(zip(ok, longest, map(_START_SEQ, members), strict=True))
    return list(map(members.__getitem__, sorted(range(len(members)), key=keys.__getitem__)))


def _show_members(grouped: list[list[Row]], max_rows: int) -> list[Row]:
    """The grouped rows, with rows to spare spent on each group's failed, then longest, tasks."""
    spare = max_rows - sum(len(u) for u in grouped)
    groups = [u[0] for u in grouped if u[0].members]
    picks: dict[int, list[Span]] = {id(g): [] for g in groups}
    # no group gets more than the rows to spare: the first that many of each, as sorted() ranks
    ranked = [_ranked(g.members) for g in groups]
    k = 0
    while spare > 0 and any(k < len(r) for r in ranked):
        for g, r in zip(groups, ranked, strict=True):
            if k < len(r) and spare > 0:
                picks[id(g)].append(r[k])
                spare -= 1
        k += 1
    rows: list[Row] = []
    for unit in grouped:
        rows += unit
        chosen = picks.get(id(unit[0]), [])
        rows += [Row(s, 1, member=True) for s in sorted(chosen, key=lambda s: s.start_seq)]
    return rows


def fold_rows(units: list[Unit], max_rows: int) -> tuple[list[Row], list[Row]]:
    """(rows to draw, rows folded into the summary), at most ``max_rows`` drawn in all.

    Too many rows: the tasks of one coroutine (two or more) become one group row, in the place
    of the first; if that is still too many, the units (a task and its calls) that failed and
    then the longest are kept, drawn in creation order, and the rest are folded.
    """
    if sum(len(spans) for spans, _ in units) <= max_rows:
        return [Row(*row) for spans, depths in units for row in zip(spans, depths, strict=True)], []
    heads = [spans[0] for spans, _ in units]
    keys = list(zip(map(_KIND, heads), map(_NAME, heads), strict=True))
    by_name: dict[tuple[str, str], list[Span]] = {}
    for key, head in zip(keys, heads, strict=True):
        if key[0] in ("task", "thread"):
            same = by_name.get(key)
            if same is None:
                by_name[key] = [head]
            else:
                same.append(head)
    grouped: list[list[Row]] = []
    for unit, key in zip(units, keys, strict=True):
        same = by_name.get(key)
        if same is None or len(same) < 2:
            grouped.append(_group_calls(unit))  # the calls of a grouped task are not drawn
        elif same[0] is unit[0][0]:
            grouped.append([Row(same[0], 0, same)])
    budget = max(1, max_rows - 1)  # one line for the summary of the rest
    if sum(len(u) for u in grouped) <= max_rows:
        return _show_members(grouped, max_rows), []

    def weight(i: int) -> tuple[bool, float, int]:
        spans = grouped[i][0].spans
        failed = any(s.status != "ok" for s in spans)
        return (not failed, -max(s.duration for s in spans), i)

    drawn: dict[int, int] = {}  # unit -> how many of its rows are drawn, its first ones
    used = 0
    order = sorted(range(len(grouped)), key=weight)
    for i in order:
        if used + len(grouped[i]) <= budget:
            drawn[i] = len(grouped[i])
            used += len(grouped[i])
        elif used < budget and grouped[i][0].depth == 0:
            drawn[i] = 1  # the task row alone, for now: the other tasks come first
            used += 1
    # the rows left go to the calls of the tasks drawn alone (one task's in-turn calls: its
    # first ones), in the same order
    for i in order:
        if i in drawn and used < budget:
            more = min(budget - used, len(grouped[i]) - drawn[i])
            drawn[i] += more
            used += more
    shown = [r for i in sorted(drawn) for r in grouped[i][: drawn[i]]]
    folded = [r for i, u in enumerate(grouped) if i not in drawn for r in u]
    folded += [Row(r.span, 1) for i, n in drawn.items() for r in grouped[i][n:]]
    return shown, folded


def _window(text: str) -> tuple[float | None, float | None]:
    """``--window START:END``: seconds of trace time; either side may be left out."""
    start, sep, end = text.partition(":")
    try:
        lo = float(start) if start.strip() else None
        hi = float(end) if end.strip() else None
    except ValueError:
        lo = hi = math.nan
    ok = all(v is None or math.isfinite(v) for v in (lo, hi))
    if not sep or not ok or (lo is not None and hi is not None and not lo < hi):
        msg = (
            f"{text!r} is not a time window; give START:END in seconds of trace time, START"
            " before END, either one may be left out: --window 0.2:0.5, --window 1.5:"
        )
        raise argparse.ArgumentTypeError(msg)
    return lo, hi


def _depth(text: str) -> int:
    """``--depth N``: a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        msg = f"{text!r} is not a depth; give 0 (one row per task) or more, e.g. --depth 1"
        raise argparse.ArgumentTypeError(msg)
    return value


VALUE_OPTIONS = ("--filter", "--window", "--depth")
"""The options :func:`add_view_options` adds that take a value as the next word."""


def add_view_options(parser: argparse.ArgumentParser) -> None:
    """The terminal timeline's filters, for ``asynctrace run`` and ``asynctrace view``."""
    only = "terminal timeline only: JSON, HTML and OTLP keep every span"
    parser.add_argument(
        "--filter",
        metavar="PATTERN",
        help="draw only spans whose name matches PATTERN, a glob (Task-1*, fetch*) or, "
        f"without *?[, a substring; their ancestors and descendants stay ({only})",
    )
    parser.add_argument(
        "--internals",
        action="store_true",
        help=f"also draw asyncio's own tasks and calls (code in the standard library) ({only})",
    )
    parser.add_argument(
        "--window",
        type=_window,
        metavar="START:END",
        help=f"draw only this time range, in seconds of trace time, e.g. 0.2:0.5 or 1.5: ({only})",
    )
    parser.add_argument(
        "--depth",
        type=_depth,
        metavar="N",
        help=f"draw calls nested at most N deep under their task; 0: one row per task ({only})",
    )


def view_arguments(options: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``render_timeline`` that the options of :func:`add_view_options`
    give."""
    return {
        "filter": options.filter,
        "internals": options.internals,
        "window": options.window,
        "depth": options.depth,
    }
