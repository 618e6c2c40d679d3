"""``@asynctrace.trace``: a coroutine function whose calls are ``coroutine`` spans.

Problem: a wrapper function that returns a proxy is not a coroutine function to
``inspect.iscoroutinefunction`` on Python < 3.12, and frameworks (pytest-asyncio, web
frameworks) decide how to call a function by asking exactly that.

Solution: :class:`TracedFunction` is a callable object that carries the wrapped function's
``__code__``, defaults and annotations, so ``inspect`` sees a coroutine function on every
supported Python; binding as a method goes through ``__get__``.  While no recorder is active a
call costs one attribute check and returns the plain coroutine.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from types import MethodType
from typing import Any, TypeVar, overload

from . import _coro
from ._coro import CoroSpan, FnInfo

F = TypeVar("F", bound=Callable[..., Any])


class TracedFunction:
    """A traced ``async def`` function or method (what ``@trace`` returns)."""

    def __init__(self, fn: Callable[..., Any], info: FnInfo) -> None:
        functools.update_wrapper(self, fn)
        self.__code__ = fn.__code__
        self.__defaults__ = fn.__defaults__  # type: ignore[attr-defined]
        self.__kwdefaults__ = fn.__kwdefaults__  # type: ignore[attr-defined]
        self._fn = fn
        self._info = info

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        coro = self._fn(*args, **kwargs)
        if not _coro.active:
            return coro
        return CoroSpan(coro, self._info)

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return MethodType(self, instance)

    def __repr__(self) -> str:
        return f"<traced {self._fn!r}>"


def _check(fn: object) -> None:
    if inspect.iscoroutinefunction(fn):
        return
    name = getattr(fn, "__qualname__", repr(fn))
    if isinstance(fn, (classmethod, staticmethod)):
        msg = (f"@asynctrace.trace got {type(fn).__name__} {name!r}; put @trace below "
               f"@{type(fn).__name__}, directly on the async def")
    elif inspect.isasyncgenfunction(fn):
        msg = (f"@asynctrace.trace got the async generator function {name!r}; async generators "
               "are not traced yet: trace the coroutines that consume it instead")
    else:
        msg = (f"@asynctrace.trace got {name!r}, which is not an async def function; "
               "trace coroutine functions only (for threads, use asyncio.to_thread, which is "
               "traced automatically)")
    raise TypeError(msg)


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
    or task that awaits it.  Outside tracing the function behaves as if undecorated.

    Raises:
        TypeError: ``fn`` is not an ``async def`` function.
    """

    def decorate(func: Callable[..., Any]) -> Any:
        _check(func)
        if isinstance(func, TracedFunction):
            return func
        code = func.__code__
        info = FnInfo(name or getattr(code, "co_qualname", func.__qualname__), code,
                      dict(attributes) if attributes else None)
        return TracedFunction(func, info)

    if fn is None:
        return decorate
    return decorate(fn)
