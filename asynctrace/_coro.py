"""The coroutine proxy: where an await turns into a span.

Problem: asyncio gives no hook at the moment a task suspends or resumes, and a live span object
per await would cost more than the program itself.

Solution: every task's coroutine is wrapped in a :class:`TaskRoot`, and every call of a traced
coroutine function in a :class:`CoroSpan`.  Both are registered as ``collections.abc.Coroutine``
and are driven by ``Task`` and by ``await`` exactly like the coroutine they wrap.  Each ``send``
of a ``TaskRoot`` that returns is a suspension: the root notes the time, the innermost traced
coroutine of its task (``_top``), that frame's position, and what the frame awaits.  The next
``send``/``throw`` ends the await and appends one tuple to the recorder.  Nothing else happens
per await: names, lines and attributes are resolved when the trace is built (``_build.py``).

Records are plain tuples (see ``Rec``); they MUST stay small and hold no reference to user
objects (futures, results, frames), or tracing would keep the program's data alive.

This module is the hot path: no logging, no OpenTelemetry, no dict building in ``send``.
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextvars
import time
from collections.abc import Callable, Generator
from types import CodeType, CoroutineType, TracebackType
from typing import Any

# Record kinds (first field of every record).
K_RUN, K_TASK, K_CORO, K_GATHER, K_AWAIT, K_BLOCKED, K_THREAD = range(7)

# A record: (kind, sid, parent_sid, track, start, end, end_seq, what, code, lasti, status, extra)
#   what   - task/coroutine: FnInfo or a code object; await: a code object, a float (the delay
#            of asyncio.sleep), ("task", sid), ("gather", sid) or a type name; gather: None
#   code, lasti - where: the frame of the await (await, blocked, gather), or None
#   status - None when ok, else (status, exception type name, message)
#   extra  - task: the task's name; thread: the thread's name; else None
Rec = tuple[Any, ...]


def _unbound_append(_record: Rec) -> None:
    """Stands in for the recorder's ``list.append`` while nothing is recording."""


# Bound by ``_record.Recorder.activate``; module globals so the hot path pays one lookup.
append: Callable[[Rec], None] = _unbound_append
clock: Callable[[], float] = time.perf_counter
next_id: Callable[[], int] = iter(range(1, 2**62)).__next__
blocked_threshold: float = 0.1
record_awaits: bool = True
active: bool = False
track_root: Callable[[TaskRoot], None] = lambda root: None
run_sid: int = 0

# The TaskRoot of the task running now: set in each task's own context when the task is
# created, so it is right per task and per thread at no cost per step.
current_root: contextvars.ContextVar[TaskRoot | None] = contextvars.ContextVar(
    "asynctrace_root", default=None
)
# The gather span being built while asyncio.gather creates its children.
current_gather: contextvars.ContextVar[int] = contextvars.ContextVar(
    "asynctrace_gather", default=0
)

_SLEEP_CODE = asyncio.sleep.__code__
_AENTER_CODE = asyncio.locks._ContextManagerMixin.__aenter__.__code__


class FnInfo:
    """What a traced coroutine function is: its span name, code and user attributes."""

    __slots__ = ("attributes", "code", "name")

    def __init__(self, name: str, code: CodeType, attributes: dict[str, object] | None) -> None:
        self.name = name
        self.code = code
        self.attributes = attributes


def status_of(exc: BaseException) -> tuple[str, str, str] | None:
    """The record status for a coroutine that ended by raising ``exc``."""
    if isinstance(exc, StopIteration):
        return None
    return thrown_status(type(exc), exc)


def thrown_status(cls: type[BaseException], exc: object = None) -> tuple[str, str, str]:
    """The record status for an exception of type ``cls`` (``exc`` gives the message)."""
    message = "" if exc is None else _safe_str(exc)
    if issubclass(cls, asyncio.CancelledError):
        return ("cancelled", cls.__name__, message)
    if issubclass(cls, TimeoutError):
        return ("timeout", cls.__name__, message)
    if issubclass(cls, GeneratorExit):
        return ("cancelled", cls.__name__, "coroutine closed")
    return ("error", cls.__qualname__, message)


def hide_frame(exc: BaseException) -> None:
    """Drop the proxy's own frame from ``exc``'s traceback, so tracebacks read as untraced.

    MUST be followed by a bare ``raise``: it re-raises without adding the frame back.
    """
    tb = exc.__traceback__
    if tb is not None and tb.tb_frame.f_code in _PROXY_CODES:
        exc.__traceback__ = tb.tb_next


def _safe_str(exc: object) -> str:
    try:
        return str(exc)
    except Exception:  # a user __str__ that raises MUST NOT reach the program
        return f"<{type(exc).__qualname__}: str() failed>"


