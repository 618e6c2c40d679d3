"""The terminal timeline: readable rows on one time axis, never wider than asked, folded, safe."""

from __future__ import annotations

import re

import pytest
from test_chrome import blog_trace

from asynctrace._export._terminal import BLOCK, RUN, WAIT, render_timeline, sanitize, text_width
from asynctrace._model._spans import Span, Trace

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def bar_start(text: str) -> int:
    """The column where bars begin: where the axis line under them begins."""
    axis = next(line for line in text.splitlines() if "┴" in line)
    return len(axis) - len(axis.lstrip(" "))


def bar_of(text: str, label: str, width: int = 100) -> str:
    """The bar cells of the row whose label starts with ``label`` (numbers cut off)."""
    line = next(line for line in text.splitlines() if line.lstrip().startswith(label))
    first = bar_start(text)
    return line[first : width - 18]


def test_blog_rendering_rows_header_and_axis() -> None:
    text = render_timeline(blog_trace(), width=100)
    print("\n" + text)
    lines = text.splitlines()
    assert lines[0] == "asynctrace · gather.py · virtual clock"
    assert lines[1] == "wall 5.000 s · overlap 1.000 s (20%) · 3 tasks · 10 spans"
    labels = [line[: bar_start(text)].rstrip() for line in lines[3:8]]
    assert labels == [
        "Task-1 main()",
        "  gather(task1, task2)",
        "  task3()",
        "Task-2 task1()",
        "Task-3 task2()",
    ]
    assert lines[5].split()[-2:] == ["2.000", "3.000"]  # task3 starts at 2 s, lasts 3 s
    assert "┴" in lines[-2] and lines[-1].rstrip().endswith("s")


def test_blog_bar_positions() -> None:
    text = render_timeline(blog_trace(), width=100)
    task1, task2, task3 = (bar_of(text, k) for k in ("Task-2", "Task-3", "task3()"))
    end1 = len(task1.rstrip())
    end2 = len(task2.rstrip())
    start3 = len(task3) - len(task3.lstrip())
    assert end2 == pytest.approx(end1 / 2, abs=1)  # task2 ends at about half of task1
    assert start3 >= end1 > end2  # task3 starts after both
    assert set(task1.strip()) == {WAIT}  # task1 only sleeps
    main = bar_of(text, "Task-1")
    assert len(main.rstrip()) == len(main)  # main is alive to the end
    assert set(main) == {WAIT}  # waiting on the gather, then on sleep(3)


def test_running_and_blocked_cells() -> None:
    spans = [
        Span(1, None, "task", "t", 0.0, 10.0, 1, attributes={"asynctrace.task.name": "Task-1"}),
        Span(2, 1, "await", "Queue.get", 0.0, 2.0, 1),
        Span(3, 1, "blocked", "blocked", 4.0, 6.0, 1),
    ]
    text = render_timeline(Trace(spans), width=80)
    row = next(line for line in text.splitlines() if line.startswith("Task-1"))
    assert WAIT in row and RUN in row and BLOCK in row
    assert row.index(WAIT) < row.index(RUN) < row.index(BLOCK)


@pytest.mark.parametrize("width", [24, 40, 49, 50, 80, 100, 200])
def test_width_is_never_exceeded(width: int) -> None:
    trace = blog_trace()
    trace.by_id[5].attributes["asynctrace.task.name"] = "日本語のとても長いタスクの名前" * 3
    text = render_timeline(trace, width=width)
    for line in text.splitlines():
        assert text_width(line) <= width, line
    folded = render_timeline(many_tasks(5000), width=width, max_rows=10)
    for line in folded.splitlines():
        assert text_width(line) <= width, line


def many_tasks(n: int, names: int = 1) -> Trace:
    spans = [Span(1, None, "run", "many.py", 0.0, 10.0, 1)]
    for i in range(n):
        a, b = i / n, i / n + 1 + (i % 7)
        sid = 2 + 2 * i
        attrs = {"asynctrace.task.name": f"Task-{i + 1}"}
        name = f"job{i % names}" if names > 1 else "job"
        spans.append(Span(sid, 1, "task", name, a, b, sid, attributes=attrs, start_seq=i))
        spans.append(Span(sid + 1, sid, "await", "asyncio.sleep(1)", a, b, sid))
    return Trace(spans)


def test_many_tasks_of_one_coroutine_are_one_row_then_the_longest() -> None:
    text = render_timeline(many_tasks(5000), width=100, max_rows=40)
    lines = text.splitlines()
    assert any(line.startswith("job() ×5,000 ") for line in lines)
    members = [line for line in lines if line.startswith("  Task-")]
    assert len(members) == 39  # the rows to spare: the longest tasks (7 s), in creation order
    assert all(line.split()[-1] == "7.000" for line in members)
    assert "peak concurrency 5,000 running (0 waiting)" in text
    assert len(lines) <= 40 + 7  # rows, header lines, summary, axis


def test_a_groups_count_is_never_cut_off_a_long_name() -> None:
    spans = [Span(1, None, "run", "svc.py", 0.0, 10.0, 1)]
    for i in range(40):
        sid = 2 + i
        attrs = {"asynctrace.task.name": f"Task-{sid}"}
        name = "RequestHandler.start_the_long_running_protocol"
        spans.append(
            Span(sid, 1, "task", name, 1.0, 9.0, sid, "cancelled", attributes=attrs, start_seq=sid)
        )
    lines = render_timeline(Trace(spans), width=100, max_rows=10).splitlines()
    group = next(line for line in lines if line.startswith("RequestHandler."))
    assert "… ×40 [40 cancelled]" in group  # the name is cut, not its count


