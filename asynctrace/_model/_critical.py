"""The critical path: the chain of spans whose ends set a span's end.

Problem: a timeline shows what ran when; the question after it is why the run took as long as
it did.  The longest task is not the answer: a ``gather`` ends with its slowest task, a
sequence of awaits adds up, a task awaited on another track sets its awaiter's end.

Solution: the fork-join critical path, walked backwards from the span's end.  At time ``t``
(at first the span's end) the step is the child that ended last at or before ``t`` and after
the span started; ``t`` moves to that step's start, and the walk goes on until no child is
left before ``t``.  Each step is expanded the same way inside it.  An await on a task, a gather
or a thread job (``asynctrace.awaited.span_id``; for a trace from an older file, the name
``Task-2 (task1)``) stands for what it waited on: the walk goes into that span.  An await on a
``Future`` (a ``TaskGroup``'s exit, an ``Event``...) that a child task of the span ended during
stands for that task.  The await a gather holds (its result being taken) is the gather's own
waiting, not work: the walk goes into the gather's tasks.
"""

from __future__ import annotations

import itertools
import operator

from .._core._coro import speedups
from ._spans import AWAITED_SPAN, Span, Trace, derived
from ._timeline import spans_of_kind

CRITICAL = "asynctrace.critical"
"""Attribute of the spans on the run's critical path (JSON args, OTLP): True."""

_BY_END = operator.attrgetter("end", "end_seq")
_PARENT = operator.attrgetter("parent")
_MAX_DEPTH = 200  # a path deeper than this is cut there (a hostile file's chain)


def critical_path(trace: Trace, span: Span | None = None) -> list[Span]:
    """The spans whose ends set the end of ``span`` (default: the run), in time order.

    The list starts with ``span`` (the run, or the trace's first root), then each step of the
    path with, after it, the steps inside it.  An empty trace gives an empty list.
    """
    if span is None:
        return list(derived(trace, "critical_path", _run_path))
    return _path(trace, span)


def _run_path(trace: Trace) -> list[Span]:
    # nearly always the first span: no list of the roots to make
    run = next((s for s in trace.spans if s.parent is None and s.kind == "run"), None)
    if run is not None:
        return _path(trace, run)
    roots = trace.roots
    return _path(trace, max(roots, key=lambda r: (r.end, r.end_seq))) if roots else []


def _path(trace: Trace, span: Span) -> list[Span]:
    tasks = _TaskLabels(trace)
    if speedups is not None:  # the same walk in C (_ccritical.c), for the spans it reads
        try:
            return speedups.critical_walk(span, trace.by_id, tasks, _MAX_DEPTH)
        except (TypeError, ValueError):  # a hand-made trace's odd values: Python decides
            pass
    path: list[Span] = []
    _walk(trace, span, path, tasks, set(), 0)
    return path


def mark_critical(trace: Trace) -> list[Span]:
    """Set :data:`CRITICAL` on the spans of the run's critical path; returns them."""
    path = critical_path(trace)
    for step in path:
        step.attributes[CRITICAL] = True
    return path


def _walk(
    trace: Trace,
    span: Span,
    path: list[Span],
    tasks: _TaskLabels,
    seen: set[Span],
    depth: int,
) -> None:
    """Append to ``path`` the path of ``span`` (at ``depth``): the span, then each step's path.

    Depth first and in time order, as a recursion would go, without a Python call per step: a
    call's one child, or the cause of an await, is walked next in the loop; the other steps of
    a span wait on a stack (the earliest on top).  ``seen`` holds the spans walked already.
    """
    by_id = trace.by_id
    todo = [(span, depth)]
    while todo:
        span, depth = todo.pop()
        while depth <= _MAX_DEPTH and span not in seen:
            seen.add(span)
            path.append(span)
            kind = span.kind
            if kind == "await":
                cause = _awaited(by_id, span, tasks)
                if cause is None:
                    break
                span, depth = cause, depth + 1
                continue
            children = span.children
            if not children:
                break
            if len(children) == 1:  # nearly every call: its one call or await, the step?
                only = children[0]
                end = only.end
                if (
                    end > only.start
                    and not (kind == "gather" and only.kind == "await")
                    and not (end > span.end or (end == span.end and only.end_seq > span.end_seq))
                    and not end <= span.start
                ):
                    span, depth = only, depth + 1  # (a span seen already is not walked again)
                    continue
                break
            steps = _steps(by_id, span, tasks, seen)
            if not steps:
                break
            span, depth = steps.pop(), depth + 1  # the earliest: walked now, the others after
            todo += [(step, depth) for step in steps]


