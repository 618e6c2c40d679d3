"""``@asynctrace.trace``: a coroutine function whose calls are ``coroutine`` spans.

Problem: the span of a call must open when the coroutine starts and close when it returns or
raises, at a cost far below the call itself, and the function must stay a coroutine function
for frameworks that ask ``inspect.iscoroutinefunction``.

Solution: the decorated function is a native ``async def`` that awaits the original coroutine,
so every ``send`` passes through it in C and its return needs no exception.  While it runs, its
:class:`~asynctrace._core._coro.CallSpan` is the innermost traced call of its task (the root's
``_top``).  While no recorder is active a call costs one flag check and one extra coroutine.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Mapping
from types import CodeType, FrameType
from typing import Any, TypeVar, overload

from . import _coro
from ._coro import K_CORO, CallSpan, FnInfo, call_status, hide_frame

F = TypeVar("F", bound=Callable[..., Any])


def _wrap_c(fn: Callable[..., Any], info: FnInfo) -> Callable[..., Any]:
    """:func:`_wrap_python` with its bookkeeping in C (``_speedups.enter`` / ``leave``).

    The same records, read in the same order: tests/test_speedups.py compares the two.
    """
    speedups = _coro.speedups
    assert speedups is not None
    enter = speedups.enter
    leave = speedups.leave

    @functools.wraps(fn)
    async def traced(*args: Any, **kwargs: Any) -> Any:
        coro = fn(*args, **kwargs)
        if not _coro.active:
            return await coro
        span = enter(coro, info)
        try:
            result = await coro
        except BaseException as exc:
            hide_frame(exc)
            leave(span, call_status(exc))
            raise
        leave(span, None)
        return result

    traced.__asynctrace_info__ = info  # type: ignore[attr-defined]
    return traced


def _wrap_python(fn: Callable[..., Any], info: FnInfo) -> Callable[..., Any]:
    """The wrapper of a traced function: a native coroutine that keeps its call's span open."""

    @functools.wraps(fn)
    async def traced(*args: Any, **kwargs: Any) -> Any:
        coro = fn(*args, **kwargs)
        if not _coro.active:
            return await coro
        try:
            span, root = _begin(coro, info, sys._getframe(0))
        except BaseException:  # RecursionError at the limit: as if the call had failed
            coro.close()
            raise
        try:
            result = await coro
        except BaseException as exc:
            hide_frame(exc)
            _end(span, root, call_status(exc))
            raise
        _end(span, root, None)
        return result

    traced.__asynctrace_info__ = info  # type: ignore[attr-defined]
    return traced


# The C accelerator's wrapper when it is built (and not disabled), else the pure-Python one;
# chosen when a function is decorated.
_wrap = _wrap_python if _coro.speedups is None else _wrap_c


def _wrap_recording(fn: Callable[..., Any], info: FnInfo) -> Callable[..., Any]:
    """:func:`_wrap` that also records arguments and the return value (``record_args=True``).

    A wrapper of its own rather than a flag in ``_wrap``: the default path MUST NOT pay for
    this option.  Each call gets its own :class:`FnInfo`, whose attributes are plain strings
    made now (see ``_redact.py``), so the span never holds the program's objects.
    """
    from ._redact import REDACTED, RETURN_KEY, ArgNames, looks_secret, safe_repr

    static = info.attributes or {}
    arg_names = ArgNames(fn)
    # A function named like a secret (``get_token``) returns one: its return value is redacted.
    secret_return = looks_secret(info.name) or looks_secret(getattr(fn, "__name__", ""))

    @functools.wraps(fn)
    async def traced(*args: Any, **kwargs: Any) -> Any:
        coro = fn(*args, **kwargs)
        if not _coro.active:
            return await coro
        attrs = {**static, **arg_names.attributes(args, kwargs)}
        try:
            span, root = _begin(coro, FnInfo(info.name, info.code, attrs), sys._getframe(0))
        except BaseException:  # RecursionError at the limit: as if the call had failed
            coro.close()
            raise
        try:
            result = await coro
        except BaseException as exc:
            hide_frame(exc)
            _end(span, root, call_status(exc))
            raise
        if result is not None:
            attrs[RETURN_KEY] = REDACTED if secret_return else safe_repr(result)
        _end(span, root, None)
        return result

    traced.__asynctrace_info__ = info  # type: ignore[attr-defined]
    return traced


