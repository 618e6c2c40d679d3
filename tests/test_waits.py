"""Where the waiting went: awaits grouped by what and where, blocked and idle time."""

from __future__ import annotations

import asyncio
import inspect
import math
import os
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import asynctrace
from asynctrace import testing
from asynctrace._model import _waits
from asynctrace._model._spans import Span, Trace


def traced_run(main: Callable[[], Coroutine[Any, Any, Any]], **options: Any) -> Trace:
    options.setdefault("virtual_time", True)
    with asynctrace.tracing(**options) as tracing:
        asyncio.run(main())
    return tracing.trace


def line_of(marker: str, fn: Callable[..., Any]) -> str:
    lines, first = inspect.getsourcelines(fn)
    return f"test_waits.py:{first + next(i for i, t in enumerate(lines) if marker in t)}"


async def crawler() -> None:
    limit = asyncio.Semaphore(5)

    async def fetch(n: int) -> None:
        async with limit:  # the limit
            await asyncio.sleep(1)  # the page

    await asyncio.gather(*(fetch(n) for n in range(20)))


def test_a_semaphore_limited_crawler_waits_on_the_semaphore_and_the_pages() -> None:
    profile = testing.wait_profile(traced_run(crawler))
    by_what = {g.what: g for g in profile.groups}
    pages = by_what["asyncio.sleep"]
    assert (pages.count, pages.total, pages.max) == (20, 20.0, 1.0)
    assert pages.where == line_of("# the page", crawler)
    acquire = by_what["Semaphore.acquire"]
    assert acquire.where == line_of("# the limit", crawler)
    assert acquire.count == 15  # the first five got in at once
    assert acquire.total == 5 * 1 + 5 * 2 + 5 * 3  # three waves waited 1, 2 and 3 s
    assert acquire.max == 3.0
    assert profile.groups[0].what == "Semaphore.acquire"  # the costliest first: 30 s
    assert profile.wall == 4.0 and profile.idle == 4.0  # virtual time: only waiting takes time
    assert profile.blocked == 0.0


def test_the_numbers_of_a_group() -> None:
    async def main() -> None:
        for n in range(1, 101):
            await asyncio.sleep(n)

    (group,) = testing.wait_profile(traced_run(main)).groups
    assert (group.count, group.total, group.max) == (100, 5050.0, 100.0)
    assert (group.mean, group.p50, group.p99) == (50.5, 50.0, 99.0)


def test_an_await_on_a_task_is_grouped_by_the_tasks_coroutine() -> None:
    async def job() -> None:
        await asyncio.sleep(2)

    async def main() -> None:
        for _ in range(3):
            await asyncio.create_task(job())

    by_what = {g.what: g for g in testing.wait_profile(traced_run(main)).groups}
    assert by_what["task job"].count == 3 and by_what["task job"].total == 6.0


def test_blocked_and_idle_time_in_real_time() -> None:
    async def main() -> None:
        time.sleep(0.2)  # holds the loop: not idle, blocked
        await asyncio.sleep(0.3)  # idle: the only task waits

    profile = testing.wait_profile(traced_run(main, virtual_time=False))
    assert 0.2 <= profile.blocked < 0.4
    assert 0.25 < profile.idle < profile.wall - 0.15
    assert testing.wait_profile(Trace([])).groups == []


def test_every_output_of_a_run_shares_one_analysis(monkeypatch: Any, tmp_path: Path) -> None:
    """The JSON timeline, the terminal timeline and its summary, the HTML page: one trace's
    joins, wait profile and critical path are worked out once, however many outputs read them."""
    from asynctrace._model import _critical, _timeline, _waits

    trace = traced_run(crawler)
    calls: dict[str, int] = {}
    for module, name in ((_timeline, "_joins"), (_waits, "_profile"), (_critical, "_run_path")):
        real = getattr(module, name)

        def counted(t: Trace, real: Any = real, name: str = name) -> Any:
            calls[name] = calls.get(name, 0) + 1
            return real(t)

        monkeypatch.setattr(module, name, counted)
    path = testing.critical_path(trace)
    asynctrace.write_json(trace, tmp_path / "t.json")
    asynctrace.write_html(trace, tmp_path / "t.html")
    text = asynctrace.format_timeline(trace, summary=True)
    assert asynctrace.format_timeline(trace, summary=True) == text
    # the critical path was worked out once already, when the run's trace was built (its
    # spans are marked asynctrace.critical): no output works it out again
    assert calls == {"_joins": 1, "_profile": 1}
    names = [s.name for s in path]
    assert len(names) > 1
    path.clear()  # the caller's copy: the trace keeps its own
    assert [s.name for s in testing.critical_path(trace)] == names


try:
    from asynctrace._cbars import running_lengths as c_running_lengths
except ImportError:  # built without a C compiler: only the reference runs
    c_running_lengths = None

needs_c = pytest.mark.skipif(
    c_running_lengths is None and not os.environ.get("CI"), reason="built without a C compiler"
)
# Times on a coarse grid make exact ties (an await that starts as its task does, two pieces
# that meet) common, as under virtual time; the fine ones are anything.
coarse = st.integers(0, 40).map(lambda k: k * 0.125)
times = st.one_of(coarse, st.floats(0, 5, allow_nan=False))


@st.composite
def tasks_and_awaits(draw: st.DrawFn) -> tuple[list[Span], list[Span], float, float]:
    """Tasks (ids 1 to 4, one id may be twice) and awaits on them or on no task, any order."""
    tasks, awaits = [], []
    for _ in range(draw(st.integers(0, 5))):
        a, b = sorted((draw(times), draw(times)))
        task_id = draw(st.integers(1, 4))
        tasks.append(Span(task_id, None, "task", "t", a, b, task_id))
    for _ in range(draw(st.integers(0, 12))):
        a, b = sorted((draw(times), draw(times)))
        track = draw(st.integers(1, 6))
        awaits.append(Span(100, track, "await", "w", a, b, track))
    lo, hi = draw(st.one_of(st.just((0.0, 5.0)), st.tuples(times, times)))
    return tasks, awaits, lo, hi


@needs_c
@settings(max_examples=3000, deadline=None)
@given(tasks_and_awaits())
def test_c_and_python_find_the_same_running_time(
    case: tuple[list[Span], list[Span], float, float],
) -> None:
    assert c_running_lengths is not None
    assert c_running_lengths(*case) == _waits.running_lengths_python(*case)


@needs_c
def test_what_c_refuses_for_the_running_time_the_reference_decides() -> None:
    assert c_running_lengths is not None
    task = Span(1, None, "task", "t", 0.0, 2.0, 1)
    for start, error in ((0, TypeError), (math.nan, ValueError), (math.inf, ValueError)):
        wait = Span(2, 1, "await", "w", start, 1.0, 1)
        with pytest.raises(error):
            c_running_lengths([task], [wait], 0.0, 2.0)
    # running_lengths then runs the reference: an int time is a time like any other
    wait = Span(2, 1, "await", "w", 0, 1, 1)
    assert _waits.running_lengths([task], [wait], 0.0, 2.0) == [1.0]
