"""Await spans: what each await waited on, where, for how long, and with which status."""

from __future__ import annotations

import asyncio
import gc
import inspect
import sys
import time
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

import asynctrace
from asynctrace import testing
from asynctrace._model._spans import Span, Trace


def traced_run(main: Callable[[], Coroutine[Any, Any, Any]], **options: Any) -> Trace:
    """Run ``main`` with asyncio.run on virtual time while tracing; its trace."""
    options.setdefault("virtual_time", True)
    with asynctrace.tracing(**options) as tracing:
        asyncio.run(main())
    return tracing.trace


def awaits_in(trace: Trace, parent: str) -> list[Span]:
    span = testing.find_span(trace, parent)
    return [c for c in span.children if c.kind == "await"]


def line_of(marker: str, fn: Callable[..., Any]) -> int:
    lines, first = inspect.getsourcelines(fn)
    return first + next(i for i, text in enumerate(lines) if marker in text)


@asynctrace.trace
async def sync_primitives() -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    lock = asyncio.Lock()
    event = asyncio.Event()
    semaphore = asyncio.Semaphore(0)

    async def feeder() -> None:
        await asyncio.sleep(1)
        queue.put_nowait(1)
        await asyncio.sleep(1)
        event.set()
        await asyncio.sleep(1)
        semaphore.release()
        await asyncio.sleep(1)
        lock.release()
        await asyncio.sleep(1)

    await lock.acquire()
    feed = asyncio.create_task(feeder(), name="feeder")
    await queue.get()
    await event.wait()
    await semaphore.acquire()
    async with lock:
        pass
    await feed


def test_awaits_are_named_for_what_they_wait_on() -> None:
    trace = traced_run(sync_primitives)
    names = [a.name for a in awaits_in(trace, "sync_primitives")]
    assert names == [
        "Queue.get",
        "Event.wait",
        "Semaphore.acquire",
        "Lock.acquire",
        "feeder (feeder)",
    ]
    durations = [round(a.duration, 9) for a in awaits_in(trace, "sync_primitives")]
    assert durations == [1.0, 1.0, 1.0, 1.0, 1.0]
    feeder_awaits = [
        s for s in trace if s.kind == "await" and s.parent and s.parent.name == "feeder"
    ]
    assert [a.name for a in feeder_awaits] == ["asyncio.sleep(1)"] * 5


def test_await_span_carries_the_file_and_line_of_the_await() -> None:
    async def main() -> None:
        await asyncio.sleep(0.5)  # the await

    trace = traced_run(main)
    (sleep,) = trace.spans_matching("asyncio.sleep(0.5)")
    assert sleep.attributes["code.file.path"] == __file__
    assert sleep.attributes["code.line.number"] == line_of("# the await", main)
    assert sleep.attributes["asynctrace.awaited"] == "asyncio.sleep(0.5)"
    assert sleep.duration == 0.5


def test_sleep_zero_and_futures_and_gathers_are_named() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        loop.call_later(1, future.set_result, None)
        await future
        await asyncio.sleep(0)
        await asyncio.gather(asyncio.sleep(1), asyncio.sleep(2))

    trace = traced_run(main)
    names = [a.name for a in awaits_in(trace, "main")]
    assert names == ["Future (future)", "asyncio.sleep(0)"]  # the expression after `await`
    assert awaits_in(trace, "main")[0].attributes["asynctrace.awaited"] == "Future"
    gather = testing.find_span(trace, "gather(sleep × 2)", kind="gather")
    assert gather.duration == 2.0
    assert [c.kind for c in gather.children] == ["task", "task", "await"]


class _Awaitable:
    """A library's awaitable whose ``__await__`` hides its coroutine (a coroutine_wrapper),
    as aiohttp's request context managers do: the await is seen as one on a bare future."""

    def __init__(self, coro: Any) -> None:
        self._coro = coro

    def __await__(self) -> Any:
        return self._coro.__await__()


class _Response:
    def json(self) -> _Awaitable:
        return _Awaitable(self._read())

    async def _read(self) -> bytes:
        future = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(1, future.set_result, b"{}")
        return await future  # untraced: library code


