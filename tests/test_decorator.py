"""@asynctrace.trace: spans per call, names, attributes, errors; still a coroutine function."""

from __future__ import annotations

import asyncio
import inspect
import sys

import pytest

import asynctrace
from asynctrace import testing


@asynctrace.trace
async def plain(x: int) -> int:
    """Docstring kept."""
    await asyncio.sleep(1)
    return x + 1


@asynctrace.trace(name="fetch", attributes={"db": "main", "retries": 3})
async def named() -> str:
    await plain(1)
    return "ok"


class Service:
    @asynctrace.trace
    async def method(self) -> str:
        await asyncio.sleep(1)
        return "method"

    @classmethod
    @asynctrace.trace
    async def factory(cls) -> str:
        return cls.__name__

    @staticmethod
    @asynctrace.trace
    async def helper() -> int:
        return 7


def run(coro_fn, **options):  # type: ignore[no-untyped-def]
    options.setdefault("virtual_time", True)
    with asynctrace.tracing(**options) as tracing:
        result = asyncio.run(coro_fn())
    return result, tracing.trace


def test_decorated_functions_stay_coroutine_functions_with_their_metadata() -> None:
    for fn in (plain, named, Service.method, Service.factory, Service.helper):
        assert inspect.iscoroutinefunction(fn)
        if sys.version_info < (3, 14):  # deprecated from 3.14, where it is inspect's
            assert asyncio.iscoroutinefunction(fn)
    assert plain.__name__ == "plain" and plain.__doc__ == "Docstring kept."
    assert list(inspect.signature(plain).parameters) == ["x"]


def test_outside_tracing_calls_behave_as_undecorated() -> None:
    assert asyncio.run(plain(1)) == 2
    assert asyncio.run(Service().method()) == "method"
    assert asyncio.run(Service.factory()) == "Service"
    assert asyncio.run(Service.helper()) == 7


def test_each_call_is_a_span_nested_under_its_caller() -> None:
    async def main() -> str:
        return await named()

    result, trace = run(main)
    assert result == "ok"
    fetch = testing.find_span(trace, "fetch")
    assert fetch.kind == "coroutine"
    assert fetch.attributes["db"] == "main" and fetch.attributes["retries"] == 3
    assert fetch.attributes["code.function.name"] == "named"
    assert fetch.attributes["code.line.number"] == inspect.getsourcelines(named)[1]
    inner = testing.find_span(trace, "plain")
    assert inner.parent is fetch and inner.duration == 1.0
    testing.assert_tree(
        trace,
        """
        main
          fetch
            plain
              asyncio.sleep(1)
    """,
    )


def test_methods_are_named_by_their_class() -> None:
    async def main() -> list[object]:
        return [await Service().method(), await Service.factory(), await Service.helper()]

    result, trace = run(main)
    assert result == ["method", "Service", 7]
    names = [s.name for s in trace if s.kind == "coroutine"]
    assert names == ["Service.method", "Service.factory", "Service.helper"]


def test_a_call_that_a_task_runs_names_the_task_span() -> None:
    async def main() -> None:
        await asyncio.gather(plain(1), plain(2))

    _, trace = run(main)
    tasks = [s for s in trace if s.kind == "task" and s.name == "plain"]
    assert len(tasks) == 2
    assert not [s for s in trace if s.kind == "coroutine"]


def test_errors_keep_their_traceback_without_asynctrace_frames() -> None:
    @asynctrace.trace
    async def broken() -> None:
        await asyncio.sleep(0)
        raise ValueError("bad input")

    async def main() -> None:
        await broken()

    with asynctrace.tracing() as tracing, pytest.raises(ValueError) as info:
        asyncio.run(main())
    assert not [e for e in info.traceback if "asynctrace/_" in str(e.path)]
    span = testing.find_span(tracing.trace, "broken")
    assert (span.status, span.error) == ("error", "ValueError: bad input")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (lambda: None, "is not an async def function"),
        (len, "is not an async def function"),
        (classmethod(plain), "put @trace below @classmethod"),
    ],
)
def test_non_coroutines_are_rejected_with_what_to_do(target: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        asynctrace.trace(target)  # type: ignore[call-overload]


def test_async_generators_are_rejected_with_what_to_do() -> None:
    async def numbers():  # type: ignore[no-untyped-def]
        yield 1

    with pytest.raises(TypeError, match="async generator"):
        asynctrace.trace(numbers)


def test_tracing_twice_wraps_once() -> None:
    assert asynctrace.trace(plain) is plain