def current_parent() -> tuple[int, int]:
    """(parent span id, track) for a span starting now in the running task, or the run's."""
    gather = current_gather.get()
    root = current_root.get()
    if root is None:
        return (gather or run_sid, run_sid)
    return (gather or root._top._sid, root._track)


_FORWARDED = frozenset(
    ("__name__", "__qualname__", "cr_code", "cr_frame", "cr_running", "cr_await", "cr_origin")
)


class _Proxy:
    """The layout shared by CoroSpan and TaskRoot (so a CoroSpan can become a TaskRoot)."""

    __slots__ = (
        "__weakref__",
        "_aw_code",
        "_aw_lasti",
        "_aw_parent",
        "_aw_sid",
        "_aw_t",
        "_aw_what",
        "_coro",
        "_info",
        "_name",
        "_native",
        "_outer",
        "_parent",
        "_root",
        "_sid",
        "_start",
        "_task_name",
        "_top",
        "_track",
    )

    _coro: Any
    _info: FnInfo | CodeType | None
    _native: bool
    _sid: int
    _parent: int
    _track: int
    _start: float
    _root: TaskRoot | None
    _outer: _Proxy
    _top: _Proxy
    _aw_t: float | None
    _aw_sid: int
    _aw_parent: int
    _aw_what: Any
    _aw_code: CodeType | None
    _aw_lasti: int
    _task_name: Callable[[], str] | None

    def __await__(self) -> Generator[Any, None, Any]:
        return self  # type: ignore[return-value]

    def __iter__(self) -> _Proxy:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def send(self, value: Any) -> Any:
        raise NotImplementedError

    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: BaseException | object = None,
        tb: TracebackType | None = None,
    ) -> Any:
        raise NotImplementedError

    def __getattr__(self, name: str) -> Any:
        # The wrapped coroutine's own attributes, for code that inspects a task's coroutine
        # (asyncio's Task repr and get_stack, debuggers, `python -m asyncio pstree`).
        if name in _FORWARDED:
            return getattr(self._coro, name)
        msg = f"{type(self).__name__!r} object has no attribute {name!r}"
        raise AttributeError(msg)

    def __repr__(self) -> str:
        return repr(self._coro)


class CoroSpan(_Proxy):
    """One call of a traced coroutine function, awaited inside a task.

    Called by whatever drives the coroutine: the awaiting coroutine's ``await`` (through
    ``__await__``), on the thread of the loop that runs the task.
    """

    __slots__ = ()

    def __init__(self, coro: Any, info: FnInfo) -> None:
        self._coro = coro
        self._info = info
        self._native = coro.__class__ is CoroutineType
        self._sid = 0
        self._root = None

    def _begin(self) -> None:
        root = current_root.get()
        self._sid = next_id()
        self._start = clock()
        self._root = root
        if root is None:
            self._parent, self._track = current_gather.get() or run_sid, run_sid
            return
        outer = root._top
        self._outer = outer
        self._parent = outer._sid
        self._track = root._track
        root._top = self

    def _end(self, exc: BaseException) -> None:
        if exc.__class__ is not StopIteration:
            hide_frame(exc)
        append(
            (
                K_CORO,
                self._sid,
                self._parent,
                self._track,
                self._start,
                clock(),
                next_id(),
                self._info,
                None,
                0,
                status_of(exc),
                None,
            )
        )
        root = self._root
        if root is not None:
            root._top = self._outer

    def send(self, value: Any) -> Any:
        if not self._sid:
            self._begin()
        try:
            return self._coro.send(value)
        except BaseException as exc:
            self._end(exc)
            raise

    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: BaseException | object = None,
        tb: TracebackType | None = None,
    ) -> Any:
        if not self._sid:
            self._begin()
        try:
            if val is None and tb is None:
                return self._coro.throw(typ)
            return self._coro.throw(typ, val, tb)
        except BaseException as exc:
            self._end(exc)
            raise

    def close(self) -> None:
        try:
            self._coro.close()
        finally:
            if self._sid and self._root is not None and self._root._top is self:
                self._end(GeneratorExit())


