"""The critical path: the chain of spans whose ends set a span's end, on known shapes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

import asynctrace
from asynctrace import testing
from asynctrace._model import _critical
from asynctrace._model._critical import CRITICAL
from asynctrace._model._spans import AWAITED_SPAN, Span, Trace


def traced_run(main: Callable[[], Coroutine[Any, Any, Any]], **options: Any) -> Trace:
    options.setdefault("virtual_time", True)
    with asynctrace.tracing(**options) as tracing:
        asyncio.run(main())
    return tracing.trace


def steps(path: list[Span]) -> list[str]:
    return [f"{s.kind} {s.name}" for s in path if s.kind != "run"]


@asynctrace.trace
async def sleeper(seconds: float) -> None:
    await asyncio.sleep(seconds)


@pytest.mark.parametrize("unit", [1.0, 0.05])  # virtual seconds; real time, shorter
def test_the_blog_gather_example_goes_through_task1_then_task3(unit: float) -> None:
    @asynctrace.trace
    async def task1() -> None:
        await asyncio.sleep(2 * unit)

    @asynctrace.trace
    async def task2() -> None:
        await asyncio.sleep(1 * unit)

    @asynctrace.trace
    async def task3() -> None:
        await asyncio.sleep(3 * unit)

    @asynctrace.trace
    async def main() -> None:
        await asyncio.gather(task1(), task2())
        await task3()

    trace = traced_run(main, virtual_time=unit == 1.0)
    assert steps(testing.critical_path(trace)) == [
        "task main",
        "gather gather(task1, task2)",
        "task task1",
        f"await asyncio.sleep({2 * unit:g})",
        "coroutine task3",
        f"await asyncio.sleep({3 * unit:g})",
    ]


def test_nested_gathers_follow_the_slowest_branch_at_each_level() -> None:
    @asynctrace.trace
    async def left() -> None:
        await asyncio.gather(sleeper(1), sleeper(4))  # 4

    @asynctrace.trace
    async def right() -> None:
        await sleeper(2)
        await asyncio.gather(sleeper(1), sleeper(1.5))  # 3.5

    @asynctrace.trace
    async def main() -> None:
        await asyncio.gather(left(), right())

    trace = traced_run(main)
    path = testing.critical_path(trace)
    assert [s.name for s in path if s.kind == "task"] == ["main", "left", "sleeper"]
    assert path[-1].name == "asyncio.sleep(4)"
    assert sum(s.duration for s in path if s.kind == "await" and "sleep" in s.name) == 4


def test_an_awaited_task_on_another_track_sets_its_awaiters_end() -> None:
    @asynctrace.trace
    async def main() -> None:
        job = asyncio.create_task(sleeper(3), name="job")
        await asyncio.sleep(1)
        await job
        await asyncio.sleep(0.5)

    trace = traced_run(main)
    assert steps(testing.critical_path(trace)) == [
        "task main",
        "await job (sleeper)",
        "task sleeper",
        "await asyncio.sleep(3)",
        "await asyncio.sleep(0.5)",
    ]


def test_a_task_group_ends_with_its_slowest_task() -> None:
    @asynctrace.trace
    async def main() -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(sleeper(1))
            group.create_task(sleeper(2.5))
            group.create_task(sleeper(2))

    trace = traced_run(main)
    path = testing.critical_path(trace)
    (task,) = [s for s in path if s.kind == "task" and s.name == "sleeper"]
    assert task.duration == 2.5
    assert path[-1].name == "asyncio.sleep(2.5)"


def test_a_thread_job_awaited_is_on_the_path() -> None:
    @asynctrace.trace
    async def main() -> None:
        await asyncio.to_thread(time.sleep, 0.05)

    trace = traced_run(main, virtual_time=False)
    path = testing.critical_path(trace)
    assert [s.kind for s in path[-2:]] == ["await", "thread"]
    assert path[-1].name == "sleep"


def test_the_path_of_any_span_and_a_task_left_running_is_not_on_it() -> None:
    @asynctrace.trace
    async def main() -> None:
        background = asyncio.create_task(sleeper(10), name="background")  # sets no end
        await sleeper(1)
        await asyncio.sleep(0)
        background.cancel()

    trace = traced_run(main)
    path = testing.critical_path(trace)
    assert "background" not in {s.attributes.get("asynctrace.task.name") for s in path}
    coroutine = testing.find_span(trace, "sleeper", kind="coroutine")
    assert steps(testing.critical_path(trace, coroutine)) == [
        "coroutine sleeper",
        "await asyncio.sleep(1)",
    ]


def test_assert_critical_path_passes_in_order_and_explains_a_failure() -> None:
    @asynctrace.trace
    async def fast() -> None:
        await asyncio.sleep(1)

    @asynctrace.trace
    async def slow() -> None:
        await asyncio.sleep(2)

    @asynctrace.trace
    async def main() -> None:
        await asyncio.gather(fast(), slow())

    trace = traced_run(main)
    testing.assert_critical_path(trace, "main", "slow")
    with pytest.raises(testing.TraceAssertionError) as failure:
        testing.assert_critical_path(trace, "main", "fast")
    message = str(failure.value)
    assert "'fast' is not on the critical path" in message
    assert "critical path" in message and "slow" in message  # the path it has, shown
    with pytest.raises(testing.TraceAssertionError, match="in that order"):
        testing.assert_critical_path(trace, "slow", "main")
    with pytest.raises(testing.TraceAssertionError, match="no span matches 'nothing'"):
        testing.assert_critical_path(trace, "nothing")


def test_the_run_span_starts_the_path_and_an_empty_trace_has_none() -> None:
    trace = traced_run(lambda: sleeper(1))
    path = testing.critical_path(trace)
    assert path[0].kind == "run" and path[-1].name == "asyncio.sleep(1)"
    assert testing.critical_path(Trace([])) == []


def test_asynctrace_run_ends_its_timeline_with_the_critical_path(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "gather.py"
    done = subprocess.run(
        [sys.executable, "-m", "asynctrace", "run", "--virtual-time", "--no-json",
         "--width", "90", str(example)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    at = lines.index("critical path 5.000 s (what set the end of gather.py):")
    tail = lines[at : at + 3]
    assert tail[1].split() == ["Task-2", "task1()", "›", "await", "asyncio.sleep(2)",
                               "0.000", "2.000", "40%"]  # fmt: skip
    # main's sleep is in task3(), a coroutine on main's row: the step names the call it is in
    assert tail[2].split() == ["Task-1", "main()", "›", "task3()", "›", "await",
                               "asyncio.sleep(3)", "2.000", "3.000", "60%"]  # fmt: skip
    # then where the waiting went, by what and where, the costliest first
    assert lines[at + 3 : at + 5] == [
        "waiting: 8.000 s awaited at 4 places (top 4) · loop blocked 0.000 s",
        "no task running 5.000 of 5.000 s",
    ]
    first = lines[at + 6].split()
    assert first[:3] == ["asyncio.sleep", "at", "gather.py:20"] and first[3] == "1×"
    assert all(len(line) <= 90 for line in lines)
    quiet = subprocess.run(
        [sys.executable, "-m", "asynctrace", "run", "--virtual-time", "--no-json",
         "--no-summary", str(example)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert "critical path" not in quiet.stderr and "waiting:" not in quiet.stderr


def test_the_json_timeline_marks_the_spans_on_the_runs_critical_path(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "gather.py"
    out = tmp_path / "gather.json"
    done = subprocess.run(
        [sys.executable, "-m", "asynctrace", "run", "--virtual-time", "--no-timeline",
         "--json", str(out), str(example)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    loaded = asynctrace.load(str(out))
    marked = [s.name for s in loaded if s.attributes.get(CRITICAL) is True]
    assert marked == [s.name for s in testing.critical_path(loaded)]
    assert marked == ["gather.py", "main", "gather(task1, task2)", "task1",
                      "asyncio.sleep(2)", "task3", "asyncio.sleep(3)"]  # fmt: skip


def test_the_terminal_shows_the_longest_steps_of_a_long_path_and_the_time_between() -> None:
    @asynctrace.trace
    async def main() -> None:
        for _ in range(30):
            await asyncio.sleep(0.1)
        await asyncio.sleep(5)
        for _ in range(30):
            await asyncio.sleep(0.1)

    trace = traced_run(main)
    text = asynctrace.format_timeline(trace, width=100, summary=True)
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("critical path"))
    steps = lines[at + 1 : at + 13]
    assert any("await asyncio.sleep(5)" in line and "45%" in line for line in steps)
    assert lines[at + 13].startswith("  ... 49 more steps, 4.900 s")
    assert not any("between them" in line for line in lines)  # virtual time: all awaited


def test_the_time_before_the_first_step_is_the_programs_start_not_between_steps() -> None:
    # 6 s of imports before main starts, then main's 3 s sleep and 1 s of its own code
    lines = critical_lines([
        Span(1, None, "run", "slow_imports.py", 0.0, 10.0, 1, start_seq=1, end_seq=10),
        Span(2, 1, "task", "main", 6.0, 10.0, 2, attributes=TASK_1, start_seq=2, end_seq=9),
        Span(3, 2, "await", "asyncio.sleep(3)", 6.0, 9.0, 2, start_seq=3, end_seq=4),
    ])  # fmt: skip
    assert lines[0] == "critical path 10.000 s (what set the end of slow_imports.py):"
    assert lines[2:4] == [
        "  and 6.000 s (60%) before the first (the program's start), 1.000 s (10%) between them",
        "waiting: 3.000 s awaited at 1 place (top 1) · loop blocked 0.000 s",
    ]


def test_a_step_inside_calls_names_the_call_it_is_in() -> None:
    # run > task main > outer() > inner() > await: the step's row, "…" for outer(), inner()
    lines = critical_lines([
        Span(1, None, "run", "nested.py", 0.0, 4.0, 1, start_seq=1, end_seq=10),
        Span(2, 1, "task", "main", 0.0, 4.0, 2, attributes=TASK_1, start_seq=2, end_seq=9),
        Span(3, 2, "coroutine", "outer", 0.0, 4.0, 2, start_seq=3, end_seq=8),
        Span(4, 3, "coroutine", "inner", 0.0, 4.0, 2, start_seq=4, end_seq=7),
        Span(5, 4, "await", "asyncio.sleep(3)", 1.0, 4.0, 2, start_seq=5, end_seq=6),
    ])  # fmt: skip
    assert lines[1].split() == [
        "Task-1", "main()", "›", "…", "›", "inner()", "›", "await", "asyncio.sleep(3)",
        "1.000", "3.000", "75%",
    ]  # fmt: skip


def test_a_step_that_is_its_rows_own_span_is_named_once() -> None:
    # an await on a thread job, which ran 3 s: the job's row is the step, said once
    lines = critical_lines([
        Span(1, None, "run", "job.py", 0.0, 4.0, 1, start_seq=1, end_seq=10),
        Span(2, 1, "task", "main", 0.0, 4.0, 2, attributes=TASK_1, start_seq=2, end_seq=9),
        Span(3, 2, "thread", "cpu", 1.0, 4.0, 3, start_seq=3, end_seq=7,
             attributes={"asynctrace.thread.name": "asyncio_0"}),
        Span(4, 2, "await", "asyncio.to_thread(cpu)", 1.0, 4.0, 2, start_seq=4, end_seq=8,
             attributes={"asynctrace.awaited.span_id": 3}),
    ])  # fmt: skip
    assert lines[1].split() == ["asyncio_0", "cpu()", "1.000", "3.000", "75%"]


TASK_1 = {"asynctrace.task.name": "Task-1"}


def critical_lines(spans: list[Span]) -> list[str]:
    """The terminal timeline's lines from ``critical path``, for a hand-made run."""
    text = asynctrace.format_timeline(Trace(spans), width=100, summary=True)
    lines = text.splitlines()
    return lines[next(i for i, line in enumerate(lines) if line.startswith("critical path")) :]


