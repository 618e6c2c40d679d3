"""The terminal timeline on real programs (issue 15): statuses in plain text, the program's
rows only, an axis from its first span, filters, and traces that would loop forever."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_chrome import blog_trace

from asynctrace._export._terminal import OPEN, render_timeline
from asynctrace._export._terminal_rows import by_key_python, call_depths_python, is_internal_path
from asynctrace._model._spans import KINDS, Kind, Span, Status, Trace

ASYNCIO = "/usr/lib/python3.11/asyncio/selector_events.py"


def task(
    sid: int,
    parent: int | None,
    name: str,
    a: float,
    b: float,
    status: Status = "ok",
    path: str | None = None,
) -> Span:
    attrs: dict[str, object] = {"asynctrace.task.name": f"Task-{sid}"}
    if path is not None:
        attrs["code.file.path"] = path
    return Span(sid, parent, "task", name, a, b, sid, status, attributes=attrs, start_seq=sid)


def row(text: str, label: str) -> str:
    return next(line for line in text.splitlines() if line.lstrip().startswith(label))


def test_statuses_are_marked_without_colour_with_a_legend() -> None:
    trace = blog_trace()
    trace.by_id[5].status = "error"
    trace.by_id[7].status = "cancelled"
    text = render_timeline(trace, width=100)
    assert row(text, "Task-2 task1()").startswith("Task-2 task1() [error] ")
    assert row(text, "Task-3 task2()").startswith("Task-3 task2() [cancelled] ")
    assert text.splitlines()[-1] == "[error] ended by an exception · [cancelled] cancelled"
    assert "[error]" not in render_timeline(blog_trace(), width=100)  # no legend when all ok


def test_status_mark_survives_a_cut_label() -> None:
    trace = blog_trace()
    trace.by_id[5].attributes["asynctrace.task.name"] = "a-very-long-task-name" * 5
    trace.by_id[5].status = "timeout"
    line = row(render_timeline(trace, width=60), "a-very")
    assert "… [timeout]" in line


def test_an_unfinished_span_is_open_ended_and_marked() -> None:
    spans = [
        Span(1, None, "run", "killed.py", 0.0, 2.0, 1, status="unfinished"),
        task(2, 1, "main", 0.0, 2.0, status="unfinished"),
        task(3, 2, "worker", 0.0, 1.0),
    ]
    text = render_timeline(Trace(spans), width=80)
    main = row(text, "Task-2 main()")
    assert main.startswith("Task-2 main() [unfinished]")
    assert main.split()[-3].endswith(OPEN)  # the bar's last cell: it did not end there
    assert OPEN not in row(text, "Task-3 worker()")
    assert "(2 still open)" in text.splitlines()[1]  # 3 spans, of which 2 rebuilt at a cut
    assert "[unfinished] → still open when the trace ended" in text


def test_the_label_column_grows_with_the_width() -> None:
    trace = blog_trace()
    name = "fetch_page_with_retries_and_backoff"  # 35 characters: cut at 28 before
    trace.by_id[5].name = name
    assert f"Task-2 {name}()" in render_timeline(trace, width=120)
    assert f"Task-2 {name}()" not in render_timeline(trace, width=60)  # within reason


def test_the_axis_starts_at_the_programs_first_span() -> None:
    spans = [
        Span(1, None, "run", "server.py", 0.0, 0.3, 1),  # 200 ms of imports first
        task(2, 1, "main", 0.2, 0.3),
    ]
    text = render_timeline(Trace(spans), width=80)
    assert "axis from 200.000 ms (the program's first span)" in text
    bar = row(text, "Task-2 main()").split()[2]
    assert len(bar) > 40  # the whole bar width, not its last third
    assert text.splitlines()[-1].split()[0] == "200"  # ticks are trace time


def semaphore_trace() -> Trace:
    """main gathers 10 fetches; 2 hold the semaphore and sleep, 8 wait on it."""
    spans = [Span(1, None, "run", "scraper.py", 0.0, 1.0, 1), task(2, 1, "main", 0.0, 1.0)]
    spans.append(Span(3, 2, "gather", "gather(fetch × 10)", 0.0, 1.0, 2))
    spans.append(Span(4, 3, "await", "gather(fetch × 10)", 0.0, 1.0, 2))
    for i in range(10):
        sid = 10 + 3 * i
        spans.append(task(sid, 3, "fetch", 0.0, 1.0))
        if i >= 2:
            spans.append(Span(sid + 1, sid, "await", "Semaphore.acquire", 0.0, 0.5, sid))
        spans.append(Span(sid + 2, sid, "await", "asyncio.sleep(0.5)", 0.5, 1.0, sid))
    return Trace(spans)


def test_tasks_waiting_on_a_semaphore_are_waiting_not_running() -> None:
    text = render_timeline(semaphore_trace(), width=100, max_rows=5)
    assert "peak concurrency 10 running (1 waiting) at t=0.500 s" in text
    assert "peak concurrency 2 running (9 waiting)" not in text
    text = text.replace("10 running (1 waiting) at t=0.500", "")
    assert "running" not in text or "2 running (9 waiting) at t=0.000" in text


def server_trace() -> Trace:
    spans = [Span(1, None, "run", "server.py", 0.0, 1.0, 1)]
    spans.append(task(2, 1, "main", 0.0, 1.0, path="/app/server.py"))
    spans.append(task(3, 2, "BaseSelectorEventLoop._accept_connection2", 0.1, 0.2, path=ASYNCIO))
    spans.append(task(4, 3, "handle", 0.2, 0.9, path="/app/server.py"))
    return Trace(spans)


def test_asyncio_internals_are_hidden_unless_asked_for() -> None:
    text = render_timeline(server_trace(), width=100)
    assert "_accept_connection2" not in text
    assert "Task-4 handle()" in text
    assert "1 asyncio-internal row hidden (--internals)" in text
    shown = render_timeline(server_trace(), width=140, internals=True)
    assert "Task-3 BaseSelectorEventLoop._accept_connection2()" in shown
    assert "hidden" not in shown


def test_installed_libraries_are_not_internal() -> None:
    assert is_internal_path(asyncio.__file__)
    version = f"python3.{sys.version_info.minor}"
    # a virtual environment's library, a plain pip install's, Debian's
    for prefix in (sys.prefix, sys.base_prefix, "/usr/local"):
        for packages in ("site-packages", "dist-packages"):
            path = os.path.join(prefix, "lib", version, packages, "aiohttp", "client.py")
            assert not is_internal_path(path), path
    stdlib = os.path.dirname(os.__file__)
    assert not is_internal_path(os.path.join(stdlib, "site-packages", "aiohttp", "web.py"))
    assert is_internal_path(os.path.join(stdlib, "concurrent", "futures", "thread.py"))


def test_filter_keeps_matches_with_their_ancestors() -> None:
    trace = semaphore_trace()
    text = render_timeline(trace, width=100, filter="Task-13 *")
    axis = next(line for line in text.splitlines() if "┴" in line)
    first = len(axis) - len(axis.lstrip(" "))
    labels = [line[:first].strip() for line in text.splitlines() if "░" in line]
    assert labels == ["Task-2 main()", "gather(fetch × 10)", "Task-13 fetch()"]
    assert "filter 'Task-13 *': 1 span match" in text
    # no glob characters: a substring; an await's name matches too, and keeps its task
    sub = render_timeline(trace, width=100, filter="Semaphore")
    assert sum("fetch()" in line for line in sub.splitlines()) == 8
    assert "no row to draw" in render_timeline(trace, filter="nothing-like-this")


def test_depth_and_window() -> None:
    text = render_timeline(blog_trace(), width=100, depth=0)
    assert "gather(task1, task2)" not in text and "task3()" not in text
    assert "2 rows beyond the depth" in text
    window = render_timeline(blog_trace(), width=100, window=(2.5, None))
    assert "Task-2 task1()" not in window and "  task3()" in window  # task1 ended at 2 s
    assert "window 2.500–5.000 s" in window
    with pytest.raises(ValueError, match="window="):
        render_timeline(blog_trace(), window=(3.0, 1.0))
    with pytest.raises(ValueError, match="depth=-1"):
        render_timeline(blog_trace(), depth=-1)


def test_tiny_and_huge_ranges_have_sensible_units_and_ticks() -> None:
    tiny = Trace([task(2, None, "main", 0.0, 2e-7), task(3, 2, "w", 0.0, 1e-7)])
    text = render_timeline(tiny, width=80)
    assert text.splitlines()[-1].split()[-1] == "ns"
    assert "0.0002" not in text and "e-" not in text
    zero = Trace([task(2, None, "main", 0.0, 0.0), task(3, 2, "w", 0.0, 0.0)])
    text = render_timeline(zero, width=80)
    assert "wall 0 s" in text and "every span at t=0.000 s" in text
    assert text.splitlines()[-1].split() == ["0", "s"]
    huge = Trace([task(2, None, "main", 0.0, 86400.0 * 3)])
    text = render_timeline(huge, width=80)
    assert "e+" not in text and "259200.0" in text


@pytest.mark.parametrize(
    ("seconds", "labels"),
    [
        (2.0, ["0", "0.25", "0.50", "0.75", "1.00", "1.25", "1.50", "1.75", "2.00", "s"]),
        (3.0, ["0", "0.5", "1.0", "1.5", "2.0", "2.5", "3.0", "s"]),
        (20.0, ["0", "2.5", "5.0", "7.5", "10.0", "12.5", "15.0", "17.5", "20.0", "s"]),
        (200.0, ["0", "25", "50", "75", "100", "125", "150", "175", "200", "s"]),
    ],
)
def test_axis_labels_say_their_ticks_times_exactly(seconds: float, labels: list[str]) -> None:
    # a tick every 0.25 s is labelled 0.25, 0.50, 0.75 (not 0.2, 0.5, 0.8); one every 0.5 s,
    # 0.5, 1.0, 1.5 (no digit that says nothing)
    trace = Trace([task(2, None, "main", 0.0, seconds)])
    assert render_timeline(trace, width=100).splitlines()[-1].split() == labels


@pytest.fixture
def alarm() -> Iterator[None]:
    """Fail a test that loops forever instead of hanging the suite."""

    def stop(signum: int, frame: object) -> None:
        raise TimeoutError("render_timeline did not finish: a parent walk never ended")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(5)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def test_every_parent_walk_stops_at_a_cycle(alarm: None) -> None:
    """Trace cuts cycles when it is built; a trace mutated after that must still draw."""
    trace = blog_trace()
    call = next(s for s in trace.spans if s.kind == "coroutine")  # task3(), on main's track
    gather = next(s for s in trace.spans if s.kind == "gather")
    owner = trace.by_id[call.track]
    call.parent, gather.parent = gather, call  # a cycle that never reaches the owner
    owner.parent = owner  # and a span its own ancestor
    assert "Task-1 main()" in render_timeline(trace, width=100)
    assert "Task-1 main()" in render_timeline(trace, width=100, internals=True, depth=1)
    assert "task3()" in render_timeline(trace, width=100, filter="task3")
    assert "peak concurrency" in render_timeline(trace, width=100, max_rows=2)


try:
    from asynctrace._cbars import call_depths as c_call_depths
except ImportError:  # built without a C compiler: only the reference runs
    c_call_depths = None


@pytest.mark.skipif(
    c_call_depths is None and not os.environ.get("CI"), reason="built without a C compiler"
)
@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.sampled_from(KINDS), st.integers(1, 2))))
def test_c_and_python_find_the_same_call_depths(links: list[tuple[int, Kind, int]]) -> None:
    # spans 1.. whose parent is any span (a later one, itself: cycles made after the build),
    # of any kind and on track 1 or 2; span 1 is the owner
    spans = [
        Span(i + 1, None, kind, "f", 0.0, 1.0, track) for i, (_, kind, track) in enumerate(links)
    ]
    for span, (parent, _, _) in zip(spans, links, strict=True):
        span.parent = spans[parent] if parent < len(spans) else None
    if not spans:
        return
    owner, calls = spans[0], [s for s in spans[1:] if s.kind in ("coroutine", "gather")]
    assert c_call_depths is not None
    for walk in (0, 3, len(spans)):
        assert c_call_depths(calls, owner, walk) == call_depths_python(calls, owner, walk)


@pytest.mark.skipif(
    c_call_depths is None and not os.environ.get("CI"), reason="built without a C compiler"
)
@given(st.lists(st.tuples(st.one_of(st.integers(0, 3), st.text(max_size=1)), st.floats())))
def test_c_and_python_group_by_key_alike(pairs: list[tuple[int | str, float]]) -> None:
    from asynctrace._cbars import by_key as c_by_key

    keys, values = [k for k, _ in pairs], [v for _, v in pairs]
    # the same values (the same objects: NaN too), the keys in the order first seen
    assert list(c_by_key(keys, values).items()) == list(by_key_python(keys, values).items())
    with pytest.raises(ValueError):
        c_by_key(keys, [*values, 0.0])
