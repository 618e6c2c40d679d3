"""The span tree that every exporter and assertion reads.

Problem: the recorder keeps raw tuples on the event loop's hot path; exporters, the terminal
timeline and the test assertions want named, linked, typed spans.

Solution: :class:`Trace` is built once, at export time and off the hot path, from the recorder's
records (see ``_record.py``) or from a JSON timeline written earlier (see ``_chrome.py``).  It is a
plain, immutable-by-convention value: exporters MUST NOT mutate it.

Times are seconds on the trace's clock, relative to the moment tracing started (``0.0``).
Intervals are half-open ``[start, end)``.  Exact ties (common under the virtual clock) are broken
by ``start_seq``/``end_seq``: the order in which the recorder saw the events.

A Trace is a forest whatever its spans say: spans from a hand-made or hostile file (or built by
hand) can name each other as parents in a cycle, and every walk up ``parent`` (depths, rows,
assertions) would then never end.  :class:`Trace` cuts each cycle where it is built, so no walk
anywhere needs its own guard against one.
"""

from __future__ import annotations

import fnmatch
import gc
import operator
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from .._native import extension

Kind = Literal["run", "task", "coroutine", "gather", "await", "blocked", "thread", "held", "misuse"]
Status = Literal["ok", "error", "cancelled", "timeout", "unfinished"]

CUT_PARENT = "asynctrace.cut_parent_id"
"""Attribute of a span whose parent was cut to break a cycle: the parent id it had."""

NEVER_AWAITED = "coroutine never awaited"
DESTROYED_PENDING = "task destroyed while pending"
NEVER_RETRIEVED = "task exception never retrieved"
"""The names of ``misuse`` spans: what asyncio (or Python) reported."""

AWAITED_SPAN = "asynctrace.awaited.span_id"
"""Attribute of an await on a task, a gather or a thread job: the span id of what it awaited."""

TASK_THREAD = "thread.name"
"""Attribute of a task started on another thread than the main one (an event loop of its own
runs there): that thread's name (OpenTelemetry's ``thread.name``)."""

KINDS: tuple[Kind, ...] = (
    "run", "task", "coroutine", "gather", "await", "blocked", "thread", "held", "misuse"
)  # fmt: skip
STATUSES: tuple[Status, ...] = ("ok", "error", "cancelled", "timeout", "unfinished")


@dataclass(eq=False, slots=True)
class Span:
    """One recorded interval: a run, task, coroutine call, gather, await, blocked step, thread
    job, a lock or semaphore held, or (no duration) an asyncio misuse noted.

    ``parent``/``children`` are filled in by :class:`Trace`; ``track`` is the ``span_id`` of the
    task (or thread job, or run) whose timeline row the span is drawn on.
    """

    span_id: int
    parent_id: int | None
    kind: Kind
    name: str
    start: float
    end: float
    track: int
    status: Status = "ok"
    error: str | None = None
    attributes: dict[str, object] = field(default_factory=dict)
    start_seq: int = 0
    end_seq: int = 0
    parent: Span | None = field(default=None, repr=False)
    children: list[Span] = field(default_factory=list, repr=False)

    @property
    def duration(self) -> float:
        """Seconds from start to end."""
        return self.end - self.start

    def __repr__(self) -> str:
        return (
            f"<Span {self.kind} {self.name!r} {self.start:.6f}..{self.end:.6f}s"
            f" status={self.status} id={self.span_id}>"
        )


_new_object = object.__new__


def quick_span(
    span_id: int,
    parent_id: int | None,
    kind: Kind,
    name: str,
    start: float,
    end: float,
    track: int,
    status: Status,
    error: str | None,
    attributes: dict[str, object],
    start_seq: int,
    end_seq: int,
) -> Span:
    """``Span(...)`` with every field given, in :class:`Span`'s order: what the builders make
    for each record, in two thirds of the time.  Calling a class with a Python ``__init__`` is
    a call from C with a frame of its own; this is a plain Python call (and MUST set each field
    ``Span.__init__`` sets: the builder tests compare every field with the one-record path's).
    """
    span: Span = _new_object(Span)
    span.span_id = span_id
    span.parent_id = parent_id
    span.kind = kind
    span.name = name
    span.start = start
    span.end = end
    span.track = track
    span.status = status
    span.error = error
    span.attributes = attributes
    span.start_seq = start_seq
    span.end_seq = end_seq
    span.parent = None
    span.children = []
    return span


_START_ORDER = operator.attrgetter("start", "start_seq")  # ties of time: the recorder's order
_END = operator.attrgetter("end")
_TRACK = operator.attrgetter("track")

if TYPE_CHECKING:
    from .. import _speedups as speedups
else:  # the optional C accelerator: spans built and linked in C (_cbuild.c)
    speedups = extension("_speedups")
if speedups is not None:
    speedups.configure_spans(Span, KINDS)


@contextmanager
def gc_paused() -> Iterator[None]:
    """No garbage collection inside: building a trace or its file makes tens of thousands of
    small objects, none of them garbage, and the collections they trigger would only rescan
    them (they tripled the time of writing a file)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def release(trace: Trace) -> None:
    """Empty ``trace`` and free its spans now, for a trace nobody reads again.

    A span and its parent refer to each other, and the objects that hold a trace can be in
    cycles of their own, so a dropped trace waits for the garbage collector: at interpreter
    exit, about 35 ms for 22,000 spans.  Unlinked and dropped here, the spans are freed by
    reference counting.
    """
    for span in trace.spans:  # each span freed on its own (freeing a tree from its root is slower)
        span.parent = None
        span.children = []
    trace.spans = []
    trace.by_id = {}
    trace._derived.clear()  # the critical path, the rows: lists of the same spans


class Trace:
    """The spans of one traced run, linked into a tree, in start order.

    A span whose parent chain loops back to itself loses its parent link (``parent`` and
    ``parent_id`` become None, and :data:`CUT_PARENT` holds the id it had): in each cycle, the
    span that starts first, which is where its tree most likely began.

    Args:
        spans: the spans, in any order; parents are linked by ``parent_id``.
        clock: ``"monotonic"`` or ``"virtual"`` (loop time that jumps over idle waits).
        epoch_ns: wall-clock epoch nanoseconds of trace time ``0.0``.
        dropped: how many spans the recorder discarded because of its cap.
    """

    def __init__(
        self,
        spans: list[Span],
        *,
        clock: str = "monotonic",
        epoch_ns: int = 0,
        dropped: int = 0,
    ) -> None:
        self.clock = clock
        self.epoch_ns = epoch_ns
        self.dropped = dropped
        self._derived: dict[str, Any] = {}  # see derived()
        linked = speedups.link_spans(spans) if speedups is not None else None
        if linked is not None:
            self.spans, self.by_id, forest = linked
            if not forest:
                _break_cycles(self.spans)
            return
        self.spans = ordered = sorted(spans, key=_START_ORDER)
        self.by_id = by_id = {s.span_id: s for s in ordered}
        if _link_parents_first(ordered, by_id):
            return  # nearly always: one pass, and no cycle to look for
        for span in ordered:
            span.children = []
        find = by_id.get
        for span in ordered:
            parent_id = span.parent_id
            span.parent = parent = find(parent_id) if parent_id is not None else None
            if parent is not None:
                parent.children.append(span)
        _break_cycles(ordered)

    def __iter__(self) -> Iterator[Span]:
        return iter(self.spans)

    def __len__(self) -> int:
        return len(self.spans)

    def __repr__(self) -> str:
        return f"<Trace {len(self.spans)} spans clock={self.clock}>"

    @property
    def roots(self) -> list[Span]:
        """Spans without a recorded parent."""
        return [s for s in self.spans if s.parent is None]

    @property
    def tracks(self) -> list[Span]:
        """The spans that own a timeline row (run, tasks, thread jobs), in creation order."""
        ids = set(map(_TRACK, self.spans))
        return sorted(
            (self.by_id[i] for i in ids if i in self.by_id),
            key=lambda s: (s.start_seq, s.span_id),
        )

    def spans_matching(
        self, name_glob: str | None = None, kind: str | None = None, **attributes: object
    ) -> list[Span]:
        """Spans whose name matches the glob, of the kind, with these attribute values."""
        if kind is not None and kind not in KINDS:
            msg = f"kind={kind!r} is not a span kind; use one of {', '.join(KINDS)}"
            raise ValueError(msg)
        found = []
        for span in self.spans:
            if name_glob is not None and not fnmatch.fnmatchcase(span.name, name_glob):
                continue
            if kind is not None and span.kind != kind:
                continue
            if any(span.attributes.get(k) != v for k, v in attributes.items()):
                continue
            found.append(span)
        return found

    @property
    def start(self) -> float:
        """The earliest start time in the trace (0.0 when empty): its first span's."""
        return self.spans[0].start if self.spans else 0.0

    @property
    def end(self) -> float:
        """The latest end time in the trace (0.0 when empty)."""
        return derived(self, "end", _latest_end)