class TaskRoot(_Proxy):
    """The coroutine of one asyncio Task, wrapped; records the task and every await in it.

    Called by the Task (``send``/``throw``) on the thread of the loop that runs it.
    """

    __slots__ = ()

    def start(self, parent: int, task_name: Callable[[], str] | None) -> None:
        """Open the task span now (task creation time), under ``parent``."""
        self._sid = sid = next_id()
        self._parent = parent
        self._track = sid
        self._start = clock()
        self._root = self
        self._top = self
        self._aw_t = None
        self._task_name = task_name

    def _end(self, exc: BaseException, t: float) -> None:
        getter = self._task_name
        name = getter() if getter is not None else ""
        append(
            (
                K_TASK,
                self._sid,
                self._parent,
                self._sid,
                self._start,
                t,
                next_id(),
                self._info,
                None,
                0,
                status_of(exc),
                name,
            )
        )
        self._task_name = None

    def _resume(self, t: float, status: tuple[str, str, str] | None) -> None:
        """Close the pending await at resume time ``t``."""
        what = self._aw_what
        if what.__class__ is not CodeType and what.__class__ is not float:
            what = _reduce_awaited(what)
        append(
            (
                K_AWAIT,
                self._aw_sid,
                self._aw_parent,
                self._sid,
                self._aw_t,
                t,
                next_id(),
                what,
                self._aw_code,
                self._aw_lasti,
                status,
                None,
            )
        )
        self._aw_t = None
        self._aw_what = None

    def _suspend(self, result: Any, t0: float) -> None:
        """Note what the task now waits on (the innermost traced frame's await)."""
        t = clock()
        top = self._top
        if t - t0 > blocked_threshold:
            self._blocked(t0, t)
        if not record_awaits:
            return
        self._aw_t = t
        self._aw_sid = next_id()
        self._aw_parent = top._sid
        coro = top._coro
        if top._native:
            self._aw_code = coro.cr_code
            self._aw_lasti = coro.cr_frame.f_lasti
            awaited = coro.cr_await
            if awaited.__class__ is CoroutineType:
                what = awaited.cr_code
                if what is _SLEEP_CODE:
                    if result is not None:
                        what = float(awaited.cr_frame.f_locals["delay"])
                elif what is _AENTER_CODE:
                    inner = awaited.cr_await
                    if inner.__class__ is CoroutineType:
                        what = inner.cr_code
                self._aw_what = what
                return
        else:
            self._aw_code = None
            self._aw_lasti = 0
        self._aw_what = result

    def _blocked(self, t0: float, t: float) -> None:
        top = self._top
        coro = top._coro
        code = lasti = None
        if top._native and coro.cr_frame is not None:
            code, lasti = coro.cr_code, coro.cr_frame.f_lasti
        append(
            (K_BLOCKED, next_id(), top._sid, self._sid, t0, t, next_id(), None, code, lasti, None, None)
        )

    def send(self, value: Any) -> Any:
        t0 = clock()
        if self._aw_t is not None:
            self._resume(t0, None)
        try:
            result = self._coro.send(value)
        except BaseException as exc:
            self._finish(exc, t0)
            raise
        self._suspend(result, t0)
        return result

    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: BaseException | object = None,
        tb: TracebackType | None = None,
    ) -> Any:
        t0 = clock()
        if self._aw_t is not None:
            thrown = typ if isinstance(typ, BaseException) else val
            self._resume(t0, thrown_status(type(thrown) if thrown else typ, thrown))  # type: ignore[arg-type]
        try:
            if val is None and tb is None:
                result = self._coro.throw(typ)
            else:
                result = self._coro.throw(typ, val, tb)
        except BaseException as exc:
            self._finish(exc, t0)
            raise
        self._suspend(result, t0)
        return result

    def _finish(self, exc: BaseException, t0: float) -> None:
        if exc.__class__ is not StopIteration:
            hide_frame(exc)
        t = clock()
        if t - t0 > blocked_threshold:
            self._blocked(t0, t)
        self._end(exc, t)

    def close(self) -> None:
        try:
            self._coro.close()
        finally:
            if self._task_name is not None:
                self._end(GeneratorExit(), clock())


_PROXY_CODES = frozenset(
    getattr(cls, name).__code__ for cls in (CoroSpan, TaskRoot) for name in ("send", "throw", "close")
)
collections.abc.Coroutine.register(CoroSpan)
collections.abc.Coroutine.register(TaskRoot)


def _reduce_awaited(obj: Any) -> Any:
    """A small stand-in for an awaited future: the span it belongs to, or its type's name.

    Runs once per await on a future (not on coroutine awaits), at resume time.
    """
    if obj is None:
        return "yield"
    sid = getattr(obj, "_asynctrace_gather", 0)
    if sid:
        return ("gather", sid)
    get_coro = getattr(obj, "get_coro", None)
    if get_coro is not None:
        coro = get_coro()
        if isinstance(coro, TaskRoot):
            return ("task", coro._sid)
        return "Task"
    return type(obj).__qualname__


def wrap_task_coro(coro: Any, parent: int) -> TaskRoot:
    """Turn the coroutine a Task is about to run into its TaskRoot (adopting a CoroSpan)."""
    if coro.__class__ is CoroSpan and not coro._sid:
        coro.__class__ = TaskRoot
        root: TaskRoot = coro
    else:
        root = TaskRoot.__new__(TaskRoot)
        root._coro = coro
        root._info = getattr(coro, "cr_code", None) or type(coro).__qualname__  # type: ignore[assignment]
        root._native = coro.__class__ is CoroutineType
    root.start(parent, None)
    return root
