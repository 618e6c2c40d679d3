"""What a JSON timeline shows around the spans' slices: the rows' names, the arrows between
tasks, the ``tasks`` counter (for :func:`~asynctrace._export._chrome._layout`).

Problem: these are made per task and per change of the counter, in Python: about 6 ms for
fanout's 2,000 tasks, and over half a second for the 100,000 tasks of a 1.1-million-span run.

Solution: the optional C extension ``_cflows`` makes each of them exactly as its Python version
here, which is the reference and the fallback (without C, with ``ASYNCTRACE_NO_SPEEDUPS`` set,
or for a hand-made trace's odd values that C refuses).
"""

from __future__ import annotations

import bisect
import functools
from typing import Any

from .._model._spans import Span, Trace
from .._model._timeline import activity, display_name, row_label
from .._native import extension
from ._chrome import (
    COUNTER_TID,
    MARKER_CAT,
    MAX_COUNTER_POINTS,
    ORIGIN_NS,
    PID,
    _Flow,
    _Item,
    _ns,
    _us,
)
from ._sanitize import MAX_CHARS

__all__ = ["counter", "flows", "row_labels"]


@functools.cache
def _cflows() -> Any:
    """``_cflows``, told once what a span is and where the file's time 0 is; None without C."""
    module = extension("_cflows")
    if module is not None:
        module.configure(Span, ORIGIN_NS, MAX_CHARS)
    return module


def row_labels(track_ids: list[int], by_id: dict[int, Span]) -> list[str]:
    """Each row's name: :func:`_row_labels_python`, in C (``_cflows.row_labels``) when it can."""
    module = _cflows()
    if module is not None:
        labels: list[str] = module.row_labels(track_ids, by_id, row_label)
        return labels
    return _row_labels_python(track_ids, by_id)


def _row_labels_python(track_ids: list[int], by_id: dict[int, Span]) -> list[str]:
    return [
        row_label(owner) if owner is not None else f"track {track}"
        for track in track_ids
        for owner in (by_id.get(track),)
    ]


def _marker(tid: int, ns: int, name: str, seq: int) -> _Item:
    event = {"ph": "X", "pid": PID, "tid": tid, "name": name, "cat": MARKER_CAT, "args": {}}
    return _Item(ns, ns + 1, (seq, 1), event, tid=tid)


def flows(
    trace: Trace,
    spawned: list[Span],
    tids: dict[int, int],
    rows: dict[int, list[_Item]],
    after: dict[int, list[_Flow]],
    join_spans: list[Span],
) -> list[_Flow]:
    """:func:`_flows_python`, in C (``_cflows.flows``) when it can; ``rows`` (empty lists) and
    ``after`` (empty) are filled."""
    module = _cflows()
    if module is not None:
        try:
            tail: list[_Flow] = module.flows(
                spawned, join_spans, trace.by_id, tids, rows, after, _spawn_marker, _join_marker
            )
            return tail
        except (TypeError, ValueError):  # a hand-made trace's odd values: Python decides
            for row in rows.values():
                row.clear()
            after.clear()
    return _flows_python(trace, spawned, tids, rows, after, join_spans)


def _spawn_marker(tid: int, at: int, task: Span) -> _Item:
    """The marker on a creator's row that its spawn arrows start from (at ``at`` ns)."""
    return _marker(tid, at, f"start {row_label(task)}", task.start_seq)


def _join_marker(tid: int, at: int, waiter: Span) -> _Item:
    """The marker at the end of an await on other tasks, where their join arrows end."""
    return _marker(tid, at, f"resume {display_name(waiter)}", 1 << 62)


