"""Tasks that existed before recording started: their awaits, from then on (Python 3.12+).

Problem: ``asynctrace attach`` starts recording in a program that is already running.  The
tasks it made before have their coroutines in asyncio's Task, unwrapped, and a C Task's
coroutine cannot be swapped for a :class:`~asynctrace._core._coro.TaskRoot`.

Solution: :class:`Adopter` gives each such task a task span that starts at the attach time
and the await it is in then (read from the interpreter's own call graph: the coroutine's
``cr_await`` and the future the task waits on; ``asyncio.capture_call_graph`` names the task
that awaits it, its parent).  From then on ``sys.monitoring`` reports ``PY_RESUME`` and
``PY_YIELD`` of those tasks' outermost coroutines only (local events on their code objects):
a yield of the outermost frame is the task's suspension, a resume its next step.  These
become the same records a TaskRoot appends, so the build names them alike.  A done callback
ends the task span.  :meth:`Adopter.stop` frees the monitoring tool and removes the
callbacks, so nothing of it is left to cost the program anything.

Called on the event loop's thread only (the monitoring callbacks run there too, inside the
tasks' steps: they MUST NOT raise).
"""

from __future__ import annotations

import asyncio
import functools
import sys
from types import CodeType, CoroutineType, FrameType
from typing import Any

from .._core import _coro
from .._core._coro import K_AWAIT, K_BLOCKED, K_GATHER, K_TASK, Rec

_SLEEP_CODE = asyncio.sleep.__code__
_AENTER_CODE = asyncio.locks._ContextManagerMixin.__aenter__.__code__
UNFINISHED = ("unfinished", "", "")
# sys.monitoring (3.12+; attach needs 3.14): looked up once, and typed loosely for mypy's 3.11
_monitoring: Any = getattr(sys, "monitoring", None)
_UNKNOWN: Any = object()
_SLEEP: Any = object()  # an asyncio.sleep: its delay is read at each


def awaited(coro: Any, waiter: Any, tasks: dict[Any, int]) -> Any:
    """What a coroutine suspended in ``await`` waits on, as a record's ``what``.

    The coroutine it awaits (its code; ``asyncio.sleep``: the delay), else the future
    ``waiter`` it waits on: an adopted task (``("task", sid)``) or the future's type's name.
    """
    inner = coro.cr_await
    if inner.__class__ is CoroutineType:
        code = inner.cr_code
        if code is _SLEEP_CODE and inner.cr_frame is not None:
            delay = inner.cr_frame.f_locals.get("delay")
            if isinstance(delay, int | float):
                return float(delay)
        if code is _AENTER_CODE and inner.cr_await.__class__ is CoroutineType:
            code = inner.cr_await.cr_code
        return code
    return awaited_future(waiter, tasks)


def awaited_future(future: Any, tasks: dict[Any, int]) -> Any:
    """A future awaited, as a record's ``what``: an adopted task, else as a TaskRoot names it.

    Raises what hashing a user's future raises (the caller catches it).
    """
    sid = tasks.get(future) if future is not None else None
    if sid is not None:
        return ("task", sid)
    return _coro._reduce_awaited(future)


class _Adopted:
    """One task that existed at attach: its span, its step and its pending await."""

    __slots__ = (
        "aw_lasti", "aw_sid", "aw_t", "aw_what", "code", "frame", "parent", "sid", "start", "step"
    )  # fmt: skip

    def __init__(self, sid: int, frame: FrameType, start: float) -> None:
        self.sid = sid
        self.frame = frame
        self.code = frame.f_code
        self.parent = 0
        self.start = start
        self.step: float | None = None  # start of the step running now
        self.aw_t: float | None = None
        self.aw_sid = 0
        self.aw_what: Any = None
        self.aw_lasti = -1

    def await_record(self, end: float, status: tuple[str, str, str] | None) -> Rec:
        # fmt: off
        return (K_AWAIT, self.aw_sid, self.sid, self.sid, self.aw_t, end, _coro.next_id(),
                self.aw_what, None, self.aw_lasti, status, None)
        # fmt: on

    def task_record(self, end: float, status: tuple[str, str, str] | None, name: str) -> Rec:
        # fmt: off
        return (K_TASK, self.sid, self.parent, self.sid, self.start, end, _coro.next_id(),
                self.code, None, 0, status, name)
        # fmt: on


def _free_tool() -> int | None:
    """A ``sys.monitoring`` tool id nobody uses (the profiler's first), or None."""
    monitoring = _monitoring
    for tool in (monitoring.PROFILER_ID, 3, 4):
        if monitoring.get_tool(tool) is None:
            return tool
    return None


