"""Switching asyncio's instrumentation on and off: tasks, gather and executors.

Problem: tasks are made in many ways (``create_task``, ``ensure_future``, ``gather``,
``TaskGroup``, ``wait_for``, ``shield``, ``as_completed`` ...) and names imported early
(``from asyncio import gather``) escape module-level patches.

Solution: every asyncio task is created by a loop's ``create_task``: patch it on
``BaseEventLoop`` (every asyncio loop, however and whenever made) and install a task factory
on other loops (uvloop) when ``asyncio.new_event_loop`` or an ``asyncio.Runner`` (so
``asyncio.run`` and ``uvloop.run``) makes them.  Gather spans come from wrapping
``asyncio.gather`` (as ``asyncio.gather`` and ``asyncio.tasks.gather``); thread jobs from
wrapping ``BaseEventLoop.run_in_executor``, which ``asyncio.to_thread`` uses.

Patches are installed once per process and stay as thin pass-throughs while no recorder is
active (``_coro.active``), so uninstrumenting never races with a loop in another thread.
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import asyncio.events
import asyncio.tasks
import asyncio.threads
import contextlib
import contextvars
import functools
import sys
import threading
import weakref
from collections.abc import Callable
from types import CoroutineType
from typing import Any

from . import _coro, _held, _misuse
from ._coro import K_GATHER, K_THREAD, TaskRoot, current_parent, status_of

_BaseEventLoop = asyncio.base_events.BaseEventLoop
_orig_create_task = _BaseEventLoop.create_task
_orig_run_in_executor = _BaseEventLoop.run_in_executor
_orig_gather = asyncio.tasks.gather
_orig_to_thread = asyncio.threads.to_thread
_orig_cancel_and_wait: Any = asyncio.tasks._cancel_and_wait  # type: ignore[attr-defined]
_orig_new_event_loop = asyncio.events.new_event_loop
_Runner: Any = getattr(asyncio, "Runner", None)  # Python 3.11+
_orig_lazy_init: Any = _Runner._lazy_init if _Runner is not None else None
_Timeout: Any = getattr(getattr(asyncio, "timeouts", None), "Timeout", None)  # Python 3.11+
_orig_on_timeout: Any = _Timeout._on_timeout if _Timeout is not None else None
_installed = False
# The event loops' own housekeeping at the end of asyncio.run: not the program's tasks.
_HOUSEKEEPING = frozenset(("shutdown_asyncgens", "shutdown_default_executor"))
# Open gather spans by id -> record prefix, for spans still open when the trace is built.
open_gathers: dict[int, tuple[Any, ...]] = {}
# With OpenTelemetry on (_otel_adopt.Adopter.task_made): told of each task before it is made,
# in the creating context; returns what to call once it is made, or None.
task_made: Callable[[TaskRoot], Callable[[], None] | None] | None = None
# Tasks that ended inside their creation (eager tasks) -> their span: a gather names them.
eager_ended: weakref.WeakKeyDictionary[asyncio.Task[Any], int] = weakref.WeakKeyDictionary()


def _start_task(
    coro: Any, kwargs: dict[str, Any], create: Callable[..., asyncio.Task[Any]], *leading: Any
) -> asyncio.Task[Any]:
    """Wrap ``coro`` in a TaskRoot and make its task with ``create(*leading, root, **kwargs)``.

    Runs for every task (``_speedups.start_task`` is the same in C, which calls this one while
    OpenTelemetry's ``task_made`` hook is on).
    """
    parent, _track = current_parent()
    root = TaskRoot(coro, parent)
    _coro.track_root(root)
    if threading.get_ident() != _coro.MAIN_THREAD:
        _coro.note_thread(root)
    made = None if task_made is None else task_made(root)
    try:
        # An eager task (Python 3.12+ eager_task_factory) runs its first step inside its
        # creation and may end there, before `task` exists (and, up to 3.13, before its name
        # is set).
        name = kwargs.get("name")
        root._task_name = _eager_task_name if name is None else functools.partial(str, name)
        # The task's context MUST carry its own root and no gather (a gather being built is
        # the parent of the tasks it creates, not of what runs inside them).  Without a
        # context, the copy the Task would make is made here and set, rather than the current
        # context set and reset around the Task's copy: half the context changes.  A given
        # context (Runner shares one across runs) is set as it is.
        context = kwargs.get("context")
        if context is None:
            context = kwargs["context"] = contextvars.copy_context()
        context.run(_coro.current_root.set, root)
        if context.get(_coro.current_gather):
            context.run(_coro.current_gather.set, 0)
        task = create(*leading, root, **kwargs)
        if root._task_name is not None:
            root._task_name = task.get_name
        else:  # it ended eagerly, its record written; a done task may forget its coroutine
            eager_ended[task] = root._sid
        return task
    finally:
        if made is not None:
            made()


# What makes every task: _start_task, or the same in C.
start_task: Callable[..., asyncio.Task[Any]] = _start_task


def _eager_task_name() -> str:
    """The name of a task while it is being created: the current task's.  Another thread
    reading it then (the flusher naming rows) has no running loop, and gets ""."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running event loop in this thread
        return ""
    return "" if task is None else task.get_name()


if _coro.speedups is not None:
    _coro.speedups.task_constants(
        TaskRoot, _start_task, _eager_task_name, eager_ended, vars(_coro), globals()
    )
    start_task = _coro.speedups.start_task


def _unwatched(coro: Any) -> bool:
    """True for what gets no task span: already wrapped, or the loop's own housekeeping."""
    if coro.__class__ is TaskRoot:
        return True
    try:
        return getattr(coro, "__name__", None) in _HOUSEKEEPING
    except Exception:  # a user coroutine whose __name__ raises, or is not hashable
        return False


def _create_task(self: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
    if _coro.active and (
        coro.__name__ not in _HOUSEKEEPING  # a native coroutine's name is a str
        if coro.__class__ is CoroutineType
        else asyncio.iscoroutine(coro) and not _unwatched(coro)
    ):
        return start_task(coro, kwargs, _orig_create_task, self)
    return _orig_create_task(self, coro, **kwargs)  # type: ignore[arg-type]


def _task_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
    """The task factory installed on loops that are not asyncio's own (uvloop)."""
    if not _coro.active or _unwatched(coro):
        return _OrigTask(coro, loop=loop, **kwargs)  # type: ignore[no-any-return]
    kwargs["loop"] = loop
    return start_task(coro, kwargs, _OrigTask)


_OrigTask: Any = asyncio.Task


class _TaskType(type):
    """asyncio.Task's stand-in is asyncio's Task to isinstance() and issubclass() alike."""

    def __instancecheck__(cls, obj: object) -> bool:
        return isinstance(obj, _OrigTask)

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, _OrigTask)


class Task(_OrigTask, metaclass=_TaskType):  # type: ignore[misc]
    """``asyncio.Task`` while installed: a task made by calling it directly is seen too.

    aiohttp's server (on Python 3.12 and 3.13) makes its connection and request tasks with
    ``asyncio.Task(coro, loop=loop, eager_start=True)``: no ``create_task``, no task factory.
    ``loop.create_task`` still makes asyncio's own Task (``asyncio.tasks.Task``), which keeps
    the C fast paths that only an exact Task takes.
    """

    __slots__ = ()

    def __init__(self, coro: Any, *, loop: Any = None, **kwargs: Any) -> None:
        if not _coro.active or not asyncio.iscoroutine(coro) or _unwatched(coro):
            super().__init__(coro, loop=loop, **kwargs)
            return

        def create(root: Any, **kwargs: Any) -> asyncio.Task[Any]:
            _OrigTask.__init__(self, root, loop=loop, **kwargs)
            return self

        start_task(coro, kwargs, create)


Task.__module__ = _OrigTask.__module__
Task.__qualname__ = _OrigTask.__qualname__


def watch_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Make sure tasks of ``loop`` are seen (a task factory where create_task is not patched)."""
    if not isinstance(loop, _BaseEventLoop) and loop.get_task_factory() is None:
        loop.set_task_factory(_task_factory)


def _new_event_loop() -> asyncio.AbstractEventLoop:
    loop = _orig_new_event_loop()
    watch_loop(loop)
    return loop


def _lazy_init(self: Any) -> None:
    """``asyncio.Runner`` made its loop (with a ``loop_factory`` too, as ``uvloop.run`` does)."""
    _orig_lazy_init(self)
    watch_loop(self._loop)


def _gather(*aws: Any, return_exceptions: bool = False) -> asyncio.Future[Any]:
    if not _coro.active:
        return _orig_gather(*aws, return_exceptions=return_exceptions)
    parent, track = current_parent()
    sid = _coro.next_id()
    start = _coro.clock()
    caller = sys._getframe(1)
    token = _coro.current_gather.set(sid)
    try:
        future = _orig_gather(*aws, return_exceptions=return_exceptions)
    finally:
        _coro.current_gather.reset(token)
    children = tuple(_child_sid(child) for child in getattr(future, "_children", ()))
    prefix = (K_GATHER, sid, parent, track, start)
    suffix = (children, caller.f_code, caller.f_lasti)
    with contextlib.suppress(AttributeError):  # gather() of nothing returns a plain Future
        future._asynctrace_gather = sid  # type: ignore[attr-defined]
    open_gathers[sid] = (*prefix, None, None, *suffix)
    future.add_done_callback(functools.partial(_gather_done, prefix, suffix))
    return future


def _child_sid(child: Any) -> int:
    """The task span of a gather's child (0 for a plain future); never raises."""
    try:
        coro = child.get_coro()
        if coro is None:  # a task that ended eagerly (Python 3.12+)
            return eager_ended.get(child, 0)
    except Exception:  # a future, or a user future whose __getattr__ raises
        return 0
    sid: int = coro._sid if coro.__class__ is TaskRoot else 0
    return sid


def _gather_done(
    prefix: tuple[Any, ...], suffix: tuple[Any, ...], future: asyncio.Future[Any]
) -> None:
    """Close a gather span; called on the loop thread when the gather's future is done."""
    open_gathers.pop(prefix[1], None)
    if future.cancelled():
        status: tuple[str, str, str] | None = ("cancelled", "CancelledError", "")
    else:
        exc = future.exception()
        status = None if exc is None else status_of(exc)
    _coro.append((*prefix, _coro.clock(), _coro.next_id(), *suffix, status, None))


class _ThreadJob:
    """A function sent to an executor, recorded as a ``thread`` span on its own track.

    Made on the loop's thread, called in the worker thread; appends its record there
    (list.append is atomic).  It reads the clock of the loop that sent it: under virtual time
    with loops in several threads, each loop has a clock of its own.
    """

    __slots__ = ("_clock", "_fn", "_name", "_parent", "_sid")

    def __init__(self, fn: Callable[..., Any], parent: int) -> None:
        self._fn = fn
        self._parent = parent
        # Its id is taken at submission, before the await on it: the build names an
        # `await asyncio.to_thread(fn)` after the last job its caller submitted before it.
        self._sid = _coro.next_id()
        self._name = callable_name(fn)
        clock = _coro.clock
        pinned = getattr(clock, "pinned", None)  # _virtual.LoopClocks
        self._clock: Callable[[], float] = clock if pinned is None else pinned()

    def __call__(self, *args: Any) -> Any:
        clock = self._clock
        sid = self._sid
        start = clock()
        status = None
        try:
            return self._fn(*args)
        except BaseException as exc:
            status = status_of(exc)
            raise
        finally:
            _coro.append(
                (
                    K_THREAD,
                    sid,
                    self._parent,
                    sid,
                    start,
                    clock(),
                    _coro.next_id(),
                    self._name,
                    None,
                    0,
                    status,
                    threading.current_thread().name,
                )
            )


def callable_name(fn: Any) -> str:
    """The qualified name of a function, seen through partials and ``Context.run``.

    Never raises: a callable without a usable name is named after its type.
    """
    while isinstance(fn, functools.partial):
        if isinstance(getattr(fn.func, "__self__", None), contextvars.Context) and fn.args:
            fn = fn.args[0]  # asyncio.to_thread: partial(context.run, func, *args)
        else:
            fn = fn.func
    return _coro.coro_name(fn)


def _on_timeout(self: Any) -> None:
    """``asyncio.timeout`` (and ``wait_for`` from 3.12) expired: its await ends in a timeout."""
    if _coro.active and getattr(self, "_task", None) is not None:
        _coro.mark_timeout(self._task)
    _orig_on_timeout(self)


def _cancel_and_wait(future: Any, *args: Any, **kwargs: Any) -> Any:
    """``wait_for`` cancels what it waited for: on an expiry, its awaits end in a timeout.

    ``asyncio.wait_for`` calls it (a module global, looked up at each call) when its timeout
    expired, and on Python 3.11 also when the caller was cancelled: then wait_for's ``waiter``
    future was cancelled rather than released by the timer.
    """
    if _coro.active:
        waiter = sys._getframe(1).f_locals.get("waiter")
        if waiter is None or (waiter.done() and not waiter.cancelled()):
            _coro.mark_timeout(future)
    return _orig_cancel_and_wait(future, *args, **kwargs)


def _run_in_executor(
    self: asyncio.AbstractEventLoop, executor: Any, func: Callable[..., Any], *args: Any
) -> asyncio.Future[Any]:
    if _coro.active:
        func = _ThreadJob(func, current_parent()[0])
    return _orig_run_in_executor(self, executor, func, *args)  # type: ignore[arg-type]


async def _to_thread(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``asyncio.to_thread`` with a thread span on loops whose run_in_executor is not patched."""
    if _coro.active and not isinstance(asyncio.get_running_loop(), _BaseEventLoop):
        func = _ThreadJob(func, current_parent()[0])
    return await _orig_to_thread(func, *args, **kwargs)


# What awaiting asynctrace's own wrappers waits on, named as the program called it.
TO_THREAD_CODE = _to_thread.__code__
PUBLIC_NAMES = {TO_THREAD_CODE: "asyncio.to_thread", **_held.PUBLIC_NAMES}
# A task whose coroutine is one of the wrappers (``create_task(asyncio.to_thread(f))``) is named
# and placed by the asyncio function it stands in for: ``to_thread()`` in asyncio/threads.py.
STANDS_IN_FOR = {TO_THREAD_CODE: _orig_to_thread.__code__, **_held.STANDS_IN_FOR}


def install() -> None:
    """Install the pass-through patches (idempotent): they record only while a recorder is on."""
    global _installed
    if _installed:
        return
    _installed = True
    _BaseEventLoop.create_task = _create_task  # type: ignore[method-assign]
    asyncio.Task = Task  # type: ignore[misc]
    _held.install()
    _misuse.install()
    _BaseEventLoop.run_in_executor = _run_in_executor  # type: ignore[method-assign,assignment]
    asyncio.events.new_event_loop = asyncio.new_event_loop = _new_event_loop
    if _Runner is not None:
        _Runner._lazy_init = _lazy_init
    functools.update_wrapper(_gather, _orig_gather)
    asyncio.gather = asyncio.tasks.gather = _gather
    functools.update_wrapper(_to_thread, _orig_to_thread)  # type: ignore[arg-type]
    asyncio.to_thread = asyncio.threads.to_thread = _to_thread
    if _Timeout is not None:
        _Timeout._on_timeout = _on_timeout
    asyncio.tasks._cancel_and_wait = _cancel_and_wait  # type: ignore[attr-defined]
    with contextlib.suppress(RuntimeError):  # no running loop: later loops are watched when made
        watch_loop(asyncio.get_running_loop())


def uninstall() -> None:
    """Put asyncio back as it was."""
    global _installed
    if not _installed:
        return
    _installed = False
    _BaseEventLoop.create_task = _orig_create_task  # type: ignore[method-assign]
    asyncio.Task = _OrigTask  # type: ignore[misc]
    _held.uninstall()
    _misuse.uninstall()
    _BaseEventLoop.run_in_executor = _orig_run_in_executor  # type: ignore[method-assign]
    asyncio.events.new_event_loop = asyncio.new_event_loop = _orig_new_event_loop
    if _Runner is not None:
        _Runner._lazy_init = _orig_lazy_init
    asyncio.gather = asyncio.tasks.gather = _orig_gather
    asyncio.to_thread = asyncio.threads.to_thread = _orig_to_thread
    if _Timeout is not None:
        _Timeout._on_timeout = _orig_on_timeout
    asyncio.tasks._cancel_and_wait = _orig_cancel_and_wait  # type: ignore[attr-defined]
