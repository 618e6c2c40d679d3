"""The coroutine proxy: where an await turns into a span.

Problem: asyncio gives no hook at the moment a task suspends or resumes, and a live span object
per await would cost more than the program itself.

Solution: every task's coroutine is wrapped in a :class:`TaskRoot`, registered as a
``collections.abc.Coroutine`` and driven by the ``Task`` exactly like the coroutine it wraps.
A call of a traced coroutine function runs inside a native wrapper coroutine (``_decorator.py``)
that keeps a :class:`CallSpan` as its task root's ``_top`` while it runs; ``await`` passes
through that wrapper in C.  Each ``send`` of a ``TaskRoot`` that returns is a suspension: the
root notes the time, the innermost traced call of its task (``_top``), that frame's position,
and what the frame awaits.  The next
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
import threading
import time
import weakref
from collections.abc import Callable, Generator
from types import CodeType, CoroutineType, TracebackType
from typing import TYPE_CHECKING, Any, TypeAlias

from .._native import extension

# Record kinds (first field of every record).
K_RUN, K_TASK, K_CORO, K_GATHER, K_AWAIT, K_BLOCKED, K_THREAD, K_HELD, K_MISUSE = range(9)

# A record: (kind, sid, parent_sid, track, start, end, end_seq, what, code, lasti, status, extra)
#   what   - task/coroutine: FnInfo or a code object; await: a code object, a float (the delay
#            of asyncio.sleep), ("task", sid), ("gather", sid) or a type name; gather: None
#   code, lasti - where: gather: the calling frame's code and offset; await, blocked: None
#            and the offset in the parent span's code (-1: unknown)
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


def _untracked(root: TaskRoot) -> None:
    """Stands in for the recorder's registry of tasks while nothing is recording."""


track_root: Callable[[TaskRoot], None] = _untracked
# A task started on another thread than this one (an event loop of its own runs there) has
# its thread noted (the recorder's ``note_thread``): its row says which thread it runs on.
MAIN_THREAD: int = threading.main_thread().ident or 0
note_thread: Callable[[TaskRoot], None] = _untracked


run_sid: int = 0

# The TaskRoot of the task running now: set in each task's own context when the task is
# created, so it is right per task and per thread at no cost per step.
current_root: contextvars.ContextVar[TaskRoot | None] = contextvars.ContextVar(
    "asynctrace_root", default=None
)
# The gather span being built while asyncio.gather creates its children.
current_gather: contextvars.ContextVar[int] = contextvars.ContextVar("asynctrace_gather", default=0)

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


def call_status(exc: BaseException) -> tuple[str, str, str] | None:
    """The record status for a traced call that ended by raising ``exc``.

    ``StopAsyncIteration`` is how ``__anext__`` says an async iteration is over: the normal
    end of the call, not an error (a task ended by one is still an error: see status_of).
    """
    if isinstance(exc, StopAsyncIteration):
        return None
    return status_of(exc)


def thrown_status(cls: type[BaseException], exc: object = None) -> tuple[str, str, str]:
    """The record status for an exception of type ``cls`` (``exc`` gives the message)."""
    message = "" if exc is None else safe_str(exc)
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
    if tb is not None and tb.tb_frame.f_code in hidden_codes:
        exc.__traceback__ = tb.tb_next


def safe_str(exc: object) -> str:
    """``str(exc)``, or ``<Type: str() failed>`` when the object's ``__str__`` raises."""
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


class EndedTask:
    """An ended task root's ``_top``: its span id, for a task made later in its context.

    A running root is its own ``_top`` (a cycle); at the end it drops that link, so that the
    task, its coroutine and frames are freed by reference counting, not by the garbage
    collector's next pass (which, with thousands of ended tasks, also runs more often).
    """

    __slots__ = ("_sid",)

    def __init__(self, sid: int) -> None:
        self._sid = sid