def made(sid: int, parent: int | None, kind: str, start: float, end: float, **kw: Any) -> Span:
    seq = kw.pop("seq", sid)
    return Span(sid, parent, kind, kw.pop("name", f"s{sid}"), start, end, 1, start_seq=seq,
                end_seq=kw.pop("end_seq", seq + 100), **kw)  # fmt: skip


def cycle_of_awaits() -> Trace:
    """Two awaits that name each other's span: the walk stops at the one it has seen."""
    return Trace([
        made(1, None, "run", 0.0, 4.0, end_seq=1000),
        made(2, 1, "await", 0.0, 4.0, attributes={AWAITED_SPAN: 3}),
        made(3, 1, "task", 0.0, 3.0),
        made(4, 3, "await", 0.0, 3.0, attributes={AWAITED_SPAN: 2}, end_seq=50),  # seen: stop
    ])  # fmt: skip


def chain_deeper_than_the_cut() -> Trace:
    """A run with 398 nested calls, each holding the next: cut at _MAX_DEPTH."""
    chain = [made(1, None, "run", 0.0, 1000.0)]
    chain += [made(i, i - 1, "coroutine", i * 0.001, 1000.0 - i * 0.001) for i in range(2, 400)]
    return Trace(chain)


def python_walk(trace: Trace) -> list[int]:
    """The run's path by the Python walk, whether or not the C one is built."""
    path: list[Span] = []
    _critical._walk(trace, trace.spans[0], path, _critical._TaskLabels(trace), set(), 0)
    return [s.span_id for s in path]


