"""What a timeline shows, whatever draws it: row and slice labels, and tasks in flight.

Problem: the JSON timeline, the stream, and the terminal timeline must name rows and slices the
same way, and agree on when a task counts as running or waiting.

Solution: :func:`row_label` and :func:`display_name` name them; :func:`joins` finds the awaits
that wait on other tasks and :func:`activity` counts tasks running and waiting over time.

These passes read every span of a trace, for both the JSON file and the terminal: the optional
C extension ``_ctimeline`` (built with asynctrace) does each of them exactly as its Python
version here, which is the reference and the fallback (without C, with
``ASYNCTRACE_NO_SPEEDUPS`` set, or for a hand-made trace's odd values that C refuses).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from itertools import repeat
from typing import Any, TypeVar

from .._export._sanitize import MAX_CHARS, cap
from .._native import extension
from ._spans import AWAITED_SPAN, TASK_THREAD, Span, Trace, derived

__all__ = [
    "activity",
    "await_keys",
    "display_name",
    "idle_waits",
    "joins",
    "row_label",
    "spans_of_kind",
]

_AWAITED = "asynctrace.awaited"
# Awaits on which a task waits for something another task does (a lock released, an item put,
# an event set, a future resolved, a task ended), as opposed to a sleep, a socket or a thread.
_IDLE_PREFIXES = (
    "Lock.",
    "Semaphore.",
    "BoundedSemaphore.",
    "Condition.",
    "Event.",
    "Barrier.",
    "Queue.",
    "LifoQueue.",
    "PriorityQueue.",
)
_IDLE_NAMES = frozenset(
    ("Future", "asyncio.wait_for", "asyncio.wait", "asyncio.shield", "asyncio.as_completed")
)
_FUNCTION = "code.function.name"
_ATTRIBUTES = operator.attrgetter("attributes")
_NAME = operator.attrgetter("name")
_KIND = operator.attrgetter("kind")
_T = TypeVar("_T")


def _load_ctimeline() -> Any:
    """``_ctimeline``, told once which class a span is; None without C."""
    module = extension("_ctimeline")
    if module is not None:
        module.configure(Span)
    return module


_C = _load_ctimeline()


def _fastest(c_name: str, python_version: Callable[..., _T], *args: Any) -> _T:
    """``_ctimeline``'s ``c_name(*args)``; ``python_version(*args)`` without C, or when C
    refuses a hand-made trace's odd values (a TypeError or ValueError: Python then answers,
    or fails, as it always did)."""
    if _C is not None:
        try:
            return getattr(_C, c_name)(*args)  # type: ignore[no-any-return]
        except (TypeError, ValueError):
            pass
    return python_version(*args)


def row_label(span: Span) -> str:
    """The name of the timeline row a run, task or thread job owns: ``Task-2 task1()``; a task
    whose loop runs on another thread than the main one says which: ``Task-5 main() @loop``."""
    if span.kind == "task":
        task_name = span.attributes.get("asynctrace.task.name") or "Task"
        thread = span.attributes.get(TASK_THREAD)
        return task_row(cap(str(task_name)), cap(span.name), cap(str(thread)) if thread else None)
    if span.kind == "thread":
        thread_name = span.attributes.get("asynctrace.thread.name") or "thread"
        return f"{cap(str(thread_name))} {cap(span.name)}()"
    if span.kind == "run":
        return f"run {cap(span.name)}"
    return display_name(span)


def task_row(task_name: str, function: str, thread: str | None) -> str:
    """A task's row name from its parts: ``Task-2 task1()``, or, for a task of a loop on
    another thread than the main one, ``Task-5 main() @side-loop``."""
    label = f"{task_name} {function}()"
    return f"{label} @{thread}" if thread else label


def display_name(span: Span) -> str:
    """The slice name: ``await asyncio.sleep(3)``, ``task1()``, ``blocked 3.000 s``.

    A name longer than :data:`~_sanitize.MAX_CHARS` is cut (see ``_sanitize.py``).
    """
    kind = span.kind
    raw = span.name if len(span.name) <= MAX_CHARS else cap(span.name)
    if kind == "await":
        return f"await {raw}"
    if kind in ("task", "coroutine", "thread"):
        name = f"{raw}()"
    elif kind == "blocked":
        name = f"blocked {span.duration:.3f} s"
    else:
        name = raw
    if span.status != "ok":
        name = f"{name} [{span.status}]"
    return name


def joins(trace: Trace) -> list[Span]:
    """The awaits that wait on other tasks (a task, a gather): joins, not operations, in order.

    An await on a task is named like ``Task-2 (task1)`` (see architecture.md); an await on a
    gather is the gather span's child or is named ``gather(...)``.
    """
    return derived(trace, "joins", _joins)


def _joins(trace: Trace) -> list[Span]:
    tasks, awaits = spans_of_kind(trace, "task"), spans_of_kind(trace, "await")
    return _fastest("joins", _joins_python, tasks, awaits)


def _joins_python(tasks: list[Span], awaits: list[Span]) -> list[Span]:
    names = set()
    for span in tasks:
        task_name = span.attributes.get("asynctrace.task.name")
        if task_name:
            names.add(f"{task_name} ({span.name})")
    # "gather(...)" or a task's name: each of the few distinct names (a trace awaits the same
    # things thousands of times) tested once
    joined = {n for n in set(map(_NAME, awaits)) if n in names or n.startswith("gather(")}
    found = []
    for span in awaits:
        parent = span.parent
        if span.name in joined or (parent is not None and parent.kind == "gather"):
            found.append(span)
        else:
            awaited = span.attributes.get(_AWAITED)  # any value: a hand-made trace's may be a list
            if isinstance(awaited, str) and awaited in names:
                found.append(span)
    return found


def idle_waits(trace: Trace) -> list[Span]:
    """The joins, and the awaits on a lock, semaphore, queue, event, condition or future.

    A task in one of these does nothing until another task acts: the terminal timeline counts
    it as waiting, not running (a semaphore's queue is not concurrency).
    """
    return derived(trace, "idle_waits", _idle_waits)


def _idle_waits(trace: Trace) -> list[Span]:
    args = (joins(trace), spans_of_kind(trace, "await"), await_keys(trace))
    return _fastest("idle_waits", _idle_waits_python, *args, _IDLE_NAMES, _IDLE_PREFIXES)


def _idle_waits_python(
    join_spans: list[Span],
    awaits: list[Span],
    keys: list[AwaitKey],
    idle_names: frozenset[str],
    idle_prefixes: tuple[str, ...],
) -> list[Span]:
    found = list(join_spans)
    seen = {id(s) for s in found}
    # "Future" for "Future (resp.json())"; each of the few distinct names (a trace awaits the
    # same things thousands of times) tested once
    named = zip(keys, map(_NAME, awaits), strict=True)
    names = [key[1] if isinstance(key[1], str) else n for key, n in named]
    idle = {n for n in set(names) if n in idle_names or n.startswith(idle_prefixes)}
    if idle:
        found += [s for s, n in zip(awaits, names, strict=True) if n in idle and id(s) not in seen]
    return found


def spans_of_kind(trace: Trace, kind: str) -> list[Span]:
    """The spans of ``kind``, in the trace's order.

    The terminal timeline, its summary and the wait profile each want the tasks or the awaits
    of a 22,000-span trace: one pass over it finds where each kind's are, once per trace.  The
    trace keeps their positions, not the spans: a trace that outlives its spans (see
    ``_spans.release``) MUST NOT keep them alive for the garbage collector to find at exit.
    """
    positions = derived(trace, "kind_positions", _kind_positions).get(kind)
    return _fastest("spans_at", _spans_at_python, trace.spans, positions) if positions else []


def _spans_at_python(spans: list[Span], positions: list[int]) -> list[Span]:
    return list(map(spans.__getitem__, positions))


AwaitKey = tuple[object, object, object, object]


def await_keys(trace: Trace) -> list[AwaitKey]:
    """Each await's target span id, what it awaited (its name without one), file and line.

    In the order of ``spans_of_kind(trace, "await")``: the attributes of 20,000 awaits read
    once, by map(), for the idle waits and the wait profile.
    """
    return derived(trace, "await_keys", _await_keys)


def _await_keys(trace: Trace) -> list[AwaitKey]:
    return _fastest("await_keys", _await_keys_python, spans_of_kind(trace, "await"))


def _await_keys_python(awaits: list[Span]) -> list[AwaitKey]:
    attrs = list(map(_ATTRIBUTES, awaits))
    return list(
        zip(
            map(dict.get, attrs, repeat(AWAITED_SPAN)),
            map(dict.get, attrs, repeat(_AWAITED), map(_NAME, awaits)),
            map(dict.get, attrs, repeat("code.file.path")),
            map(dict.get, attrs, repeat("code.line.number")),
            strict=True,
        )
    )


def _kind_positions(trace: Trace) -> dict[str, list[int]]:
    return _fastest("kind_positions", _kind_positions_python, trace.spans)


def _kind_positions_python(spans: list[Span]) -> dict[str, list[int]]:
    positions: dict[str, list[int]] = {}
    for i, kind in enumerate(map(_KIND, spans)):
        try:  # no test for the rare miss: half the time of dict.get on 22,000 spans
            positions[kind].append(i)
        except KeyError:
            positions[kind] = [i]
    return positions


def activity(trace: Trace) -> list[tuple[float, int, int]]:
    """How many tasks run and wait over time, as ``(time, running, waiting)`` change points:
    what the terminal's header and the JSON file's ``tasks`` counters say.

    A task is *waiting* while it is in one of :func:`idle_waits` (it awaits another task, a
    lock, semaphore, condition, queue, event or bare future: it does nothing until another task
    acts) and *running* while it is alive otherwise, including while it sleeps or awaits a
    socket.  Why not count every await as waiting: only one task executes Python at a time, so
    "running" in that sense could never exceed one and the overlap would always be zero; what
    concurrency means for asyncio is tasks in flight at once.
    """
    return derived(trace, "activity", _activity)


def _activity(trace: Trace) -> list[tuple[float, int, int]]:
    return _fastest("activity", _activity_python, spans_of_kind(trace, "task"), idle_waits(trace))


def _activity_python(
    task_spans: list[Span], join_spans: Iterable[Span]
) -> list[tuple[float, int, int]]:
    tasks = {s.span_id: s for s in task_spans}
    deltas: dict[float, list[int]] = {}

    def add(t: float, running: int, waiting: int) -> None:
        d = deltas.get(t)
        if d is None:
            deltas[t] = [running, waiting]
        else:
            d[0] += running
            d[1] += waiting

    waits: dict[int, list[tuple[float, float]]] = {}
    for span in join_spans:
        if span.track in tasks:
            waits.setdefault(span.track, []).append((span.start, span.end))
    for task in tasks.values():
        add(task.start, 1, 0)
        add(task.end, -1, 0)
        task_waits = waits.get(task.span_id)
        if task_waits is None:
            continue
        for a, b in _merge(task_waits, task.start, task.end):
            add(a, -1, 1)
            add(b, 1, -1)
    points: list[tuple[float, int, int]] = []
    running = waiting = 0
    for t in sorted(deltas):
        running += deltas[t][0]
        waiting += deltas[t][1]
        if not points or points[-1][1:] != (running, waiting):
            points.append((t, running, waiting))
    return points


def _merge(
    intervals: Iterable[tuple[float, float]], lo: float, hi: float
) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for a, b in sorted(intervals):
        if a < lo:
            a = lo
        if b > hi:
            b = hi
        if b <= a:
            continue
        if merged and a <= merged[-1][1]:
            if b > merged[-1][1]:
                merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged
