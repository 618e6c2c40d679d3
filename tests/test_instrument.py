"""Tasks made in every way are seen, thread jobs get tracks of their own, patches come off."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import warnings
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

import asynctrace
from asynctrace import testing
from asynctrace._core import _instrument
from asynctrace._model._spans import AWAITED_SPAN, Trace


def traced_run(main: Callable[[], Coroutine[Any, Any, Any]], **options: Any) -> Trace:
    options.setdefault("virtual_time", True)
    with asynctrace.tracing(**options) as tracing:
        asyncio.run(main())
    return tracing.trace


@asynctrace.trace
async def work(n: float) -> float:
    await asyncio.sleep(n)
    return n


def task_spans(trace: Trace) -> list[str]:
    return sorted(s.name for s in trace if s.kind == "task")


def test_tasks_made_in_every_way_are_seen_with_their_parent() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        await asyncio.create_task(work(1))
        await asyncio.ensure_future(work(1))
        await loop.create_task(work(1))
        await asyncio.wait([asyncio.ensure_future(work(1))])
        for next_done in asyncio.as_completed([work(1)]):
            await next_done
        await asyncio.wait_for(work(1), 5)
        await asyncio.shield(work(1))
        async with asyncio.TaskGroup() as group:
            group.create_task(work(1))

    trace = traced_run(main)
    works = [s for s in trace if s.name == "work"]
    assert len(works) == 8
    # wait_for runs what it waits on in a task of its own up to Python 3.11; from 3.12 it
    # awaits the coroutine in the caller's task (asyncio.timeout): a call, not a task.
    wait_for_kind = "task" if sys.version_info < (3, 12) else "coroutine"
    kinds = sorted(s.kind for s in works)
    assert kinds == sorted(["task"] * 7 + [wait_for_kind])
    main_span = testing.find_span(trace, "main", kind="task")
    assert all(s.parent is main_span for s in works)
    assert all(s.duration == 1.0 and s.status == "ok" for s in works)


def test_a_task_made_by_calling_asyncio_task_is_seen_and_still_a_task() -> None:
    """aiohttp's server makes its tasks so on Python 3.12 and 3.13 (eagerly started there)."""
    seen: list[object] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        eager = {"eager_start": True} if sys.version_info >= (3, 12) else {}
        direct = asyncio.Task(work(1), loop=loop, **eager)
        made = asyncio.create_task(work(2))
        seen.extend([isinstance(direct, asyncio.tasks.Task), isinstance(made, asyncio.Task)])
        seen.extend([type(made) is asyncio.tasks.Task, repr(direct).startswith("<Task ")])
        seen.append(await direct + await made)

    trace = traced_run(main)
    assert seen == [True, True, True, True, 3]
    main_span = testing.find_span(trace, "main", kind="task")
    works = [s for s in trace if s.name == "work"]
    assert sorted((s.kind, s.duration) for s in works) == [("task", 1.0), ("task", 2.0)]
    assert all(s.parent is main_span for s in works)
    # the awaits inside the direct task are recorded: it runs on asynctrace's task root
    assert [c.name for c in works[0].children] in (["asyncio.sleep(1)"], ["asyncio.sleep(2)"])


def test_return_values_pass_through_unchanged() -> None:
    results: list[Any] = []

    async def main() -> None:
        results.append(await asyncio.gather(work(1), work(2)))
        results.append(await asyncio.create_task(work(3)))
        results.append(await asyncio.to_thread(lambda: "threaded"))

    traced_run(main)
    assert results == [[1, 2], 3, "threaded"]


def test_thread_jobs_are_spans_on_their_own_track_under_their_caller() -> None:
    def blocking(x: int) -> int:
        # Long enough to be awaited: from Python 3.13 a job that is done before its future is
        # awaited does not suspend the caller at all.
        time.sleep(0.01)
        return x * 2

    @asynctrace.trace
    async def caller() -> int:
        loop = asyncio.get_running_loop()
        a = await asyncio.to_thread(blocking, 1)
        b = await loop.run_in_executor(None, blocking, 2)
        return a + b

    async def main() -> None:
        assert await caller() == 6

    trace = traced_run(main)
    jobs = trace.spans_matching(kind="thread")
    caller_span = testing.find_span(trace, "caller")
    assert [j.name for j in jobs] == [
        "test_thread_jobs_are_spans_on_their_own_track_under_their_caller.<locals>.blocking"
    ] * 2
    assert all(j.parent is caller_span and j.track == j.span_id for j in jobs)
    assert all(
        j.attributes["asynctrace.thread.name"] != threading.current_thread().name for j in jobs
    )
    awaits = [c for c in caller_span.children if c.kind == "await"]
    assert [a.name for a in awaits] == [
        "asyncio.to_thread(blocking)",
        "Future (loop.run_in_executor(None, blocking, 2))",
    ]
    # each await says which job it waited for, as an await on a task does
    assert [a.attributes[AWAITED_SPAN] for a in awaits] == [j.span_id for j in jobs]


