"""The interpreter as an oracle (Python 3.14+): what every task awaits, where, and who awaits it.

Python 3.14 reports each task's chain of awaits itself (``asyncio.capture_call_graph``, what
``python -m asyncio pstree`` prints).  At one moment of a run with gathers, a TaskGroup, a
task awaited by another, ``wait_for`` and the usual primitives, the interpreter's report for every
task is compared with the awaits asynctrace recorded as open at that moment: the same coroutine
calls, innermost first, the same awaited primitive, and the same awaiting task or gather.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import pytest

import asynctrace
from asynctrace._core import _coro
from asynctrace._model._spans import Span, Trace

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 14), reason="asyncio.capture_call_graph is new in Python 3.14"
)

_ASYNCTRACE_DIR = os.path.dirname(asynctrace.__file__) + os.sep
_SKIPPED_DIRS = (os.path.dirname(asyncio.__file__) + os.sep, _ASYNCTRACE_DIR)


@asynctrace.trace
async def leaf_wait(event: asyncio.Event) -> None:
    await event.wait()


@asynctrace.trace
async def middle(event: asyncio.Event) -> None:
    await leaf_wait(event)


@asynctrace.trace
async def waiter(event: asyncio.Event) -> None:
    await middle(event)


@asynctrace.trace
async def getter(queue: asyncio.Queue[int]) -> int:
    return await queue.get()


@asynctrace.trace
async def locker(lock: asyncio.Lock) -> None:
    async with lock:
        pass


@asynctrace.trace
async def sleeper() -> None:
    await asyncio.sleep(5)


@asynctrace.trace
async def timed(event: asyncio.Event) -> None:
    await asyncio.wait_for(leaf_wait(event), 10)


@asynctrace.trace
async def awaits_task(task: asyncio.Task[None]) -> None:
    await task


@asynctrace.trace
async def grouped(event: asyncio.Event) -> None:
    async with asyncio.TaskGroup() as group:
        group.create_task(waiter(event), name="in-group")
        group.create_task(sleeper(), name="group-sleeper")


def _frames(graph: Any) -> list[str]:
    """The interpreter's call stack of a task, innermost first, as short qualified names."""
    names = []
    for entry in graph.call_stack:
        code = entry.frame.f_code
        if code.co_filename.startswith(_ASYNCTRACE_DIR):
            continue  # the tracer's own wrappers (a traced call's, Lock.acquire's)
        own = not code.co_filename.startswith(_SKIPPED_DIRS)
        names.append((code.co_qualname.rsplit("<locals>.", 1)[-1], own))
    return names


def _capture() -> dict[str, tuple[list[tuple[str, bool]], list[Any]]]:
    """Every task's call stack and awaiting futures, as the interpreter reports them now."""
    graphs = {}
    for task in asyncio.all_tasks():
        graph = asyncio.capture_call_graph(task)  # type: ignore[attr-defined,unused-ignore]
        graphs[task.get_name()] = (_frames(graph), [g.future for g in graph.awaited_by])
    return graphs


def _open_await(trace: Trace, task: Span, moment: float) -> Span:
    found = [
        s
        for s in trace
        if s.kind == "await" and s.track == task.span_id and s.start < moment < s.end
    ]
    assert len(found) == 1, (task, found)
    return found[0]


def _chain(span: Span, task: Span) -> list[str]:
    """asynctrace's calls from an await up to its task, innermost first."""
    names = []
    up = span.parent
    while up is not None and up is not task:
        if up.kind == "coroutine":
            names.append(up.name)
        up = up.parent
    return [*names, task.name]


def _awaited(frames: list[tuple[str, bool]]) -> str:
    """What the innermost call of the program awaits, named as asynctrace names it: the frame
    just below it (through ``async with``'s ``__aenter__`` to the acquire it awaits)."""
    below = [name for name, _ in frames[: [own for _, own in frames].index(True)]]
    name = below[-1]
    if name.endswith("__aenter__") and len(below) > 1:
        name = below[-2]
    if "." not in name:  # a function of asyncio's: asyncio.sleep(5), asyncio.wait_for
        return "asyncio.sleep(5)" if name == "sleep" else f"asyncio.{name}"
    return name


def test_every_open_await_agrees_with_the_interpreters_call_graph() -> None:
    captured: dict[str, Any] = {}

    async def main() -> None:
        event = asyncio.Event()
        queue: asyncio.Queue[int] = asyncio.Queue()
        lock = asyncio.Lock()
        await lock.acquire()
        plain = asyncio.create_task(waiter(event), name="plain")
        awaited = asyncio.create_task(sleeper(), name="awaited")
        loop = asyncio.get_running_loop()

        def release() -> None:
            event.set()
            queue.put_nowait(1)
            lock.release()

        def probe() -> None:  # at 1.0 s, while every task waits
            captured["graphs"] = _capture()
            captured["moment"] = _coro.clock()
            loop.call_later(1.0, release)

        loop.call_later(1.0, probe)
        await asyncio.gather(
            getter(queue),
            locker(lock),
            timed(event),
            awaits_task(awaited),
            grouped(event),
            plain,
        )

    with asynctrace.tracing(virtual_time=True) as tracing:
        asyncio.run(main())
    trace = tracing.trace
    moment = captured["moment"] - tracing.recorder.origin
    graphs = captured["graphs"]
    tasks = {s.attributes["asynctrace.task.name"]: s for s in trace if s.kind == "task"}
    assert set(graphs) == set(tasks)  # every task the interpreter knew of is a task span
    compared = 0
    for name, (frames, awaited_by) in graphs.items():
        task = tasks[name]
        span = _open_await(trace, task, moment)
        own = [frame for frame, is_own in frames if is_own]
        assert _chain(span, task) == own, (name, span, frames)
        if frames[0][1]:  # the task's own frame awaits a future: another task or a gather
            assert span.name.startswith(("gather(", "Task-", "awaited", "plain", "in-group")), (
                name,
                span,
            )
        else:
            assert span.name == _awaited(frames), (name, span, frames)
        for future in awaited_by:  # who awaits this task: a task, or a gather a task awaits
            if isinstance(future, asyncio.Task):
                awaiting = _open_await(trace, tasks[future.get_name()], moment)
                if awaiting.name == "TaskGroup.__aexit__":  # the call that made it in the group
                    assert task.parent is awaiting.parent, (name, awaiting)
                elif awaiting.name.startswith("gather("):  # 3.14 names the gather's caller
                    gather = awaiting.parent
                    assert gather is not None and gather.kind == "gather", awaiting
                    assert task.parent in (gather, gather.parent), (name, task.parent, gather)
                else:
                    assert awaiting.name.startswith(name), (name, awaiting)
            else:
                assert task.parent is not None and task.parent.kind == "gather"
                assert task.parent.start <= moment < task.parent.end
        compared += 1
    assert compared == len(tasks) >= 9
