"""Schedules on the virtual clock: a seed, the perturbations it draws, the loop that applies them.

Problem: under virtual time a test is exactly reproducible, so it only ever checks one schedule,
while the races that make asyncio tests flaky hang on timing the test never varies: how long one
request takes compared with another, which of two timers due at once fires first.

Solution: a :class:`Schedule` is a seed and a jitter bound.  :class:`ExploringLoop`, a
:class:`~asynctrace._core._virtual.VirtualTimeLoop`, applies it to every timer the program makes:

- a duration (``asyncio.sleep``, ``call_later``: what stands for I/O and work in a test) is
  multiplied by a factor drawn in ``[1 - jitter, 1 + jitter]``;
- a deadline the program sets (``asyncio.timeout``, ``wait_for``, ``wait(timeout=)``,
  ``as_completed(timeout=)``) is kept exact: a real clock fires it on time, it is the work
  that varies;
- timers due at exactly the same time fire in the order of a priority drawn per task, in the
  manner of PCT (Burckhardt et al.): one task's timers win or lose ties together;
- I/O events reported by one ``select`` are handled in a shuffled order.

What asyncio guarantees stays guaranteed: ``call_soon`` callbacks run in FIFO order, and the
clock only moves forward.  Seed 0 is the schedule of a plain virtual-time run (nothing drawn);
seed 1 keeps every duration and reverses every tie (of the timers due at once, the one made
last fires first: the race a two-timer tie hides is found at the second run); seeds from 2 on
are drawn.

Each perturbation has a key that names it independently of the others (the task by its
coroutine's name and creation rank, ``withdraw#2``, and the rank of the timer in that task,
``withdraw#2/1``), and its draws are a hash of (seed, key): a schedule restricted to some keys
(``Schedule.only``, what shrinking tries) perturbs those timers exactly as the full schedule did
and leaves the others exact.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import os
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._core._virtual import VirtualTimeLoop, _Event
from .._native import PACKAGE_DIR

DEFAULT_JITTER = 0.5
DEFAULT_RUNS = 100
REVERSED = 1
"""The seed whose schedule keeps every duration and reverses every tie between timers."""

# Callbacks of the timers that are deadlines besides asyncio.timeout's (wait_for and wait in
# 3.11, as_completed): kept exact.
_DEADLINES = ("_on_timeout", "_release_waiter")
_ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep


@dataclass(frozen=True)
class Schedule:
    """A seed, the jitter bound, and (when shrinking) the only perturbation keys applied."""

    seed: int
    jitter: float = DEFAULT_JITTER
    only: frozenset[str] | None = None
    time_limit: float | None = None  # virtual seconds a run may reach before it is stopped

    def applies(self, key: str) -> bool:
        """True if this schedule perturbs the timer or stream ``key``."""
        return self.seed != 0 and (self.only is None or key in self.only)

    def unit(self, key: str, salt: str) -> float:
        """A draw in ``[0, 1)`` that depends only on the seed, ``key`` and ``salt``."""
        digest = hashlib.blake2b(f"{self.seed}:{key}:{salt}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class Perturbation:
    """One timer as a schedule changed it."""

    key: str
    task: str  # the task's stable label, withdraw#2
    where: str  # the program's line that made the timer: withdraw (bank.py:12)
    delay: float  # as the program asked
    factor: float  # 1.0 for a deadline: only its tie order changed
    kind: str = "duration"  # "deadline", "reversed" (seed 1), "io" (one select's events)

    def text(self) -> str:
        """``withdraw#1: the 0.01 s wait at withdraw (bank.py:12) took 0.0143 s (+43%)``."""
        if self.kind == "io":
            return "the I/O events that one select reported were handled in a shuffled order"
        if self.kind == "reversed":
            return (
                f"{self.task}: the {_s(self.delay)} s timer at {self.where} fired before the "
                "timers made earlier and due at the same time"
            )
        if self.factor == 1.0:  # a deadline, or a duration with no jitter: only its tie rank
            what = "deadline" if self.kind == "deadline" else "wait"
            return (
                f"{self.task}: the {_s(self.delay)} s {what} at {self.where} fired by its "
                "task's priority among the timers due at the same time"
            )
        return (
            f"{self.task}: the {_s(self.delay)} s wait at {self.where} took "
            f"{_s(self.delay * self.factor)} s ({self.factor - 1:+.0%})"
        )


class ScheduleTimeLimit(RuntimeError):
    """A run under an explored schedule went on far longer than under the plain schedule."""


def _s(seconds: float) -> str:
    return f"{seconds:.6g}"


class _TieTimer(asyncio.TimerHandle):
    """A timer that, due at exactly the same time as another, goes by its task's priority."""

    __slots__ = ("_tie",)

    def __init__(self, tie: float, *args: Any) -> None:
        super().__init__(*args)
        self._tie = tie

    def __lt__(self, other: object) -> bool:
        if isinstance(other, asyncio.TimerHandle):
            mine, theirs = self.when(), other.when()
            return mine < theirs or (mine == theirs and self._tie < getattr(other, "_tie", 0.0))
        return NotImplemented

    def __gt__(self, other: object) -> bool:
        if isinstance(other, asyncio.TimerHandle):
            mine, theirs = self.when(), other.when()
            return mine > theirs or (mine == theirs and self._tie > getattr(other, "_tie", 0.0))
        return NotImplemented