@pytest.mark.parametrize(
    ("child", "walked"),
    [
        ({}, [1, 2, 3, 4]),  # a chain of one child each, down to the await
        ({"end": 9.5}, [1, 2, 3]),  # ends after its parent: not a step
        ({"end": 9.0, "end_seq": 50}, [1, 2, 3, 4]),  # a tie of ends: it ended first
        ({"end": 9.0, "end_seq": 500}, [1, 2, 3]),  # a tie of ends: it ended last
        ({"end": 2.0}, [1, 2, 3]),  # no duration
        ({"start": 0.0, "end": 1.0}, [1, 2, 3]),  # over before its parent started
    ],
)
def test_a_calls_one_child_is_its_step_when_it_ends_inside_it(
    child: dict[str, Any], walked: list[int]
) -> None:
    trace = Trace([
        made(1, None, "run", 0.0, 10.0),
        made(2, 1, "coroutine", 0.5, 9.5),
        made(3, 2, "coroutine", 1.0, 9.0, end_seq=100),
        made(4, 3, "coroutine", **{"start": 2.0, "end": 8.0, **child}),
    ])  # fmt: skip
    assert python_walk(trace) == walked


def test_the_walk_goes_into_what_an_await_waited_on_once() -> None:
    held = Trace([
        made(1, None, "run", 0.0, 6.0, end_seq=1000),
        made(2, 1, "gather", 0.0, 6.0),
        made(3, 2, "await", 5.0, 6.0),  # the gather's result taken, its only child: no step
    ])  # fmt: skip
    assert python_walk(held) == [1, 2]
    assert python_walk(cycle_of_awaits()) == [1, 2, 3, 4]
    cut = list(range(1, _critical._MAX_DEPTH + 2))
    assert python_walk(chain_deeper_than_the_cut()) == cut