class Adopter:
    """Records the tasks of ``loop`` that exist when :meth:`start` is called.

    Args:
        loop: the running event loop (start and stop are called on its thread).
        blocked_threshold: a step longer than this many seconds is a ``blocked`` span.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, blocked_threshold: float) -> None:
        self.loop = loop
        self.blocked_threshold = blocked_threshold
        self.tool: int | None = None
        self.tasks: dict[asyncio.Task[Any], _Adopted] = {}
        self._frames: dict[FrameType, tuple[asyncio.Task[Any], _Adopted]] = {}
        self._codes: set[CodeType] = set()
        self._sids: dict[Any, int] = {}
        # Gathers awaited at attach -> (record prefix, suffix, their done callback).
        self._gathers: dict[asyncio.Future[Any], tuple[Any, ...]] = {}
        # What the await at (outermost code, offset) waits on: a code object, _SLEEP, or None
        # for a future (read once per place, as it shows only while the task is suspended).
        self._sites: dict[tuple[CodeType, int], Any] = {}

    def start(self) -> int:
        """Adopt the loop's pending tasks; returns how many (0 when no monitoring tool is free:
        then tasks made from now on are still recorded)."""
        self.tool = _free_tool()
        if self.tool is None:
            return 0
        now = _coro.clock()
        frames: dict[asyncio.Task[Any], FrameType] = {}
        for task in asyncio.all_tasks(self.loop):
            coro = task.get_coro()
            frame = getattr(coro, "cr_frame", None)
            if coro.__class__ is CoroutineType and frame is not None:
                frames[task] = frame  # else ours already (a TaskRoot), or generator-based
        awaiting = {task: _awaiting(task, frames) for task in frames}
        # Ids in the order of the await graph (a task before those it awaits, a gather between):
        # a parent's id MUST be the lower one (readers order spans that start together by id).
        gathers: dict[asyncio.Future[Any], tuple[int, _Adopted]] = {}
        in_gather: dict[Any, int] = {}
        for task in sorted(frames, key=lambda t: _depth(t, awaiting)):
            adopted = _Adopted(_coro.next_id(), frames[task], now)
            self.tasks[task] = adopted
            self._frames[adopted.frame] = (task, adopted)
            self._codes.add(adopted.code)
            self._sids[task] = adopted.sid
            waiter = getattr(task, "_fut_waiter", None)
            children = getattr(waiter, "_children", None)
            if waiter is not None and isinstance(children, list) and not waiter.done():
                gathers[waiter] = (_coro.next_id(), adopted)
                in_gather.update((child, gathers[waiter][0]) for child in children)
        for task, adopted in self.tasks.items():
            above = awaiting[task]
            adopted.parent = in_gather.get(task) or self._sids.get(above) or _coro.run_sid
            adopted.aw_t = now
            adopted.aw_sid = _coro.next_id()
            adopted.aw_lasti = adopted.frame.f_lasti
            try:
                waiter = getattr(task, "_fut_waiter", None)
                adopted.aw_what = awaited(task.get_coro(), waiter, self._sids)
            except Exception:  # a user future that cannot be hashed or named: say "Future"
                adopted.aw_what = "Future"
            task.add_done_callback(self._done)
        for waiter, (sid, adopted) in gathers.items():
            self._open_gather(waiter, sid, adopted)
        monitoring = _monitoring
        events = monitoring.events
        monitoring.use_tool_id(self.tool, "asynctrace attach")
        monitoring.register_callback(self.tool, events.PY_RESUME, self._resumed)
        monitoring.register_callback(self.tool, events.PY_YIELD, self._yielded)
        for code in self._codes:
            monitoring.set_local_events(self.tool, code, events.PY_RESUME | events.PY_YIELD)
        return len(self.tasks)

    def _open_gather(self, waiter: asyncio.Future[Any], sid: int, adopted: _Adopted) -> None:
        """A gather that a task awaits at attach: a span from now, its children under it."""
        children = getattr(waiter, "_children", ())
        child_sids = tuple(self._sids.get(child, 0) for child in children)
        frame = adopted.frame
        prefix = (K_GATHER, sid, adopted.sid, adopted.sid, adopted.aw_t)
        suffix = (child_sids, frame.f_code, frame.f_lasti)
        ended = functools.partial(self._gather_done, prefix, suffix)
        self._gathers[waiter] = (prefix, suffix, ended)
        waiter.add_done_callback(ended)
        adopted.aw_what = ("gather", sid)

    def _gather_done(
        self, prefix: tuple[Any, ...], suffix: tuple[Any, ...], future: asyncio.Future[Any]
    ) -> None:
        if self._gathers.pop(future, None) is not None:
            _coro.append((*prefix, _coro.clock(), _coro.next_id(), *suffix, _ended(future), None))

    def _resumed(self, code: CodeType, offset: int) -> None:
        found = self._frames.get(sys._getframe(1))
        if found is None:  # another coroutine of the same function: a task made later
            return
        adopted = found[1]
        now = _coro.clock()
        adopted.step = now
        if adopted.aw_t is not None:
            _coro.append(adopted.await_record(now, None))
            adopted.aw_t = None

    def _yielded(self, code: CodeType, offset: int, value: Any) -> None:
        frame = sys._getframe(1)
        found = self._frames.get(frame)
        if found is None:
            return
        task, adopted = found
        now = _coro.clock()
        step = adopted.step
        lasti = frame.f_lasti
        if step is not None and now - step > self.blocked_threshold:
            # fmt: off
            _coro.append((K_BLOCKED, _coro.next_id(), adopted.sid, adopted.sid, step, now,
                          _coro.next_id(), None, None, lasti, None, None))
            # fmt: on
        adopted.step = None
        if adopted.aw_t is not None:  # resumed by a throw (no PY_RESUME): it ended at this step
            _coro.append(adopted.await_record(step or now, None))
        adopted.aw_t = now
        adopted.aw_sid = sid = _coro.next_id()
        adopted.aw_lasti = lasti
        site = self._sites.get((code, lasti), _UNKNOWN)
        if site.__class__ is CodeType:
            adopted.aw_what = site
            return
        try:
            adopted.aw_what = awaited_future(value, self._sids)
            if site is _UNKNOWN or site is _SLEEP:
                # The coroutine awaited shows only once the task is suspended: look once (a
                # sleep's delay: at each sleep).
                self._sites[(code, lasti)] = site if site is _SLEEP else None
                self.loop.call_soon(self._learn, task, adopted, sid, (code, lasti), value)
        except Exception:  # MUST NOT reach the task: name it by the yielded value's type
            adopted.aw_what = type(value).__qualname__

    def _learn(
        self,
        task: asyncio.Task[Any],
        adopted: _Adopted,
        sid: int,
        site: tuple[CodeType, int],
        value: Any,
    ) -> None:
        """What the await at ``site`` waits on, read once the task is suspended in it."""
        if adopted.aw_sid != sid or adopted.aw_t is None or task.done():
            if self._sites.get(site) is None:  # it moved on already: learn at its next await
                self._sites.pop(site, None)
            return
        what = awaited(task.get_coro(), value, self._sids)
        if what.__class__ is float:
            adopted.aw_what = what
            self._sites[site] = _SLEEP
        elif what.__class__ is CodeType:
            adopted.aw_what = self._sites[site] = what

    def _done(self, task: asyncio.Task[Any]) -> None:
        """A task adopted ended (a done callback, on the loop's thread)."""
        adopted = self.tasks.pop(task, None)
        if adopted is None:
            return
        now = _coro.clock()
        status = _ended(task)
        if adopted.aw_t is not None:
            _coro.append(adopted.await_record(now, status))
        _coro.append(adopted.task_record(now, status, task.get_name()))
        self._frames.pop(adopted.frame, None)

    def stop(self) -> list[Rec]:
        """Stop recording: the records of the tasks still pending (unfinished), and nothing of
        the adopter left in the program (monitoring tool freed, done callbacks removed)."""
        if self.tool is not None:
            _monitoring.clear_tool_id(self.tool)
            _monitoring.free_tool_id(self.tool)
            self.tool = None
        now = _coro.clock()
        records: list[Rec] = []
        for task, adopted in self.tasks.items():
            task.remove_done_callback(self._done)
            if adopted.aw_t is not None:
                records.append(adopted.await_record(now, UNFINISHED))
            records.append(adopted.task_record(now, UNFINISHED, task.get_name()))
        for future, (prefix, suffix, ended) in self._gathers.items():
            future.remove_done_callback(ended)
            records.append((*prefix, now, _coro.next_id(), *suffix, UNFINISHED, None))
        self._gathers.clear()
        self.tasks.clear()
        self._frames.clear()
        self._codes.clear()
        self._sids = {}
        self._sites.clear()
        return records


def _awaiting(task: asyncio.Task[Any], tasks: dict[asyncio.Task[Any], Any]) -> Any:
    """The task among ``tasks`` that awaits ``task`` (from asyncio's call graph), or None."""
    try:
        graph = asyncio.capture_call_graph(task, depth=1)  # type: ignore[attr-defined]
    except Exception:  # MUST NOT fail the attach: the run is a parent too
        return None
    for above in getattr(graph, "awaited_by", ()):
        if above.future in tasks:
            return above.future
    return None


def _depth(task: Any, awaiting: dict[Any, Any]) -> int:
    """How many tasks await ``task``, one above the other (a cycle counts once round)."""
    depth = 0
    seen = {task}
    while (task := awaiting.get(task)) is not None and task not in seen:
        seen.add(task)
        depth += 1
    return depth


def _ended(task: asyncio.Future[Any]) -> tuple[str, str, str] | None:
    """How a done task or future ended, read without marking its exception as retrieved
    (asyncio would then not log an exception the program never retrieved)."""
    if task.cancelled():
        return ("cancelled", "CancelledError", "")
    exc = getattr(task, "_exception", None)
    return None if exc is None else _coro.status_of(exc)