def test_an_executor_future_awaited_later_is_not_taken_for_its_job() -> None:
    # the job's future awaited by name, not where it is made: which job it is, the build
    # cannot tell (a future is named by its type), so it says none
    def blocking() -> None:
        time.sleep(0.01)

    @asynctrace.trace
    async def caller() -> None:
        future = asyncio.get_running_loop().run_in_executor(None, blocking)
        await future

    trace = traced_run(caller)
    (wait,) = trace.spans_matching(kind="await")
    assert wait.name == "Future (future)" and AWAITED_SPAN not in wait.attributes


def test_a_task_of_a_wrapped_asyncio_function_is_named_as_asyncio_names_it() -> None:
    # asyncio.to_thread and Lock.acquire are asynctrace's wrappers while it traces; a task
    # made of one is asyncio's to_thread or acquire, in asyncio's file, as without tracing
    async def main() -> None:
        lock = asyncio.Lock()
        await asyncio.gather(asyncio.to_thread(time.sleep, 0.01), lock.acquire())

    trace = traced_run(main)
    tasks = [s for s in trace.spans_matching(kind="task") if s.name != "main"]
    assert sorted(t.name for t in tasks) == ["Lock.acquire", "to_thread"]
    for task in tasks:
        assert task.attributes["code.file.path"].startswith(asyncio.__path__[0])
        assert task.attributes["code.function.name"] in ("to_thread", "Lock.acquire")


def test_a_failing_thread_job_is_an_error_span() -> None:
    def broken() -> None:
        raise OSError("disk")

    async def main() -> None:
        with pytest.raises(OSError):
            await asyncio.to_thread(broken)

    trace = traced_run(main)
    (job,) = trace.spans_matching(kind="thread")
    assert (job.status, job.error) == ("error", "OSError: disk")


def test_uvloop_tasks_are_seen_through_the_task_factory() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        await asyncio.gather(work(0.01), work(0.02))

    with asynctrace.tracing() as tracing:
        runner_loop = uvloop.new_event_loop()
        _instrument.watch_loop(runner_loop)
        try:
            runner_loop.run_until_complete(main())
        finally:
            runner_loop.close()
    trace = tracing.trace
    assert task_spans(trace) == ["main", "work", "work"]
    testing.assert_overlap(trace, *[s for s in trace if s.name == "work"])


def test_uvloop_policy_loops_are_watched() -> None:
    uvloop = pytest.importorskip("uvloop")
    with warnings.catch_warnings():  # the program's policy calls are deprecated from 3.14
        warnings.simplefilter("ignore", DeprecationWarning)
        previous = asyncio.get_event_loop_policy()
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:

        async def main() -> None:
            await work(0.01)

        with asynctrace.tracing() as tracing:
            asyncio.run(main())
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_event_loop_policy(previous)
    assert task_spans(tracing.trace) == ["main"]
    assert [s.name for s in tracing.trace if s.kind == "coroutine"] == ["work"]


def test_nothing_is_recorded_outside_tracing_and_asyncio_is_restored() -> None:
    with asynctrace.tracing(virtual_time=True) as tracing:
        asyncio.run(work(1))
    asyncio.run(work(0))
    assert [s.kind for s in tracing.trace] == ["run", "task", "await"]
    _instrument.uninstall()
    try:
        assert asyncio.gather is _instrument._orig_gather
        assert asyncio.base_events.BaseEventLoop.create_task is _instrument._orig_create_task
    finally:
        _instrument.install()


def test_tracing_twice_at_once_is_a_clear_error() -> None:
    with asynctrace.tracing(name="outer"), pytest.raises(RuntimeError, match="already tracing"):
        asynctrace.instrument()


def test_instrument_and_uninstrument_return_the_trace() -> None:
    asynctrace.instrument(virtual_time=True)
    try:
        asyncio.run(work(2))
    finally:
        trace = asynctrace.uninstrument()
    assert trace is not None
    assert testing.find_span(trace, "work", kind="task").duration == 2.0
    assert asynctrace.uninstrument() is None


def test_a_failing_output_is_reported_once_and_others_still_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    seen: list[int] = []

    def broken(trace: Trace) -> None:
        raise RuntimeError("exporter down")

    with asynctrace.tracing(
        json=str(tmp_path / "missing" / "t.json"),
        outputs=(broken, lambda trace: seen.append(len(trace))),
    ):
        asyncio.run(work(0))
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert err[0].startswith("asynctrace: could not write the JSON timeline")
    assert "exporter down" in err[1]
    assert seen and seen[0] >= 2