def test_an_await_on_a_bare_future_names_the_expression_awaited() -> None:
    async def main() -> None:
        response = _Response()
        await response.json()  # a comment, not part of it
        (await response.json()).decode()
        result = [await response.json(), 1]
        assert result[0] == b"{}"

    trace = traced_run(main)
    names = [a.name for a in awaits_in(trace, "main")]
    assert names == ["Future (response.json())"] * 3
    # what it waits on is still a future: a task there waits, it does not run
    assert [a.attributes["asynctrace.awaited"] for a in awaits_in(trace, "main")] == ["Future"] * 3


async def _ticker(n: int) -> Any:
    for i in range(n):
        yield i
        await asyncio.sleep(1)  # inside the async generator: main's task awaits its future


def test_an_await_inside_an_async_for_names_the_loop() -> None:
    async def main() -> None:
        async for _ in _ticker(2):
            pass

    trace = traced_run(main)
    names = [a.name for a in awaits_in(trace, "main")]
    assert names == ["Future (async for _ in _ticker(2))"] * 2
    assert [a.attributes["asynctrace.awaited"] for a in awaits_in(trace, "main")] == ["Future"] * 2


def test_a_blocking_call_is_a_blocked_span_in_its_coroutine() -> None:
    import time

    async def main() -> None:
        time.sleep(0.03)
        await asyncio.sleep(0)

    trace = traced_run(main, virtual_time=False, blocked_threshold=0.01)
    (blocked,) = trace.spans_matching(kind="blocked")
    assert blocked.parent is testing.find_span(trace, "main", kind="task")
    assert blocked.duration >= 0.03
    assert blocked.attributes["code.file.path"] == __file__


def test_statuses_error_cancelled_timeout() -> None:
    @asynctrace.trace
    async def fails() -> None:
        await asyncio.sleep(1)
        raise ValueError("boom")

    @asynctrace.trace
    async def sleeper() -> None:
        await asyncio.sleep(10)

    async def main() -> None:
        with pytest.raises(ValueError):
            await fails()
        task = asyncio.create_task(sleeper(), name="victim")
        await asyncio.sleep(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(sleeper(), 2)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1):
                await asyncio.sleep(5)

    trace = traced_run(main)
    fail = testing.find_span(trace, "fails")
    assert (fail.status, fail.error) == ("error", "ValueError: boom")
    assert fail.attributes["exception.type"] == "ValueError"
    victim = trace.spans_matching("sleeper", asynctrace_task_name="victim") or [
        s for s in trace if s.attributes.get("asynctrace.task.name") == "victim"
    ]
    assert [s.status for s in victim] == ["cancelled"]
    # The victim's sleep was cancelled; the one wait_for cut short timed out, on every version.
    sleeps = [s for s in trace if s.name == "asyncio.sleep(10)"]
    assert [s.status for s in sleeps] == ["cancelled", "timeout"]
    # What wait_for waited on was cancelled: a task of wait_for's own up to Python 3.11, the
    # call itself, in the caller's task, from 3.12 (where the caller's await is the call's).
    cut = [s for s in trace.spans_matching("sleeper") if s not in victim]
    kind = "task" if sys.version_info < (3, 12) else "coroutine"
    assert [(s.kind, s.duration, s.status) for s in cut] == [(kind, 2.0, "cancelled")]
    main_awaits = awaits_in(trace, "main")
    waited = [a for a in main_awaits if a.name == "asyncio.wait_for"]
    expected = [(2.0, "timeout")] if sys.version_info < (3, 12) else []
    assert [(a.duration, a.status) for a in waited] == expected
    expired = [a for a in main_awaits if a.name == "asyncio.sleep(5)"]
    assert [(a.duration, a.status) for a in expired] == [(1.0, "timeout")]


def test_spans_still_open_are_unfinished_in_a_snapshot() -> None:
    seen: list[Trace] = []

    async def main() -> None:
        async def waiter() -> None:
            await asyncio.sleep(5)

        task = asyncio.create_task(waiter())
        await asyncio.sleep(1)
        seen.append(tracing.trace)
        task.cancel()

    with asynctrace.tracing(virtual_time=True) as tracing:
        asyncio.run(main())
    snapshot = seen[0]
    waiter = [s for s in snapshot if s.name.endswith("waiter") and s.kind == "task"]
    assert [s.status for s in waiter] == ["unfinished"]
    (pending,) = [c for c in waiter[0].children if c.kind == "await"]
    assert (pending.name, pending.status) == ("asyncio.sleep(5)", "unfinished")
    final = [s for s in tracing.trace if s.name.endswith("waiter") and s.kind == "task"]
    assert [s.status for s in final] == ["cancelled"]


