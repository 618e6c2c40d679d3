"""``@asynctrace.trace``: a coroutine function whose calls are ``coroutine`` spans.

Problem: the span of a call must open when the coroutine starts and close when it returns or
raises, at a cost far below the call itself, and the function must stay a coroutine function
for frameworks that ask ``inspect.iscoroutinefunction``.

Solution: the decorated function is a native ``async def`` that awaits the original coroutine,
so every ``send`` passes through it in C and its return needs no exception.  While it runs, its
:class:`~asynctrace._coro.CallSpan` is the innermost traced call of its task (the root's
``_top``).  While no recorder is active a call costs one flag check and one extra coroutine.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

from . import _coro
from ._coro import K_CORO, CallSpan, FnInfo, hide_frame, status_of

F = TypeVar("F", bound=Callable[..., Any])


def _wrap(fn: Callable[..., Any], info: FnInfo) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def traced(*args: Any, **kwargs: Any) -> Any:
        coro = fn(*args, **kwargs)
        if not _coro.active:
            return await coro
        root = _coro.current_root.get()
        span = CallSpan()
        span._coro = coro
        span._info = info
        if root is None:
            span._sid = _coro.next_id()
            span._parent = _coro.current_gather.get() or _coro.run_sid
            span._track = _coro.run_sid
        else:
            outer = root._top
            span._outer = outer
            span._track = root._track
            if outer is root and root._coro.cr_frame is sys._getframe(0):
                # This call is the task's own coroutine: the task span takes its name.
                span._sid = root._sid
                root._info = info
                root._shown = coro
            else:
                span._sid = _coro.next_id()
                span._parent = outer._sid
            root._top = span
        span._start = _coro.clock()
        try:
            result = await coro
        except BaseException as exc:
            hide_frame(exc)
            _end(span, root, status_of(exc))
            raise
        _end(span, root, None)
        return result

    traced.__asynctrace_info__ = info  # type: ignore[attr-defined]
    return traced


def _end(span: CallSpan, root: Any, status: tuple[str, str, str] | None) -> None:
    if root is not None:
        root._top = span._outer
        if span._sid == root._sid:
            return
    _coro.append(
        (
            K_CORO,
            span._sid,
            span._parent,
            span._track,
            span._start,
            _coro.clock(),
            _coro.next_id(),
            span._info,
            None,
            0,
            status,
            None,
        )
    )


def _check(fn: object) -> None:
    if inspect.iscoroutinefunction(fn):
        return
    name = getattr(fn, "__qualname__", repr(fn))
    if isinstance(fn, (classmethod, staticmethod)):
        msg = (
            f"@asynctrace.trace got {type(fn).__name__} {name!r}; put @trace below "
            f"@{type(fn).__name__}, directly on the async def"
        )
    elif inspect.isasyncgenfunction(fn):
        msg = (
            f"@asynctrace.trace got the async generator function {name!r}; async generators "
            "are not traced yet: trace the coroutines that consume it instead"
        )
    else:
        msg = (
            f"@asynctrace.trace got {name!r}, which is not an async def function; "
            "trace coroutine functions only (work sent to threads with asyncio.to_thread "
            "is traced automatically)"
        )
    raise TypeError(msg)


def is_traced(fn: object) -> bool:
    """True for a function that ``@trace`` already wrapped."""
    return hasattr(fn, "__asynctrace_info__")


@overload
def trace(fn: F, /) -> F: ...
@overload
def trace(
    *, name: str | None = None, attributes: Mapping[str, object] | None = None
) -> Callable[[F], F]: ...


def trace(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    attributes: Mapping[str, object] | None = None,
) -> Any:
    """Record each call of an ``async def`` function or method as a ``coroutine`` span.

    Use bare (``@trace``) or with options (``@trace(name="fetch", attributes={"db": "main"})``).
    The span is named ``name`` or the function's qualified name and nests under the coroutine
    or task that awaits it; a call that a task runs directly names the task's span instead.
    Outside tracing the function behaves as if undecorated.

    Raises:
        TypeError: ``fn`` is not an ``async def`` function.
    """

    def decorate(func: Callable[..., Any]) -> Any:
        _check(func)
        if is_traced(func):
            return func
        code = func.__code__
        qualified = getattr(code, "co_qualname", func.__qualname__)
        info = FnInfo(
            name or qualified.rsplit("<locals>.", 1)[-1],
            code,
            dict(attributes) if attributes else None,
        )
        return _wrap(func, info)

    if fn is None:
        return decorate
    return decorate(fn)


_coro.hidden_codes.add(_wrap(lambda: None, FnInfo("", _wrap.__code__, None)).__code__)