def test_without_a_run_span_the_path_starts_at_the_root_that_ends_last() -> None:
    trace = Trace([made(1, None, "task", 0.0, 2.0), made(2, None, "task", 1.0, 3.0)])
    assert [s.span_id for s in testing.critical_path(trace)] == [2]


def _leaves_one_by_one(path: list[Span]) -> list[Span]:
    """path_steps as a plain loop: a step is a leaf unless the next one is inside it."""
    leaves = []
    for index, step in enumerate(path[1:], start=1):
        after = path[index + 1] if index + 1 < len(path) else None
        inside = False
        node = after.parent if after is not None else None
        while node is not None and not inside:
            inside = node is step
            node = node.parent
        awaited = step.kind == "await" and after is not None
        if awaited and step.attributes.get(AWAITED_SPAN) == after.span_id:
            inside = True
        if not inside:
            leaves.append(step)
    return leaves


def test_the_paths_steps_are_its_leaves_in_time_order() -> None:
    @asynctrace.trace
    async def chain(depth: int, seconds: float) -> None:
        if depth:
            await chain(depth - 1, seconds)
        else:
            await asyncio.sleep(seconds)

    async def main() -> None:
        for _ in range(3):
            await chain(4, 0.1)
        task = asyncio.create_task(chain(2, 0.5))
        await asyncio.gather(sleeper(0.2), chain(3, 0.3))
        await task
        await asyncio.to_thread(time.sleep, 0.01)

    trace = traced_run(main)
    path = _critical.critical_path(trace)
    assert len(path) > 20
    leaves = _critical.path_steps(path)
    assert leaves == _leaves_one_by_one(path)
    assert [s.kind for s in leaves].count("await") >= 4  # every sleep, in time order
    assert leaves == sorted(leaves, key=lambda s: (s.start, s.start_seq))
    assert _critical.path_steps(path[:1]) == [] and _critical.path_steps(path[:2]) == path[1:2]


def test_task_labels_are_made_for_the_first_label_that_could_be_one() -> None:
    task = made(2, 1, "task", 0.0, 1.0, attributes={"asynctrace.task.name": "Task-2"}, name="w")
    trace = Trace([made(1, None, "run", 0.0, 1.0), task])
    labels = _critical._TaskLabels(trace)
    assert labels.get("asyncio.sleep(0)") is None and labels.get("w (x") is None
    assert labels._found is None  # a path of sleeps: never made
    assert labels.get("Task-2 (w)") is task and labels.get("Task-9 (w)") is None
    assert labels._found == {"Task-2 (w)": task}