def _latest_end(trace: Trace) -> float:
    return max(map(_END, trace.spans), default=0.0)


_T = TypeVar("_T")


def derived(trace: Trace, key: str, compute: Callable[[Trace], _T]) -> _T:
    """``compute(trace)``, worked out once per trace and kept on it.

    The JSON timeline, the terminal timeline, its summary and the HTML page each want the
    joins, the tasks' activity, the critical path and the wait profile of the same trace; a
    built trace does not change (see above), so each is worked out once.  Callers MUST NOT
    mutate what this returns.
    """
    try:
        return trace._derived[key]  # type: ignore[no-any-return]
    except KeyError:
        value = trace._derived[key] = compute(trace)
        return value


def _break_cycles(spans: list[Span]) -> None:
    """Cut one parent link in each cycle of ``parent`` links; ``spans`` in start order.

    Each span is walked over once (O(n)): a walk up from a span stops at a span already known
    to reach a root, or at one on the walk itself, which closes a cycle.
    """
    order: dict[int, int] = {}  # id(span) -> position, made only for a cycle of two or more
    on_walk: set[int] = set()
    done: set[int] = set()
    for span in spans:
        if span.parent is None or id(span.parent) in done:  # nearly always: parents start first
            done.add(id(span))
            continue
        walk: list[Span] = []
        cur: Span | None = span
        while cur is not None and id(cur) not in done and id(cur) not in on_walk:
            on_walk.add(id(cur))
            walk.append(cur)
            cur = cur.parent
        if cur is not None and id(cur) in on_walk:
            cycle = walk[walk.index(cur) :]
            if len(cycle) > 1 and not order:
                order = {id(s): i for i, s in enumerate(spans)}
            first = min(cycle, key=lambda s: order[id(s)]) if len(cycle) > 1 else cur
            if first.parent is not None:  # always: every span in a cycle has a parent
                first.parent.children.remove(first)
            first.attributes[CUT_PARENT] = first.parent_id
            first.parent = first.parent_id = None
        done.update(on_walk)
        on_walk.clear()


def _link_parents_first(ordered: list[Span], by_id: dict[Any, Span]) -> bool:
    """Link ``ordered`` (in start order) in one pass while each parent starts strictly before
    its child: its ``children`` are then reset before any child is added, and no parent chain
    can loop.  False, with the links half made, at a tie, a NaN or a value that does not
    compare (a hand-made span's): the caller links them all again and cuts the cycles."""
    find = by_id.get
    try:
        for span in ordered:
            span.children = []
            parent_id = span.parent_id
            span.parent = parent = find(parent_id) if parent_id is not None else None
            if parent is not None:
                if not (
                    parent.start < span.start
                    or (parent.start == span.start and parent.start_seq < span.start_seq)
                ):
                    return False
                parent.children.append(span)
    except TypeError:
        return False
    return True