class AdoptionMark:
    """A link in a task root's ``_top`` chain: from here, a span of the program is current.

    Pushed when the program (or an instrumentation) makes its own OpenTelemetry span current in
    a task, popped when it stops being current (``_otel_adopt.py``).  Spans that start while it
    is the innermost link get its ``_sid`` as parent, as under a traced call; at build time that
    id stands for the program's span (the parent in OpenTelemetry) and for ``_parent`` (the
    parent in the timelines).  It runs no code of its own: it carries its outer link's
    coroutine and code, in whose frame the awaits under it are.
    """

    __slots__ = ("_coro", "_info", "_native", "_outer", "_parent", "_sid")
    _coro: Any
    _info: Any

    def __init__(self, sid: int, parent: int, outer: Any) -> None:
        self._sid = sid
        self._parent = parent
        self._outer = outer
        # The frame below awaits now: the outer link's (an await under the mark is in it).
        self._coro = getattr(outer, "_coro", None)
        self._native = getattr(outer, "_native", False)
        self._info = getattr(outer, "_info", None)


# A base whose only slot is ``__qualname__``, so that a TaskRoot, like a coroutine, has one of
# its own (a class body cannot declare it: ``type()`` can).  A ``__getattr__`` forwarding it
# instead would slow every attribute load on the hot path (no LOAD_ATTR specialisation).
_QualnameSlot: type = type(
    "_QualnameSlot", (), {"__slots__": ("__qualname__",), "__module__": __name__}
)


if TYPE_CHECKING:
    from .. import _speedups
else:  # the optional C accelerator (setup.py): TaskRoot.send and traced calls in C
    _speedups = extension("_speedups")
# For _decorator, which picks its traced-call wrapper by it.
speedups = _speedups
if _speedups is not None:
    # EndedTask in C: not tracked by the garbage collector (it holds an int), so that the
    # thousands of ended tasks a program keeps for a while do not count toward collections.
    EndedTask = _speedups.EndedTask  # type: ignore[misc,assignment]

# A recorder's records: read as a list of Rec (len, index, slice, iteration, append, del).
RecordList: TypeAlias = "list[Rec] | _speedups.Records"


def new_records() -> RecordList:
    """An empty record list: with the C accelerator a ``_speedups.Records``, whose await
    records are C structs until read (no object per await: see ``_records.c``); else a list."""
    return [] if _speedups is None else _speedups.Records()


def copy_records(records: RecordList, start: int = 0, stop: int | None = None) -> RecordList:
    """``records[start:stop]`` as a record list of the same kind (a ``Records`` copy makes no
    tuple: the C span builder reads its entries)."""
    if isinstance(records, list):
        return records[start:stop]
    return records.copy(start, len(records) if stop is None else stop)


# The task roots started while recording, held weakly (to find the spans still open).
RootSet: TypeAlias = "weakref.WeakSet[TaskRoot] | _speedups.Roots"


def new_roots() -> RootSet:
    """An empty root set: with the C accelerator a ``_speedups.Roots`` (no Python code per
    task, see ``_records.c``); else a ``weakref.WeakSet``."""
    return weakref.WeakSet() if _speedups is None else _speedups.Roots()


# TaskRoot's base: its slots (and send) in C, or only the __qualname__ slot.
_Base: type = _QualnameSlot if _speedups is None else _speedups.TaskRootBase

# A TaskRoot's _aw_t before its first step (that step sets the task's start): a float that
# is recognised by identity, never compared.
_NOT_STARTED = float("-inf")


class CallSpan:
    """An open ``coroutine`` span: one running call of a traced coroutine function.

    Created by the traced function's wrapper coroutine (``_decorator.py``) when it starts, on
    the thread of the loop running its task; becomes its root's ``_top`` while it runs.
    With the C accelerator, ``_speedups.enter`` makes a ``_speedups.CallSpan`` instead: the
    same attributes (and a hidden reference to its root); this class serves the pure-Python
    path and ``record_args=True``.
    """

    __slots__ = ("_coro", "_info", "_outer", "_parent", "_sid", "_start", "_track")
    _native = True  # the wrapped function is an ``async def``: a native coroutine

    _coro: Any
    _info: FnInfo
    _outer: CallSpan | TaskRoot | AdoptionMark
    _parent: int
    _sid: int
    _start: float
    _track: int


class TaskRoot(_Base):  # type: ignore[misc]
    """The coroutine of one asyncio Task, wrapped; records the task and every await in it.

    Registered as a ``collections.abc.Coroutine`` and driven by the Task (``send``/``throw``)
    on the thread of the loop that runs it.
    """

    __slots__ = (
        ()
        if _Base is not _QualnameSlot
        else (  # TaskRootBase has them in C
            "__weakref__",
            "_aw_lasti",
            "_aw_parent",
            "_aw_sid",
            "_aw_status",
            "_aw_t",
            "_aw_what",
            "_coro",
            "_info",
            "_native",
            "_outer",
            "_parent",
            "_shown",
            "_sid",
            "_start",
            "_task_name",
            "_top",
            "_track",
        )
    )

    _coro: Any
    _info: FnInfo | CodeType | str
    _native: bool
    _sid: int
    _parent: int
    _track: int
    _start: float
    _top: CallSpan | TaskRoot | AdoptionMark  # an EndedTask once ended (only its _sid read)
    # The await the task is suspended in (_aw_t is None: none; _NOT_STARTED: before the first
    # step); appended as one tuple when the task resumes.
    _aw_t: float | None
    _aw_sid: int
    _aw_parent: int
    _aw_what: Any
    _aw_lasti: int
    _aw_status: tuple[str, str, str] | None
    _shown: Any
    _task_name: Callable[[], str] | None

    def __init__(self, coro: Any, parent: int) -> None:
        """Open the task span under ``parent``; it starts at the task's first step.

        (A task that is cancelled before it ever runs starts at its creation.)
        """
        self._coro = coro
        self._native = native = coro.__class__ is CoroutineType
        self.__qualname__ = name = coro.__qualname__ if native else coro_name(coro)
        self._info = coro.cr_code if native else name
        self._sid = sid = next_id()
        self._parent = parent
        self._track = sid
        self._start = clock()
        self._top = self
        self._aw_t = _NOT_STARTED
        self._aw_status = None
        self._task_name = None
        self._shown = None

    def __await__(self) -> Generator[Any, None, Any]:
        return self

    def __iter__(self) -> TaskRoot:
        return self

    def send(self, value: Any = None) -> Any:
        t0 = clock()
        step_top = self._top
        aw_t = self._aw_t
        if aw_t is not None:
            self._resume(aw_t, t0, self._aw_status)
        try:
            result = self._coro.send(value)
        except BaseException as exc:
            self._finish(exc, t0, step_top)
            raise
        self._suspend(result, t0, step_top)
        return result

    __next__ = send

    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: BaseException | object = None,
        tb: TracebackType | None = None,
    ) -> Any:
        t0 = clock()
        step_top = self._top
        aw_t = self._aw_t
        if aw_t is not None:
            thrown = typ if isinstance(typ, BaseException) else val
            status = self._aw_status or thrown_status(
                type(thrown) if thrown else typ,  # type: ignore[arg-type]
                thrown,
            )
            self._resume(aw_t, t0, status)
        try:
            if val is None and tb is None:
                result = self._coro.throw(typ)
            else:
                result = self._coro.throw(typ, val, tb)
        except BaseException as exc:
            self._finish(exc, t0, step_top)
            raise
        self._suspend(result, t0, step_top)
        return result

    def _resume(self, aw_t: float, t0: float, status: tuple[str, str, str] | None) -> None:
        """At ``t0`` the task resumes: its first step starts it, else its await ends."""
        if aw_t is _NOT_STARTED:
            self._start = t0
            return
        what = self._aw_what
        if what.__class__ is not CodeType and what.__class__ is not float:
            what = _reduce_awaited(what)
        # fmt: off
        append((K_AWAIT, self._aw_sid, self._aw_parent, self._sid, aw_t, t0, next_id(),
                what, None, self._aw_lasti, status, None))
        # fmt: on

    def close(self) -> None:
        try:
            self._coro.close()
        finally:
            if self._task_name is not None:
                self._end(GeneratorExit(), clock())

    def _suspend(self, result: Any, t0: float, step_top: Any) -> None:
        """Note what the task now waits on: the await of its innermost traced frame.

        The pending await lives in the ``_aw_*`` slots until the resume appends it as one
        tuple.  Its code is the parent span's (resolved at build time), so only the frame's
        offset is read here (-1: no frame to read).
        """
        t = clock()
        if t - t0 > blocked_threshold:
            self._blocked(t0, t, step_top)
        if not record_awaits:
            self._aw_t = None
            return
        top = self._top
        coro = top._coro
        self._aw_t = t
        self._aw_sid = next_id()
        self._aw_parent = top._sid
        self._aw_status = None
        self._aw_what = result
        self._aw_lasti = -1
        if top._native:
            self._aw_lasti = coro.cr_frame.f_lasti
            awaited = coro.cr_await
            if awaited.__class__ is CoroutineType:
                what = awaited.cr_code
                if what is _SLEEP_CODE:
                    if result is not None:
                        self._aw_what = float(awaited.cr_frame.f_locals["delay"])  # type: ignore[union-attr]
                        return
                elif what is _AENTER_CODE:
                    inner = awaited.cr_await
                    if inner.__class__ is CoroutineType:
                        what = inner.cr_code
                self._aw_what = what

    def _blocked(self, t0: float, t: float, top: Any) -> None:
        """A step from ``t0`` to ``t`` that held the loop: a span of ``top``, the innermost
        traced call when the step began (what runs after the block may have started since)."""
        coro = top._coro
        lasti = -1
        if top._native and coro.cr_frame is not None:
            lasti = coro.cr_frame.f_lasti
        append(
            (
                K_BLOCKED,
                next_id(),
                top._sid,
                self._sid,
                t0,
                t,
                next_id(),
                None,
                None,
                lasti,
                None,
                None,
            )
        )

    def _finish(self, exc: BaseException, t0: float, step_top: Any) -> None:
        self._aw_t = None
        if exc.__class__ is not StopIteration:
            hide_frame(exc)
        t = clock()
        if t - t0 > blocked_threshold:
            self._blocked(t0, t, step_top)
        self._end(exc, t)

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
        # Not itself any more: an ended root is freed without the garbage collector.
        self._top = EndedTask(self._sid)  # type: ignore[assignment]

    # The wrapped coroutine's own attributes, for code that inspects a task's coroutine
    # (asyncio's Task repr and get_stack, debuggers, `python -m asyncio pstree`): the
    # program's own coroutine once a traced call runs as this task's coroutine.
    @property
    def _inspected(self) -> Any:
        return self._coro if self._shown is None else self._shown

    @property
    def __name__(self) -> str:
        inspected = self._inspected
        if inspected.__class__ is CoroutineType:
            return str(inspected.__name__)
        try:
            name = getattr(inspected, "__name__", None)
        except Exception:  # a user coroutine whose __name__ raises
            name = None
        return name if isinstance(name, str) else str(self.__qualname__)

    @property
    def cr_code(self) -> Any:
        return getattr(self._inspected, "cr_code", None)

    @property
    def cr_frame(self) -> Any:
        return getattr(self._inspected, "cr_frame", None)

    @property
    def cr_await(self) -> Any:
        return getattr(self._inspected, "cr_await", None)

    @property
    def cr_running(self) -> bool:
        return bool(getattr(self._inspected, "cr_running", False))

    @property
    def cr_origin(self) -> Any:
        return getattr(self._inspected, "cr_origin", None)

    def __repr__(self) -> str:
        return repr(self._coro if self._shown is None else self._shown)


