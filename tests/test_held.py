"""Held locks and semaphores: ``held`` spans from acquire to release, on the holder's track."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

import asynctrace
from asynctrace import testing
from asynctrace._model._spans import Trace


def traced_run(main: Callable[[], Coroutine[Any, Any, Any]], **options: Any) -> Trace:
    options.setdefault("virtual_time", True)
    with asynctrace.tracing(**options) as tracing:
        asyncio.run(main())
    return tracing.trace


@asynctrace.trace
async def crawler() -> None:
    limit = asyncio.Semaphore(5)

    @asynctrace.trace
    async def fetch(n: int) -> None:
        async with limit:
            await asyncio.sleep(0.01)

    await asyncio.gather(*(fetch(n) for n in range(20)))


@pytest.mark.parametrize("virtual_time", [True, False])
def test_a_semaphore_shows_the_limit_the_tasks_do_not(virtual_time: bool) -> None:
    trace = traced_run(crawler, virtual_time=virtual_time)
    held = testing.find_spans(trace, "holding Semaphore", kind="held")
    assert len(held) == 20
    assert {s.attributes["asynctrace.primitive.name"] for s in held} == {"limit"}
    assert {s.parent.name for s in held if s.parent is not None} == {"fetch"}
    assert all(s.track == s.parent.track for s in held if s.parent is not None)
    testing.assert_max_concurrency(trace, "holding Semaphore", 5)
    testing.assert_min_concurrency(trace, "holding Semaphore", 5)
    with pytest.raises(testing.TraceAssertionError):
        testing.assert_max_concurrency(trace, "fetch", 5)  # all 20 tasks are alive at once
    # the wait to get in keeps its name, and each hold starts as its wait ends
    waits = testing.find_spans(trace, "Semaphore.acquire", kind="await")
    assert len(waits) == 15
    for wait in waits:
        (hold,) = [s for s in held if s.track == wait.track]
        assert hold.start >= wait.end


def test_locks_conditions_and_attributes_are_named() -> None:
    class Store:
        def __init__(self) -> None:
            self.guard = asyncio.Lock()
            self.ready = asyncio.Condition()

        @asynctrace.trace
        async def write(self) -> None:
            async with self.guard:
                await asyncio.sleep(1)
            async with self.ready:
                self.ready.notify_all()

    async def main() -> None:
        store = Store()
        await asyncio.gather(store.write(), store.write())

    trace = traced_run(main)
    locks = testing.find_spans(trace, "holding Lock", kind="held")
    assert {s.attributes["asynctrace.primitive.name"] for s in locks} == {"self.guard"}
    assert sorted((s.start, s.end) for s in locks) == [(0.0, 1.0), (1.0, 2.0)]
    conditions = testing.find_spans(trace, "holding Condition", kind="held")
    assert len(conditions) == 2
    assert {s.attributes["asynctrace.primitive.name"] for s in conditions} == {"self.ready"}
    assert testing.find_spans(trace, "Lock.acquire", kind="await")  # the second writer waited


def test_a_release_by_another_task_ends_the_oldest_hold_and_open_holds_are_unfinished() -> None:
    gate = asyncio.Semaphore(0)

    async def opener() -> None:
        await asyncio.sleep(1)
        gate.release()  # lets the waiter in: that task's hold begins

    async def main() -> None:
        signal = asyncio.BoundedSemaphore(1)
        await signal.acquire()  # held by main...
        helper = asyncio.create_task(opener())
        await gate.acquire()  # ...and main holds the gate from 1 s on, never released
        await asyncio.sleep(1)
        await asyncio.create_task(release(signal))  # ...released by another task at 2 s
        await helper

    async def release(signal: asyncio.BoundedSemaphore) -> None:
        signal.release()

    trace = traced_run(main)
    signal = [s for s in trace if s.kind == "held" and s.attributes[
        "asynctrace.primitive.name"] == "signal"]  # fmt: skip
    assert [(s.start, s.end, s.status) for s in signal] == [(0.0, 2.0, "ok")]
    gate_holds = [s for s in trace if s.kind == "held" and s.start == 1.0]
    assert [s.status for s in gate_holds] == ["unfinished"]


def test_the_primitives_behave_as_without_asynctrace() -> None:
    outcomes: list[object] = []

    async def main() -> None:
        lock = asyncio.Lock()
        outcomes.append(await lock.acquire())
        lock.release()
        try:
            lock.release()
        except RuntimeError as exc:
            outcomes.append(str(exc))
        bounded = asyncio.BoundedSemaphore(1)
        try:
            bounded.release()
        except ValueError as exc:
            outcomes.append(str(exc))
        outcomes.append(await asyncio.Semaphore(1).acquire())

    traced_run(main)
    traced = list(outcomes)
    outcomes.clear()
    asyncio.run(main())
    assert traced == outcomes
    assert outcomes == [True, "Lock is not acquired.", "BoundedSemaphore released too many times",
                        True]  # fmt: skip
    assert asyncio.Lock.acquire.__name__ == "acquire"
    assert asyncio.Semaphore.release.__qualname__ == "Semaphore.release"


def test_holds_of_an_earlier_recording_do_not_leak_into_the_next() -> None:
    lock = asyncio.Lock()

    async def take() -> None:
        await lock.acquire()  # never released in this recording

    traced_run(take)

    async def nothing() -> None:
        await asyncio.sleep(1)

    trace = traced_run(nothing)
    assert not [s for s in trace if s.kind == "held"]
