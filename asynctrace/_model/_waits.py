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
import operator
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .._export._bars import c_function
from .._export._terminal_rows import by_key
from ._spans import Span, Trace, derived
from ._timeline import _merge, await_keys, spans_of_kind


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
    return derived(trace, "wait_profile", _profile)


_START = operator.attrgetter("start")
_END = operator.attrgetter("end")
_TRACK = operator.attrgetter("track")


def _profile(trace: Trace) -> WaitProfile:
    # Durations by the raw attributes (few distinct), made by map() and by_key (in C when
    # built) rather than one Python step per await; what and where are worked out once per
    # distinct raw key.
    awaits = spans_of_kind(trace, "await")
    raw = by_key(await_keys(trace), list(map(operator.sub, map(_END, awaits), map(_START, awaits))))
    blocked = 0.0
    for span in spans_of_kind(trace, "blocked"):
        blocked += span.duration
    runs = spans_of_kind(trace, "run")
    by_place: dict[tuple[str, str], list[float]] = {}
    for (target, awaited, path, line), durations in raw.items():
        place = (_what(trace, target, awaited), _where(path, line))
        by_place.setdefault(place, []).extend(durations)
    groups = [_group(what, where, durations) for (what, where), durations in by_place.items()]
    groups.sort(key=lambda g: (-g.total, -g.count, g.what, g.where))
    if runs:
        lo, hi = runs[0].start, runs[0].end
    elif trace.spans:
        lo, hi = trace.start, trace.end
    else:
        lo = hi = 0.0
    idle = _idle(spans_of_kind(trace, "task"), awaits, lo, hi)
    return WaitProfile(groups, blocked, idle, max(0.0, hi - lo))


def _what(trace: Trace, target_id: object, awaited: object) -> str:
    if isinstance(target_id, int):
        target = trace.by_id.get(target_id)
        if target is not None and target.kind in ("task", "thread"):
            return f"{target.kind} {target.name}"
    what = str(awaited)
    # sleeps of any length at one place are one wait (a backoff, a poll interval)
    return "asyncio.sleep" if what.startswith("asyncio.sleep(") else what


def _where(path: object, line: object) -> str:
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


def _idle(tasks: list[Span], awaits: list[Span], lo: float, hi: float) -> float:
    """Seconds in ``[lo, hi)`` when no task was running: every live one was in an await."""
    busy = sum(running_lengths(tasks, awaits, lo, hi))
    return max(0.0, (hi - lo) - busy)


def running_lengths_python(
    tasks: Sequence[Span], awaits: Sequence[Span], lo: float, hi: float
) -> list[float]:
    """How long each stretch of ``[lo, hi)`` was in which a task ran, in time order.

    A task runs from its start to its end but for its awaits (the awaits whose track is its
    span id).  The reference implementation.
    """
    by_track: dict[int, list[Span]] = {}
    for track, wait in zip(map(_TRACK, awaits), awaits, strict=True):
        same = by_track.get(track)
        if same is None:
            by_track[track] = [wait]
        else:
            same.append(wait)
    running: list[tuple[float, float]] = []
    for task in tasks:
        t, end = task.start, task.end
        # a task's awaits are one after the other (it waits on one thing at a time), and
        # listed in the trace's order: by start
        for wait in by_track.get(task.span_id, ()):
            start = wait.start
            if start > t:
                running.append((t, start if start < end else end))
            if wait.end > t:
                t = wait.end
        if t < end:
            running.append((t, end))
    return [b - a for a, b in _merge(running, lo, hi)]


_RunningLengths = Callable[[Sequence[Span], Sequence[Span], float, float], list[float]]


_C_RUNNING_LENGTHS: _RunningLengths | None = c_function("running_lengths")


def running_lengths(
    tasks: Sequence[Span], awaits: Sequence[Span], lo: float, hi: float
) -> list[float]:
    """:func:`running_lengths_python`, in C (``_cbars.running_lengths``) when it is built and
    every time is a finite float."""
    if _C_RUNNING_LENGTHS is not None:
        try:
            return _C_RUNNING_LENGTHS(tasks, awaits, lo, hi)
        except (ValueError, TypeError, OverflowError):  # not finite, not a float: Python says it
            pass
    return running_lengths_python(tasks, awaits, lo, hi)