def _begin(coro: Any, info: FnInfo, frame: FrameType) -> tuple[CallSpan, Any]:
    """Open a call's span (pure-Python path): its id, its parent, its place in its task.

    ``frame`` is the wrapper's: when the task's own coroutine is this call, the task span takes
    its name instead of the call having a span of its own.  Returns the span and its task root.
    """
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
        if outer is root and root._native and root._coro.cr_frame is frame:
            span._sid = root._sid
            root._info = info
            root._shown = coro
        else:
            span._sid = _coro.next_id()
            span._parent = outer._sid
        root._top = span
    span._start = _coro.clock()
    return span, root


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


def span_name(fn: object, code: CodeType) -> str:
    """The default span name of ``fn`` (its code ``code``): its qualified name without the
    ``<locals>`` of the functions it is nested in."""
    qualified = getattr(code, "co_qualname", _coro.coro_name(fn))
    return str(qualified).rsplit("<locals>.", 1)[-1]


def is_traced(fn: object) -> bool:
    """True for a function that ``@trace`` already wrapped."""
    return hasattr(fn, "__asynctrace_info__")


@overload
def trace(fn: F, /) -> F: ...
@overload
def trace(
    *,
    name: str | None = None,
    attributes: Mapping[str, object] | None = None,
    record_args: bool = False,
) -> Callable[[F], F]: ...


def trace(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    attributes: Mapping[str, object] | None = None,
    record_args: bool = False,
) -> Any:
    """Record each call of an ``async def`` function or method as a ``coroutine`` span.

    Use bare (``@trace``) or with options (``@trace(name="fetch", attributes={"db": "main"})``).
    The span is named ``name`` or the function's qualified name and nests under the coroutine
    or task that awaits it; a call that a task runs directly names the task's span instead.
    Outside tracing the function behaves as if undecorated.

    Arguments and return values are not recorded, unless ``record_args=True``: then each
    argument as passed is the attribute ``asynctrace.arg.<parameter>`` (``self``/``cls`` left
    out, one attribute per ``**kwargs`` key, at most 32) and a return value other than None is
    ``asynctrace.return``, as ``repr()`` strings of at most 256 characters (``…`` marks a cut).
    A value whose parameter, keyword or ``dict`` key contains ``passw``, ``pwd``, ``secret``,
    ``token``, ``key``, ``auth``, ``credential``, ``cookie``, ``session``, ``signature``,
    ``private`` or ``bearer`` (any case) is recorded as ``[redacted]``, as is the return value
    of a function whose name does; such ``name=value`` pairs and URL user info are also
    redacted inside any ``repr``.  A ``repr`` that raises is recorded as
    ``<unrepresentable Type>``; arguments are turned into strings when the call starts.
    This costs a few microseconds per call (``inspect`` binding and ``repr``): use it where
    the values help.

    Raises:
        TypeError: ``fn`` is not an ``async def`` function.
    """

    def decorate(func: Callable[..., Any]) -> Any:
        _check(func)
        if is_traced(func):
            return func
        target = func
        while isinstance(target, functools.partial):
            target = target.func
        code = getattr(target, "__code__", None)
        if code is None:
            msg = (
                f"@asynctrace.trace got {func!r}, which has no code of its own; "
                "decorate the async def itself"
            )
            raise TypeError(msg)
        info = FnInfo(
            name or span_name(target, code),
            code,
            dict(attributes) if attributes else None,
        )
        if record_args:
            return _wrap_recording(func, info)
        return _wrap(func, info)

    if fn is None:
        return decorate
    return decorate(fn)


# The wrappers' frames are hidden from the program's tracebacks: their ``traced`` code objects,
# taken from the wrappers' constants (making a recording wrapper would import _redact now).
for _wrapper in (_wrap_c, _wrap_python, _wrap_recording):
    _coro.hidden_codes.update(c for c in _wrapper.__code__.co_consts if isinstance(c, CodeType))