def test_a_task_tracebacks_show_no_asynctrace_frame() -> None:
    async def inner() -> None:
        await asyncio.sleep(0)
        raise KeyError("k")

    async def main() -> None:
        await asyncio.create_task(inner())

    with asynctrace.tracing(), pytest.raises(KeyError) as info:
        asyncio.run(main())
    files = [entry.path for entry in info.traceback]
    assert not [f for f in files if "asynctrace" in str(f) and "tests" not in str(f)]


def test_a_snapshot_taken_inside_a_task_does_not_repeat_its_last_await() -> None:
    seen: list[Trace] = []

    @asynctrace.trace
    async def main() -> None:
        await asyncio.sleep(1)
        seen.append(tracing.trace)

    with asynctrace.tracing(virtual_time=True) as tracing:
        asyncio.run(main())
    sleeps = [s for s in seen[0] if s.name == "asyncio.sleep(1)"]
    assert [(s.status, s.duration) for s in sleeps] == [("ok", 1.0)]


def test_an_ended_task_is_freed_without_the_garbage_collector() -> None:
    """An ended task's root (the coroutine asyncio holds) goes with its last reference.

    Else every ended task waits for a collection pass, and a run of thousands of tasks makes
    the collector run more often and longer while the program runs.
    """

    async def job() -> None:
        await asyncio.sleep(0)

    async def main() -> None:
        gc.disable()
        try:
            task = asyncio.create_task(job())
            root = weakref.ref(task.get_coro())
            await task
            del task
            await asyncio.sleep(0)  # main's own pending await no longer names the task
            assert root() is None, "the ended task's root is still referenced"
        finally:
            gc.enable()

    traced_run(main)


def test_a_task_made_after_its_parent_task_ended_is_still_its_child() -> None:
    """A callback scheduled in a task runs in the task's context, maybe after the task ended."""
    later: list[asyncio.Task[None]] = []

    async def child() -> None:
        await asyncio.sleep(1)

    def spawn() -> None:
        later.append(asyncio.create_task(child()))

    async def first() -> None:
        asyncio.get_running_loop().call_later(2, spawn)
        await asyncio.sleep(1)

    async def main() -> None:
        await asyncio.create_task(first())
        await asyncio.sleep(3)
        await later[0]

    trace = traced_run(main)
    first_span = testing.find_span(trace, "first", kind="task")
    late = testing.find_span(trace, "child", kind="task")
    assert late.parent_id == first_span.span_id


class _Countdown:
    """An async iterator whose ``__anext__`` ends the iteration the normal way."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __aiter__(self) -> _Countdown:
        return self

    @asynctrace.trace
    async def __anext__(self) -> int:
        await asyncio.sleep(1)
        if self.n == 0:
            raise StopAsyncIteration
        self.n -= 1
        return self.n


def test_stop_async_iteration_ending_an_iteration_is_no_error() -> None:
    got: list[int] = []

    async def main() -> None:
        async for n in _Countdown(2):
            got.append(n)

    trace = traced_run(main)
    assert got == [1, 0]
    calls = [s for s in trace if s.kind == "coroutine"]
    assert len(calls) == 3
    assert {s.status for s in calls} == {"ok"}


def test_a_task_ended_by_stop_async_iteration_is_still_an_error() -> None:
    async def broken() -> None:
        await asyncio.sleep(1)
        raise StopAsyncIteration

    async def main() -> None:
        with pytest.raises(StopAsyncIteration):
            await asyncio.create_task(broken())

    trace = traced_run(main)
    assert testing.find_span(trace, "broken", kind="task").status == "error"


def test_a_blocked_step_belongs_to_the_call_running_when_it_began() -> None:
    """The block is in ``slow``; ``after`` starts once it is over and suspends first."""

    @asynctrace.trace
    async def slow() -> None:
        time.sleep(0.15)  # holds the loop; then returns without suspending

    @asynctrace.trace
    async def after() -> None:
        await asyncio.sleep(0.01)

    @asynctrace.trace
    async def step() -> None:
        await asyncio.sleep(0)
        await slow()
        await after()

    async def main() -> None:
        await asyncio.create_task(step())

    trace = traced_run(main, virtual_time=False)
    (blocked,) = [s for s in trace if s.kind == "blocked"]
    assert blocked.parent is not None
    assert blocked.parent.name == "step", blocked.parent.name  # not "after", which came later
    assert blocked.attributes["code.file.path"] == __file__