def test_max_spans_caps_memory_and_counts_the_dropped() -> None:
    async def main() -> None:
        await asyncio.gather(*(work(0) for _ in range(50)))

    trace = traced_run(main, max_spans=20)
    assert len(trace) <= 22  # the cap, plus the run span and what was still open
    assert trace.dropped > 0


def test_what_runs_inside_a_gathered_task_is_parented_to_that_task() -> None:
    @asynctrace.trace
    async def child() -> None:
        await asyncio.to_thread(lambda: None)
        await asyncio.create_task(work(0))

    async def main() -> None:
        await asyncio.gather(child())

    trace = traced_run(main)
    child_task = testing.find_span(trace, "child", kind="task")
    (job,) = trace.spans_matching(kind="thread")
    inner = [s for s in trace if s.kind == "task" and s.name == "work"]
    assert job.parent is child_task
    assert [s.parent for s in inner] == [child_task]


# -- Python 3.12+: eager tasks, loop factories ------------------------------------------------


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks are new in Python 3.12")
@pytest.mark.parametrize("factory", ["eager_task_factory", "create_eager_task_factory"])
def test_eager_tasks_that_end_at_once_are_task_spans_with_their_parent(factory: str) -> None:
    async def quick(n: int) -> int:
        return n

    async def main() -> None:
        loop = asyncio.get_running_loop()
        if factory == "eager_task_factory":
            loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]
        else:
            loop.set_task_factory(asyncio.create_eager_task_factory(asyncio.Task))  # type: ignore[attr-defined,unused-ignore]
        done = asyncio.create_task(quick(1), name="at-once")
        assert done.done()  # it ran to its end inside create_task
        assert await asyncio.create_task(work(1), name="suspends") == 1
        assert await asyncio.gather(quick(2), work(1)) == [2, 1]
        async with asyncio.TaskGroup() as group:
            group.create_task(quick(3))

    trace = traced_run(main)
    main_span = testing.find_span(trace, "main", kind="task")
    ended = trace.spans_matching("quick", kind="task")
    assert [(s.status, s.duration) for s in ended] == [("ok", 0.0)] * 3
    assert ended[0].attributes["asynctrace.task.name"] == "at-once"
    (suspends,) = [s for s in trace if s.attributes.get("asynctrace.task.name") == "suspends"]
    assert (suspends.name, suspends.parent, suspends.duration) == ("work", main_span, 1.0)
    (gather,) = trace.spans_matching(kind="gather")
    assert gather.name == "gather(quick, work)"
    assert ended[1].parent is gather and ended[0].parent is ended[2].parent is main_span


def test_runner_loop_factories_are_traced() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        await asyncio.gather(work(0.01), work(0.01))

    factories: list[Callable[[], asyncio.AbstractEventLoop]] = [
        asyncio.new_event_loop,
        asyncio.SelectorEventLoop,
        uvloop.new_event_loop,
    ]
    for factory in factories:
        with asynctrace.tracing() as tracing:
            with asyncio.Runner(loop_factory=factory) as runner:
                runner.run(main())
            if sys.version_info >= (3, 12):
                asyncio.run(main(), loop_factory=factory)  # type: ignore[call-arg,unused-ignore]
        runs = 2 if sys.version_info >= (3, 12) else 1
        assert task_spans(tracing.trace) == sorted(["main", "work", "work"] * runs), factory
        gathers = tracing.trace.spans_matching(kind="gather")
        assert [g.name for g in gathers] == ["gather(work × 2)"] * runs


def test_taskgroup_and_timeout_are_traced() -> None:
    async def main() -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(work(1))
            group.create_task(work(2))
        try:
            async with asyncio.timeout(0.5):
                await work(1)
        except TimeoutError:
            pass

    trace = traced_run(main)
    main_span = testing.find_span(trace, "main", kind="task")
    tasks = trace.spans_matching("work", kind="task")
    assert [(t.parent, t.duration) for t in tasks] == [(main_span, 1.0), (main_span, 2.0)]
    testing.assert_overlap(trace, *tasks)
    (cut,) = trace.spans_matching("work", kind="coroutine")
    assert (cut.status, cut.duration) == ("cancelled", 0.5)
    assert [a.status for a in cut.children if a.kind == "await"] == ["timeout"]


def test_a_gathers_name_counts_its_childrens_names_in_order() -> None:
    from asynctrace._model._build import _summarize

    assert _summarize(["b", "a", "b", "c", "d", "e", "f"]) == "b × 2, a, c, d, … 2 more"
    assert _summarize(["work"] * 3) == "work × 3"
    assert _summarize([]) == ""