def _qualname(obj: object) -> str:
    name = getattr(obj, "__qualname__", None)
    return name if isinstance(name, str) else type(obj).__qualname__


def _is_deadline(callback: Callable[..., object]) -> bool:
    fn = getattr(callback, "func", callback)  # functools.partial: its function
    if isinstance(getattr(fn, "__self__", None), asyncio.Timeout):
        return True  # whatever its method is now (asynctrace's own patch records timeouts)
    return _qualname(fn).rsplit(".", 1)[-1] in _DEADLINES


def _program_line() -> str:
    """Where the program made the timer: the first frame outside asyncio and asynctrace."""
    frame = sys._getframe(2)
    while frame is not None:
        path = frame.f_code.co_filename
        if not path.startswith((_ASYNCIO_DIR, PACKAGE_DIR)):
            name = getattr(frame.f_code, "co_qualname", frame.f_code.co_name)
            return f"{name} ({os.path.basename(path)}:{frame.f_lineno})"
        frame = frame.f_back  # type: ignore[assignment]
    return "?"


class ExploringLoop(VirtualTimeLoop):
    """A virtual-time loop that runs one :class:`Schedule`.

    ``applied`` lists, in the order they were made, the timers this run perturbed.  Every
    method runs on the loop's thread.
    """

    def __init__(self, schedule: Schedule) -> None:
        super().__init__()
        self.schedule = schedule
        self.applied: list[Perturbation] = []
        self._task_labels: weakref.WeakKeyDictionary[asyncio.Task[Any], str] = (
            weakref.WeakKeyDictionary()
        )
        self._label_counts: dict[str, int] = {}
        self._timer_counts: dict[str, int] = {}
        self._selects = 0
        self._reversed = 0.0

    def create_task(self, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        """Create the task like asyncio does, and give it a label by creation rank."""
        task: asyncio.Task[Any] = super().create_task(coro, **kwargs)
        if task not in self._task_labels:
            self._task_labels[task] = self._new_label(_qualname(coro))
        return task

    def _new_label(self, qualname: str) -> str:
        name = qualname.rsplit(".<locals>.", 1)[
            -1
        ]  # as the spans name it: writer, not f.<locals>.writer
        n = self._label_counts[name] = self._label_counts.get(name, 0) + 1
        return f"{name}#{n}"

    def _task_label(self, task: asyncio.Task[Any] | None) -> str:
        if task is None:
            return "loop"
        label = self._task_labels.get(task)
        if label is None:  # made without create_task (asyncio.Task(...), an eager start)
            label = self._task_labels[task] = self._new_label(_qualname(task.get_coro()))
        return label

    def call_at(  # type: ignore[override]
        self,
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: Any = None,
    ) -> asyncio.TimerHandle:
        """Schedule ``callback`` at ``when``, moved and tie-ranked as the schedule says."""
        schedule = self.schedule
        now = self.time()
        if schedule.seed == 0 or when is None or when <= now:
            return super().call_at(when, callback, *args, context=context)
        label = self._task_label(asyncio.current_task(self))
        n = self._timer_counts[label] = self._timer_counts.get(label, 0) + 1
        key = f"{label}/{n}"
        if not schedule.applies(key):
            return super().call_at(when, callback, *args, context=context)
        delay = when - now
        factor, kind = 1.0, "deadline"
        if schedule.seed == REVERSED:
            # Durations exact; of the timers due at once, the one made last fires first.
            self._reversed -= 1.0
            tie, kind = self._reversed, "reversed"
        else:
            tie = schedule.unit(label, "priority")
            if not _is_deadline(callback):
                factor = 1.0 + schedule.jitter * (2.0 * schedule.unit(key, "duration") - 1.0)
                kind = "duration"
        self.applied.append(Perturbation(key, label, _program_line(), delay, factor, kind))
        self._check_closed()  # type: ignore[attr-defined]
        if self.get_debug():  # as asyncio's call_at checks in debug mode
            self._check_thread()  # type: ignore[attr-defined]
            self._check_callback(callback, "call_at")  # type: ignore[attr-defined]
        timer = _TieTimer(tie, now + delay * factor, callback, args, self, context)
        heapq.heappush(self._scheduled, timer)  # type: ignore[attr-defined]
        timer._scheduled = True  # type: ignore[attr-defined]
        return timer

    def _vt_select(
        self, select: Callable[[float | None], list[_Event]], timeout: float | None
    ) -> list[_Event]:
        events = super()._vt_select(select, timeout)
        limit = self.schedule.time_limit
        if limit is not None and self._vt_now > limit:
            msg = (
                f"asynctrace explore: the run reached t={self._vt_now:.3f} s of virtual time "
                f"without ending, past the limit of {limit:.3f} s (10 times the plain "
                "schedule's run, plus 1 s): under this schedule the program does not finish "
                "(a retry or polling loop that never succeeds?)"
            )
            raise ScheduleTimeLimit(msg)
        if len(events) > 1 and self.schedule.applies("io"):
            if not self._selects:
                self.applied.append(Perturbation("io", "loop", "select", 0.0, 1.0, "io"))
            self._selects += 1
            ranks = [self.schedule.unit(f"io{self._selects}", str(i)) for i in range(len(events))]
            events = [e for _, e in sorted(zip(ranks, events, strict=True), key=lambda p: p[0])]
        return events
