"""Where the waiting went: awaits grouped by what they waited on and where, with their times.

Problem: a timeline of thousands of awaits does not say which wait cost the run its time: a
slow query at one line, a queue that is always empty, a lock everyone queues on.

Solution: :func:`wait_profile` groups the await spans by what they waited on (the awaited
thing: ``asyncio.sleep`` whatever the delay, ``Queue.get``, ``Semaphore.acquire``, a task by
its coroutine name, a gather) and by where (the file and line of the ``await``), and gives each
group its count, total, mean, median, 99th percentile and longest, sorted by total.  Beside
them: the time blocking steps held the loop, and the time no task could run (every task was
waiting: the loop idle on timers and I/O).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from ._spans import AWAITED_SPAN, Span, Trace
from ._timeline import _merge


@dataclass(frozen=True)
class WaitGroup:
    """The awaits on one thing at one place.

    Attributes:
        what: what they waited on (``asyncio.sleep``, ``Queue.get``, ``task fetch``).
        where: ``file.py:LINE`` of the ``await`` (the file's base name), or ``""``.
        count: how many awaits.
        total, mean, p50, p99, max: their durations, in seconds.
    """

    what: str
    where: str
    count: int
    total: float
    mean: float
    p50: float
    p99: float
    max: float


@dataclass(frozen=True)
class WaitProfile:
    """A run's waits: ``groups`` by total (largest first), ``blocked`` seconds that blocking
    steps held the loop, ``idle`` seconds no task could run, over ``wall`` seconds."""

    groups: list[WaitGroup]
    blocked: float
    idle: float
    wall: float

    @property
    def awaited(self) -> float:
        """Seconds awaited in all (tasks wait side by side: this can exceed ``wall``)."""
        return sum(g.total for g in self.groups)


def wait_profile(trace: Trace) -> WaitProfile:
    """The awaits of ``trace`` grouped by what and where, with the blocked and idle time."""
    by_key: dict[tuple[str, str], list[float]] = {}
    for span in trace.spans:
        if span.kind == "await":
            by_key.setdefault((_what(trace, span), _where(span)), []).append(span.duration)
    groups = [_group(what, where, durations) for (what, where), durations in by_key.items()]
    groups.sort(key=lambda g: (-g.total, -g.count, g.what, g.where))
    blocked = sum(s.duration for s in trace.spans if s.kind == "blocked")
    runs = [s for s in trace.spans if s.kind == "run"]
    if runs:
        lo, hi = runs[0].start, runs[0].end
    elif trace.spans:
        lo, hi = min(s.start for s in trace.spans), trace.end
    else:
        lo = hi = 0.0
    return WaitProfile(groups, blocked, _idle(trace, lo, hi), max(0.0, hi - lo))


def _what(trace: Trace, span: Span) -> str:
    target_id = span.attributes.get(AWAITED_SPAN)
    if isinstance(target_id, int):
        target = trace.by_id.get(target_id)
        if target is not None and target.kind in ("task", "thread"):
            return f"{target.kind} {target.name}"
    awaited = span.attributes.get("asynctrace.awaited")
    what = awaited if isinstance(awaited, str) else span.name
    # sleeps of any length at one place are one wait (a backoff, a poll interval)
    return "asyncio.sleep" if what.startswith("asyncio.sleep(") else what


def _where(span: Span) -> str:
    path = span.attributes.get("code.file.path")
    line = span.attributes.get("code.line.number")
    if not isinstance(path, str):
        return ""
    name = os.path.basename(path)
    return f"{name}:{line}" if isinstance(line, int) else name


def _group(what: str, where: str, durations: list[float]) -> WaitGroup:
    durations.sort()
    total = math.fsum(durations)
    return WaitGroup(
        what,
        where,
        len(durations),
        total,
        total / len(durations),
        _rank(durations, 0.50),
        _rank(durations, 0.99),
        durations[-1],
    )


def _rank(ordered: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile of non-empty ``ordered``."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _idle(trace: Trace, lo: float, hi: float) -> float:
    """Seconds in ``[lo, hi)`` when no task was running: every live one was in an await."""
    awaits: dict[int, list[tuple[float, float]]] = {}
    for span in trace.spans:
        if span.kind == "await":
            awaits.setdefault(span.track, []).append((span.start, span.end))
    running: list[tuple[float, float]] = []
    for task in trace.spans:
        if task.kind != "task":
            continue
        t = task.start
        for a, b in _merge(awaits.get(task.span_id, []), task.start, task.end):
            if a > t:
                running.append((t, min(a, task.end)))
            t = max(t, b)
        if t < task.end:
            running.append((t, task.end))
    busy = sum(b - a for a, b in _merge(running, lo, hi))
    return max(0.0, (hi - lo) - busy)