def _steps(by_id: dict[int, Span], span: Span, tasks: _TaskLabels, seen: set[Span]) -> list[Span]:
    """The steps of ``span`` (not an await, with children), the latest first."""
    steps: list[Span] = []
    # children by end: the walk goes down this list once, as t only moves back
    held_await = span.kind == "gather"  # the await a gather holds is its result being taken
    children = span.children
    ordered = [c for c in children if c.end > c.start and not (held_await and c.kind == "await")]
    if len(ordered) > 1:
        ordered.sort(key=_BY_END)
    start = span.start
    t, t_seq = span.end, span.end_seq
    i = len(ordered) - 1
    while i >= 0:
        step = ordered[i]
        i -= 1
        end = step.end
        if end > t or (end == t and step.end_seq > t_seq) or step in seen:
            continue
        if end <= start:
            break
        cause = None
        if step.kind == "await":
            step = _ended_during(step, ordered, i) or step
            if step.kind == "await":
                cause = _awaited(by_id, step, tasks)
        steps.append(step)
        t = step.start if cause is None or step.start < cause.start else cause.start
        t_seq = step.start_seq
        if t <= start:
            break
    return steps


def _ended_during(step: Span, ordered: list[Span], below: int) -> Span | None:
    """For an await on a bare future: the child task that ended last while it waited.

    ``step`` is an await.

    ``ordered[: below + 1]`` are the children that end no later than ``step``, by end.
    """
    if AWAITED_SPAN in step.attributes:
        return None
    awaited = step.attributes.get("asynctrace.awaited", step.name)
    if isinstance(awaited, str) and awaited.startswith("asyncio.sleep"):
        return None
    for j in range(below, -1, -1):
        child = ordered[j]
        if child.end < step.start:
            return None
        if child.kind in ("task", "thread"):
            return child
    return None


def _awaited(by_id: dict[int, Span], span: Span, tasks: _TaskLabels) -> Span | None:
    """What an await on a task, a gather or a thread job waited on, if it was one."""
    target_id = span.attributes.get(AWAITED_SPAN)
    if isinstance(target_id, int):
        return by_id.get(target_id)
    awaited = span.attributes.get("asynctrace.awaited", span.name)
    return tasks.get(awaited) if isinstance(awaited, str) else None


class _TaskLabels:
    """The task spans by the label an await on them is named with (``Task-2 (task1)``), for an
    await whose record has no task id.  Made on the first label that could be one (it has
    `` (`` and ends with ``)``): a path of sleeps never needs them, and for a run of 100,000
    tasks they took a tenth of a second to make."""

    __slots__ = ("_found", "_trace")

    def __init__(self, trace: Trace) -> None:
        self._trace = trace
        self._found: dict[str, Span] | None = None

    def get(self, label: str) -> Span | None:
        if not (label.endswith(")") and " (" in label):
            return None
        if self._found is None:
            self._found = _tasks_by_label(self._trace)
        return self._found.get(label)


def _tasks_by_label(trace: Trace) -> dict[str, Span]:
    """Task spans by the label an await on them is named with: ``Task-2 (task1)``."""
    found: dict[str, Span] = {}
    for span in spans_of_kind(trace, "task"):
        task_name = span.attributes.get("asynctrace.task.name")
        if task_name:
            found[f"{task_name} ({span.name})"] = span
    return found


def path_steps(path: list[Span]) -> list[Span]:
    """The path's steps that hold no other step: where its time went, in time order.

    A step holds the step after it when that one is its child (nearly always: found by map(),
    no Python step each; 20,000 calls deep) or lies further inside it; the last step holds
    none."""
    steps = path[1:]
    if not steps:
        return steps
    afters = path[2:]
    not_child = map(operator.is_not, map(_PARENT, afters), steps)
    leaves = [
        steps[i]
        for i in itertools.compress(range(len(afters)), not_child)
        if not _inside(afters[i], steps[i])
    ]
    leaves.append(steps[-1])
    return leaves


def _inside(span: Span, ancestor: Span) -> bool:
    """``span`` is ``ancestor`` 's descendant, or what an await of it waited on."""
    node: Span | None = span.parent
    while node is not None:
        if node is ancestor:
            return True
        node = node.parent
    return ancestor.kind == "await" and ancestor.attributes.get(AWAITED_SPAN) == span.span_id