# The pure-Python __init__ and send, kept for tests of the C ones (tests/test_speedups.py).
python_init = TaskRoot.__init__
python_send = TaskRoot.send
if _speedups is not None:
    # TaskRootBase's, in C: the same, faster
    del TaskRoot.__init__, TaskRoot.send, TaskRoot.__next__

# Frames of asynctrace's own wrappers, left out of the program's tracebacks.
hidden_codes = {f.__code__ for f in (python_send, TaskRoot.throw, TaskRoot.close)}
collections.abc.Coroutine.register(TaskRoot)


TIMEOUT_EXPIRY = ("timeout", "TimeoutError", "the timeout expired")


def mark_timeout(task: Any) -> None:
    """Mark the awaits an expiring timeout cuts short as ended by it (before they are cancelled).

    That is the await ``task`` is in, and the awaits of the tasks its cancellation reaches: the
    task it awaits, a gather's children (``Task.cancel`` cancels the future the task waits on).
    So the truth is the same on every Python: ``wait_for`` on 3.11 runs a coroutine in a task
    of its own and cancels that task, from 3.12 it cancels the caller's task through
    ``asyncio.timeout``; either way the await it cut short is a ``timeout``, and a task that
    was cancelled is ``cancelled``.  Called on the loop's thread, only at an expiry.
    """
    pending = [task]
    seen: set[int] = set()
    while pending:
        future = pending.pop()
        if id(future) in seen or future.done():
            continue
        seen.add(id(future))
        get_coro = getattr(future, "get_coro", None)
        if get_coro is None:  # a gather's future: its children are cancelled with it
            pending.extend(getattr(future, "_children", ()))
            continue
        root = get_coro()
        if root.__class__ is TaskRoot:
            aw_t = root._aw_t
            if aw_t is not None and aw_t is not _NOT_STARTED:
                root._aw_status = TIMEOUT_EXPIRY
        waiter = getattr(future, "_fut_waiter", None)
        if waiter is not None:
            pending.append(waiter)