def test_folding_with_5000_different_tasks_keeps_the_longest() -> None:
    text = render_timeline(many_tasks(5000, names=5000), width=100, max_rows=40)
    lines = text.splitlines()
    rows = [line for line in lines if line.startswith("Task-")]
    assert len(rows) == 39
    assert all(line.split()[-1] == "7.000" for line in rows)
    summary = next(line for line in lines if line.startswith("…"))
    assert "4,961 more tasks" in summary
    assert "min 1.000 / median 4.000 / max 7.000 s" in summary
    assert "peak concurrency" in text
    assert len(lines) <= 40 + 7


def test_one_task_with_more_calls_than_rows_draws_the_first_calls() -> None:
    # A sequential script: one task awaiting 45 different coroutines in turn.  The rows left
    # after the task's own go to its calls, in the order they first ran; only the rest fold.
    spans = [Span(1, None, "task", "main", 0.0, 45.0, 1, attributes={"asynctrace.task.name": "T"})]
    for i in range(45):
        call, wait = 2 + 2 * i, 3 + 2 * i
        spans.append(Span(call, 1, "coroutine", f"step_{i:02}", i, i + 1.0, 1, start_seq=call))
        spans.append(Span(wait, call, "await", "asyncio.sleep(1)", i, i + 1.0, 1, start_seq=wait))
    lines = render_timeline(Trace(spans), width=100, max_rows=40).splitlines()
    calls = [line.split()[0] for line in lines if line.startswith("  step_")]
    assert calls == [f"step_{i:02}()" for i in range(38)]  # 40 rows: the task, 38, the summary
    assert any(line.startswith("T main() ") for line in lines)
    summary = next(line for line in lines if line.startswith("…"))
    assert summary.startswith("… 7 more rows")


def test_no_escape_codes_without_color_and_colors_by_status() -> None:
    trace = blog_trace()
    trace.by_id[5].status = "error"
    trace.by_id[7].status = "cancelled"
    plain = render_timeline(trace)
    assert "\x1b" not in plain
    colored = render_timeline(trace, color=True)
    task1 = next(line for line in colored.splitlines() if "Task-2" in line)
    task2 = next(line for line in colored.splitlines() if "Task-3" in line)
    assert task1.startswith("\x1b[31m") and task2.startswith("\x1b[33m")
    assert ANSI.sub("", colored) == plain  # colour changes nothing else


def test_control_characters_cannot_reach_the_terminal() -> None:
    trace = blog_trace()
    trace.by_id[5].attributes["asynctrace.task.name"] = "evil\x1b[2J\x1b]0;pwned\x07\r\n\u202e"
    trace.by_id[1].name = "run\x1b[31m"
    text = render_timeline(trace, width=120)
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text
    assert "\u202e" not in text
    assert "evil\\x1b[2J" in text
    assert len(text.splitlines()) == len(render_timeline(blog_trace(), width=120).splitlines())
    assert sanitize("ok name") == "ok name"


def test_a_run_without_tasks() -> None:
    trace = Trace([Span(1, None, "run", "plain.py", 0.0, 0.25, 1)])
    text = render_timeline(trace)
    assert "wall 250.000 ms · overlap 0.000 ms (0%) · 0 tasks · 1 span" in text
    assert "run plain.py" in text


def test_empty_trace_and_bad_arguments() -> None:
    assert "no spans recorded" in render_timeline(Trace([]))
    with pytest.raises(ValueError, match="width=10"):
        render_timeline(blog_trace(), width=10)
    with pytest.raises(ValueError, match="max_rows=0"):
        render_timeline(blog_trace(), max_rows=0)


def test_each_row_looks_only_at_the_awaits_under_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # One task making 2,000 calls in turn, each with its one await: 2,000 call rows grouped,
    # 2,000 awaits on the task's track.  Each call's cells need only its own await; asking
    # every await of the track for each call took 8 s for 20,000 calls.
    from asynctrace._export import _bars

    spans = [Span(1, None, "task", "main", 0.0, 2.0, 1, attributes={"asynctrace.task.name": "T"})]
    for i in range(2000):
        call, wait = 2 + 2 * i, 3 + 2 * i
        t = i / 1000
        spans.append(Span(call, 1, "coroutine", "child", t, t + 0.001, 1, start_seq=call))
        spans.append(
            Span(wait, call, "await", "asyncio.sleep(0)", t, t + 0.0005, 1, start_seq=wait)
        )
    looked_at: list[int] = []
    overlapping = _bars.Marks.overlapping

    def counted(self: _bars.Marks, a: float, b: float) -> list[_bars.Mark]:
        found = overlapping(self, a, b)
        looked_at.append(len(found))
        return found

    # the Python reference, which the C one matches (tests/test_bars.py), counted
    monkeypatch.setattr(_bars, "_C_PAINT_ROWS", None)
    monkeypatch.setattr(_bars.Marks, "overlapping", counted)
    text = render_timeline(Trace(spans), width=100)
    assert "child() ×2,000" in text
    # the task's row at all its awaits; then at most one look per call (a call whose cells show
    # running already needs none), each at its own await and the neighbours at the edges
    task, *calls = looked_at
    assert task == 2000 and 0 < len(calls) <= 2000 and max(calls) <= 3