def _flows_python(
    trace: Trace,
    spawned: list[Span],
    tids: dict[int, int],
    rows: dict[int, list[_Item]],
    after: dict[int, list[_Flow]],
    join_spans: list[Span],
) -> list[_Flow]:
    """Add spawn and join arrows from the tasks and thread jobs (``spawned``, in the trace's
    order): markers to ``rows``, the events bound to a span's slice to ``after``; returns the
    events that must come after every slice.  (``_cflows.flows`` does the same in C.)

    spawn: a 1 ns marker on the creator's row 2 ns before the first task of each moment it
    spawns -> each task's slice.  A moment ends at the creator's next step (a child of it that
    is no task: an await, a call): the tasks of one gather share a marker, a task started a
    second later has its own, where it starts.
    join: the child's last slice -> a 1 ns marker at the end of the parent's await on it.

    What Perfetto does, and so what MUST hold: at equal times it reads "X" events before flow
    events; an "s" (and an "f" with ``"bp": "e"``) binds to the deepest slice open on its row at
    its time; an "f" without ``bp`` binds to the next slice that begins on its row; an arrow is
    drawn from the end of its source slice to the start of its target slice.
    """
    tail: list[_Flow] = []
    flow_id = 0
    # each creating span's marker of the moment it spawns in, with its time in us; and how
    # far into its children the spawned ones have been found
    spawn_markers: dict[int, tuple[_Item, int | float]] = {}
    markers: list[_Item] = []
    seen: dict[int, int] = {}
    by_track: dict[int, list[Span]] = {}
    for span in join_spans:  # in start order, and a task awaits one thing at a time
        by_track.setdefault(span.track, []).append(span)
    join_starts = {track: [w.start for w in ws] for track, ws in by_track.items()}
    join_markers: dict[int, tuple[_Item, int | float]] = {}
    by_id = trace.by_id  # a slice's span by its id, as the rows are written (ids may repeat)
    for span in spawned:
        parent = span.parent
        if parent is None or parent.track == span.track:
            continue
        flow_id += 1
        task = by_id[span.span_id]
        start = _ns(task.start)
        end = max(_ns(task.end), start)
        stepped = _stepped(parent, span, seen)
        spawn = spawn_markers.get(parent.span_id)
        if spawn is None or stepped:
            # 2 ns before the moment's first child: the "s" on it must be read before its slice
            # begins, and the creator's slice itself may begin at the same time (virtual clock)
            at = start - 2
            marker = _spawn_marker(tids[parent.track], at, span)
            spawn = spawn_markers[parent.span_id] = (marker, _us(at))
            rows[parent.track].append(marker)
            markers.append(marker)
        marker, at_us = spawn
        marker.after.append(("s", marker.tid, at_us, flow_id, "spawn", False))
        # without "bp" an "f" binds to the next slice to begin on its row: the task's own
        # (an "f" inside the task would bind to the deepest slice there, its first await)
        tid = tids[span.track]
        flow = ("f", tid, _us(start - 1), flow_id, "spawn", False)
        after.setdefault(span.span_id, []).append(flow)
        waiter = _waiter(span, by_track.get(parent.track, []), join_starts.get(parent.track, []))
        if waiter is None:
            continue
        join = join_markers.get(waiter.span_id)
        if join is None:
            awaiting = by_id[waiter.span_id]
            awaiting_start = _ns(awaiting.start)
            at_end = max(_ns(awaiting.end) - 1, awaiting_start)
            jm = _join_marker(tids[waiter.track], at_end, waiter)
            join = join_markers[waiter.span_id] = (jm, _us(at_end))
            rows[waiter.track].append(jm)
        jm, at_us = join
        flow_id += 1
        # strictly before the "f" (at the waiter's end - 1 ns): equal times are not ordered
        tail.append(("s", tid, _us(max(end - 2, start)), flow_id, "join", False))
        jm.after.append(("f", jm.tid, at_us, flow_id, "join", True))
    for marker in markers:
        if len(marker.after) > 1 and marker.event is not None:  # a marker always has its event
            marker.event["name"] = f"start {len(marker.after)} tasks"
    return tail


def _stepped(parent: Span, child: Span, seen: dict[int, int]) -> bool:
    """Whether ``parent`` took a step (a child of it that is no task or thread job began)
    since the spawned child before ``child``; ``seen``: how far into each parent's children
    (in start order, as the spawned ones come) the search has gone."""
    children = parent.children
    i = seen.get(parent.span_id, 0)
    stepped = False
    while i < len(children) and children[i] is not child:
        stepped = stepped or children[i].kind not in ("task", "thread")  # _SPAWNED's kinds
        i += 1
    seen[parent.span_id] = i + 1
    return stepped


def _waiter(child: Span, joins: list[Span], starts: list[float]) -> Span | None:
    """The await on the creator's row that waited for this child, if it did."""
    i = bisect.bisect_right(starts, child.end) - 1
    if i < 0 or joins[i].end < child.end:
        return None
    waiter = joins[i]
    parent = child.parent
    if parent is not None and parent.kind == "gather":
        if waiter.parent is parent or waiter.name == parent.name:
            return waiter
        return None
    task_name = child.attributes.get("asynctrace.task.name")
    wanted = f"{task_name} ({child.name})"
    return waiter if wanted in (waiter.name, waiter.attributes.get("asynctrace.awaited")) else None


def counter(trace: Trace) -> list[dict[str, Any]]:
    """The ``tasks`` counter's events, from :func:`~asynctrace._model._timeline.activity` (as
    the terminal counts): :func:`_counter_python`, in C (``_cflows.counter_events``) when it
    can."""
    points = activity(trace)
    module = _cflows()
    if module is not None:
        try:
            return module.counter_events(points, MAX_COUNTER_POINTS)  # type: ignore[no-any-return]
        except (TypeError, ValueError):  # a hand-made trace's odd values: Python decides
            pass
    return _counter_python(points)


def _counter_python(points: list[tuple[float, int, int]]) -> list[dict[str, Any]]:
    """The counter's events for ``points`` (time, running, waiting), in time order; more than
    MAX_COUNTER_POINTS changes keep each bucket's peaks."""
    if len(points) > MAX_COUNTER_POINTS:
        t0, t1 = points[0][0], points[-1][0]
        step = (t1 - t0) / (MAX_COUNTER_POINTS - 1) or 1.0
        last = MAX_COUNTER_POINTS - 1
        buckets: list[tuple[float, int, int]] = []
        bucket = -1
        for t, running, waiting in points:  # in time order: each bucket's points one after another
            b = min(int((t - t0) / step), last)
            if b != bucket:
                bucket = b
                buckets.append((t0 + b * step, running, waiting))
            else:
                at, most_running, most_waiting = buckets[-1]
                if running > most_running or waiting > most_waiting:
                    buckets[-1] = (at, max(most_running, running), max(most_waiting, waiting))
        points = buckets
        points[-1] = (t1, *points[-1][1:])
    return [
        {
            "ph": "C",
            "pid": PID,
            "tid": COUNTER_TID,
            "ts": _us(_ns(t)),
            "name": "tasks",
            "args": {"running": running, "waiting": waiting},
        }
        for t, running, waiting in points
    ]