def _reduce_awaited(obj: Any) -> Any:
    """A small stand-in for an awaited future: the span it belongs to, or its type's name.

    Runs once per await on a future (not on coroutine awaits), at resume time.  MUST NOT
    raise: it runs inside the task's step, where an exception would become the program's.
    """
    if obj is None:
        return "yield"
    try:
        sid = getattr(obj, "_asynctrace_gather", 0)
        if sid.__class__ is int and sid:
            return ("gather", sid)
        get_coro = getattr(obj, "get_coro", None)
        if get_coro is not None:
            coro = get_coro()
            if isinstance(coro, TaskRoot):
                return ("task", coro._sid)
            return "Task"
    except Exception:  # a user future whose __getattr__ or get_coro raises: name its type
        pass
    return type(obj).__qualname__


def coro_name(obj: object) -> str:
    """The qualified name of a coroutine (or callable) that may lack one; never raises.

    A ``__qualname__`` or ``__name__`` that is missing, not a string, or raises falls back to
    the object's type's qualified name.
    """
    for attribute in ("__qualname__", "__name__"):
        try:
            name = getattr(obj, attribute, None)
        except Exception:  # a property that raises: try the next one
            continue
        if isinstance(name, str) and name:
            return name
    return type(obj).__qualname__


def sync_speedups() -> None:
    """Mirror the globals above into the C send; MUST follow every rebinding of them."""
    if _speedups is not None:
        _speedups.configure(append, clock, next_id, blocked_threshold, record_awaits, run_sid)


if _speedups is not None:
    _speedups.constants(
        _SLEEP_CODE,
        _AENTER_CODE,
        _NOT_STARTED,
        _reduce_awaited,
        K_AWAIT,
        CoroutineType,
        current_root,
        current_gather,
        K_CORO,
        K_TASK,
    )
    sync_speedups()
