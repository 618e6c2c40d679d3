"""Tests for asynctrace.testing: the assertions over a hand-built trace, with exact messages."""

from __future__ import annotations

from pathlib import Path

import pytest

import asynctrace.testing as at
from asynctrace._model._spans import Kind, Span, Trace
from asynctrace.testing import (
    TraceAssertionError,
    assert_duration,
    assert_max_concurrency,
    assert_min_concurrency,
    assert_order,
    assert_overlap,
    assert_sequential,
    assert_tree,
    assert_within,
    find_span,
    find_spans,
)


def mk(
    sid: int,
    parent: int | None,
    kind: Kind,
    name: str,
    start: float,
    end: float,
    start_seq: int,
    end_seq: int,
    track: int | None = None,
    attributes: dict[str, object] | None = None,
) -> Span:
    return Span(
        span_id=sid,
        parent_id=parent,
        kind=kind,
        name=name,
        start=start,
        end=end,
        track=sid if track is None else track,
        start_seq=start_seq,
        end_seq=end_seq,
        attributes=dict(attributes or {}),
    )


def blog_trace(*, task3_first: bool = False, clock: str = "virtual") -> Trace:
    """The blog's gather example: task1 and task2 gathered, then task3, under a virtual clock.

    task1 ends at 2.0 exactly and task3 starts at 2.0 exactly; the recorder's sequence says
    task1 ended first, or with ``task3_first`` that task3 started first.
    """
    t1_end, t3_start = (13, 11) if task3_first else (11, 13)
    spans = [
        mk(1, None, "run", "gather.py", 0.0, 5.0, 1, 18),
        mk(2, 1, "task", "main", 0.0, 5.0, 2, 17, attributes={"asynctrace.task.name": "Task-1"}),
        mk(3, 2, "gather", "gather(task1, task2)", 0.0, 2.0, 3, 12, track=2),
        mk(
            4,
            3,
            "task",
            "task1",
            0.0,
            2.0,
            4,
            t1_end,
            attributes={"asynctrace.task.name": "Task-2"},
        ),
        mk(5, 3, "task", "task2", 0.0, 1.0, 5, 9, attributes={"asynctrace.task.name": "Task-3"}),
        mk(6, 4, "await", "asyncio.sleep(2)", 0.0, 2.0, 6, 10, track=4),
        mk(7, 5, "await", "asyncio.sleep(1)", 0.0, 1.0, 7, 8, track=5),
        mk(8, 2, "coroutine", "task3", 2.0, 5.0, t3_start, 16, track=2),
        mk(9, 8, "await", "asyncio.sleep(3)", 2.0, 5.0, 14, 15, track=2),
    ]
    return Trace(spans, clock=clock)


def workers_trace(*, w3_first: bool = False) -> Trace:
    """Three overlapping workers (w1 0..2, w2 1..4, w3 2..5) and a late one (w4 6..7).

    w1 ends at 2.0 exactly when w3 starts; by default the recorder saw w1 end first.
    """
    w1_end, w3_start = (6, 5) if w3_first else (5, 6)
    spans = [
        mk(1, None, "run", "workers.py", 0.0, 7.0, 1, 12),
        mk(2, 1, "task", "worker-1", 0.0, 2.0, 2, w1_end),
        mk(3, 1, "task", "worker-2", 1.0, 4.0, 3, 7),
        mk(4, 1, "task", "worker-3", 2.0, 5.0, w3_start, 8),
        mk(5, 1, "task", "worker-4", 6.0, 7.0, 9, 10),
    ]
    return Trace(spans, clock="virtual")


def fail(func: object, *args: object, **kwargs: object) -> TraceAssertionError:
    assert callable(func)
    with pytest.raises(TraceAssertionError) as info:
        func(*args, **kwargs)
    return info.value


TIMELINE_1_3 = """
timeline (virtual clock, 0.000 s to 5.000 s, one column = 0.125 s):
  task1  [0.000, 2.000)  |################........................|
  task3  [2.000, 5.000)  |................########################|"""


# ---------------------------------------------------------------- public surface


def test_public_names_are_pinned_and_sorted() -> None:
    assert at.__all__ == sorted(at.__all__)
    assert at.__all__ == [
        "ExploreFailure",
        "HasTrace",
        "SpanRef",
        "TraceAssertionError",
        "TraceSource",
        "assert_critical_path",
        "assert_duration",
        "assert_max_concurrency",
        "assert_min_concurrency",
        "assert_no_blocking",
        "assert_no_misuse",
        "assert_order",
        "assert_overlap",
        "assert_sequential",
        "assert_tree",
        "assert_within",
        "critical_path",
        "explore",
        "find_span",
        "find_spans",
        "wait_profile",
    ]


def test_module_does_not_import_pytest() -> None:
    with open(at.__file__, encoding="utf-8") as f:
        assert "import pytest" not in f.read()


def test_error_is_an_assertion_error_with_trace_spans_and_timeline_path() -> None:
    trace = blog_trace()
    err = fail(assert_overlap, trace, "task1", "task3")
    assert isinstance(err, AssertionError)
    assert err.trace is trace
    assert [s.name for s in err.spans] == ["task1", "task3"]
    assert err.timeline_path is None
    assert str(err) == err.message
    err.timeline_path = "/tmp/asynctrace/test_x.json"
    assert str(err) == err.message + "\nJSON timeline: /tmp/asynctrace/test_x.json"


class FakeTracing:
    """Stands for the object of `with asynctrace.tracing() as t:` and for the atrace fixture."""

    def __init__(self, trace: Trace) -> None:
        self.reads = 0
        self._trace = trace

    @property
    def trace(self) -> Trace:
        self.reads += 1
        return self._trace


def test_assertions_accept_an_object_with_a_trace_property() -> None:
    source = FakeTracing(blog_trace())
    assert_overlap(source, "task1", "task2")
    assert source.reads == 1
    assert [s.name for s in find_spans(source, "task?", kind="task")] == ["task1", "task2"]
    err = fail(assert_sequential, source, "task2", "task1")
    assert err.trace is source._trace


def test_something_without_a_trace_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"trace=42 is neither a Trace nor has a .trace property"):
        assert_overlap(42, "task1", "task2")  # type: ignore[arg-type]


# ---------------------------------------------------------------- queries


def test_find_spans_by_glob_kind_and_attribute() -> None:
    trace = blog_trace()
    assert [s.name for s in find_spans(trace, "task*")] == ["task1", "task2", "task3"]
    assert [s.name for s in find_spans(trace, "task*", kind="task")] == ["task1", "task2"]
    assert [s.name for s in find_spans(trace, kind="await")] == [
        "asyncio.sleep(2)",
        "asyncio.sleep(1)",
        "asyncio.sleep(3)",
    ]
    found = find_spans(trace, **{"asynctrace.task.name": "Task-3"})
    assert [s.name for s in found] == ["task2"]
    assert find_spans(trace, "nothing*") == []


def test_find_spans_rejects_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match=r"kind='tasks' is not a span kind; use one of run, task"):
        find_spans(blog_trace(), kind="tasks")


def test_a_name_with_glob_characters_matches_itself() -> None:
    trace = Trace([mk(1, None, "task", "fetch[1]", 0.0, 1.0, 1, 2)])
    assert find_span(trace, "fetch[1]").span_id == 1


def test_find_span_returns_the_one_match() -> None:
    trace = blog_trace()
    assert find_span(trace, "task3").kind == "coroutine"
    assert find_span(trace, "*sleep(3)").span_id == 9
    assert find_span(trace, "task*", kind="coroutine").name == "task3"


def test_unknown_name_lists_the_existing_spans_by_kind() -> None:
    err = fail(find_span, blog_trace(), "tsk1")
    assert str(err) == (
        "no span matches 'tsk1' (did you mean 'task1' or 'task3' or 'task2'?);"
        " the trace has 9 spans:\n"
        "  run: gather.py\n"
        "  task: main, task1, task2\n"
        "  coroutine: task3\n"
        "  gather: gather(task1, task2)\n"
        "  await: asyncio.sleep(2), asyncio.sleep(1), asyncio.sleep(3)"
    )
    assert err.spans == ()


def test_unknown_name_listing_is_deduplicated_and_truncated() -> None:
    spans = [mk(i, None, "task", f"job-{i % 20}", 0.0, 1.0, i, 100 + i) for i in range(40)]
    err = fail(find_span, Trace(spans), "zzz")
    lines = str(err).splitlines()
    assert lines[0] == "no span matches 'zzz'; the trace has 40 spans:"
    assert lines[1].startswith("  task: job-0 (x2), job-1 (x2), ")
    assert lines[1].endswith(", job-11 (x2), ... (8 more)")


def test_unknown_name_in_an_empty_trace() -> None:
    err = fail(assert_overlap, Trace([]), "task1", "task2")
    assert str(err) == "no span matches 'task1': the trace has no spans"


def test_ambiguous_name_asks_for_a_span_or_a_narrower_glob() -> None:
    err = fail(find_span, blog_trace(), "task?")
    assert str(err) == (
        "'task?' matches 3 spans; pass one of them as a Span (from find_spans) or a narrower"
        " glob:\n"
        "  task1 (task) [0.000, 2.000)\n"
        "  task2 (task) [0.000, 1.000)\n"
        "  task3 (coroutine) [2.000, 5.000)"
    )
    assert [s.name for s in err.spans] == ["task1", "task2", "task3"]


def test_a_plain_name_matching_several_spans_is_ambiguous_for_pairwise_assertions() -> None:
    trace = Trace(
        [
            mk(1, None, "task", "worker", 0.0, 1.0, 1, 3),
            mk(2, None, "task", "worker", 0.5, 2.0, 2, 4),
        ]
    )
    err = fail(assert_overlap, trace, "worker", "worker")
    assert str(err).startswith("'worker' matches 2 spans; pass one of them as a Span")
    first, second = find_spans(trace, "worker")
    assert_overlap(trace, first, second)


def test_a_name_shared_with_await_spans_selects_the_one_that_is_not_an_await() -> None:
    spans = [
        *blog_trace().spans,
        mk(10, 2, "await", "gather(task1, task2)", 0.0, 2.0, 3, 12, track=2),
        mk(11, 2, "await", "Task-2 (task1)", 0.0, 2.0, 4, 12, track=2),
        mk(12, 2, "await", "Task-2 (task1)", 0.0, 2.0, 5, 12, track=2),
    ]
    trace = Trace(spans, clock="virtual")
    assert find_span(trace, "gather(task1, task2)").kind == "gather"
    assert find_span(trace, "gather(task1, task2)", kind="await").span_id == 10
    assert_within(trace, "task1", "gather(task1, task2)")
    err = fail(find_span, trace, "Task-2 (task1)")
    assert str(err).startswith("'Task-2 (task1)' matches 2 spans; pass one of them as a Span")
    err = fail(find_span, trace, "gather(*", kind="thread")
    assert str(err).startswith(
        "no span of kind 'thread' matches 'gather(*' (it matches spans of kind gather, await);"
    )


def test_a_wrong_argument_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"span 3 is a int; pass a name, a glob or a Span"):
        assert_overlap(blog_trace(), "task1", 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"assert_overlap\(\) got 1 spans; pass at least 2"):
        assert_overlap(blog_trace(), "task1")


# ---------------------------------------------------------------- overlap


def test_overlap_passes_for_gathered_tasks_by_name_glob_and_span() -> None:
    trace = blog_trace()
    assert_overlap(trace, "task1", "task2")
    assert_overlap(trace, "*sleep(2)", "*sleep(1)", "gather(*")
    assert_overlap(trace, find_span(trace, "task1"), "task2")


def test_overlap_fails_when_one_ends_exactly_as_the_other_starts() -> None:
    err = fail(assert_overlap, blog_trace(), "task1", "task3")
    assert str(err) == (
        "task1 ends at 2.000 s, task3 starts at 2.000 s: no overlap"
        " (task1 [0.000, 2.000) and task3 [2.000, 5.000));"
        " equal times, the recorder saw task1 end (seq 11) before task3 start (seq 13)\n"
        + TIMELINE_1_3
    )


def test_overlap_at_equal_times_passes_when_the_recorder_saw_the_start_first() -> None:
    assert_overlap(blog_trace(task3_first=True), "task1", "task3")
    assert_overlap(blog_trace(task3_first=True), "task3", "task1")


def test_overlap_of_touching_intervals_without_order_is_no_overlap() -> None:
    trace = Trace(
        [mk(1, None, "task", "a", 0.0, 1.0, 0, 0), mk(2, None, "task", "b", 1.0, 2.0, 0, 0)]
    )
    err = fail(assert_overlap, trace, "b", "a")
    assert str(err).splitlines()[0] == (
        "a ends at 1.000 s, b starts at 1.000 s: no overlap"
        " (a [0.000, 1.000) and b [1.000, 2.000)); equal times and equal seq 0:"
        " half-open intervals that touch do not overlap"
    )


def test_overlap_lists_every_pair_that_does_not_overlap() -> None:
    err = fail(assert_overlap, blog_trace(), "task1", "task2", "task3")
    assert str(err).splitlines()[:2] == [
        "task1 ends at 2.000 s, task3 starts at 2.000 s: no overlap"
        " (task1 [0.000, 2.000) and task3 [2.000, 5.000));"
        " equal times, the recorder saw task1 end (seq 11) before task3 start (seq 13)",
        "task2 ends at 1.000 s, task3 starts at 2.000 s: no overlap"
        " (task2 [0.000, 1.000) and task3 [2.000, 5.000))",
    ]


def test_times_that_differ_below_a_millisecond_are_printed_with_more_digits() -> None:
    trace = Trace(
        [mk(1, None, "task", "a", 0.0, 1.0, 1, 2), mk(2, None, "task", "b", 1.0004, 2.0, 3, 4)]
    )
    err = fail(assert_overlap, trace, "a", "b")
    assert str(err).splitlines()[0] == (
        "a ends at 1.000000 s, b starts at 1.000400 s: no overlap"
        " (a [0.000000, 1.000000) and b [1.000400, 2.000000))"
    )


def test_the_timeline_prints_every_row_with_the_same_digits() -> None:
    """One row needs a millisecond's digits, the other a microsecond's: both get six, so
    that the columns line up."""
    trace = Trace(
        [mk(1, None, "task", "a", 0.0, 1.0, 1, 2), mk(2, None, "task", "b", 1.0004, 2.0, 3, 4)]
    )
    err = fail(assert_overlap, trace, "a", "b")
    assert str(err).splitlines()[-2:] == [
        "  a  [0.000000, 1.000000)  |####################....................|",
        "  b  [1.000400, 2.000000)  |....................####################|",
    ]


# ---------------------------------------------------------------- sequential and order


def test_sequential_passes_when_the_recorder_saw_the_end_first() -> None:
    trace = blog_trace()
    assert_sequential(trace, "task2", "task3")
    assert_sequential(trace, "task1", "task3")  # both at 2.0; task1's end has the lower seq
    assert_sequential(trace, "*sleep(1)", find_span(trace, "asyncio.sleep(3)"))


def test_sequential_fails_at_equal_times_when_the_next_one_started_first() -> None:
    err = fail(assert_sequential, blog_trace(task3_first=True), "task1", "task3")
    assert str(err) == (
        "task1 ends at 2.000 s, task3 starts at 2.000 s: not sequential, task3 starts before"
        " task1 ends (task1 [0.000, 2.000) and task3 [2.000, 5.000));"
        " equal times, the recorder saw task3 start (seq 11) before task1 end (seq 13)\n"
        + TIMELINE_1_3
    )


def test_sequential_fails_for_concurrent_tasks_with_the_numbers() -> None:
    err = fail(assert_sequential, blog_trace(), "task2", "task1")
    assert str(err) == (
        "task2 ends at 1.000 s, task1 starts at 0.000 s: not sequential, task1 starts before"
        " task2 ends (task2 [0.000, 1.000) and task1 [0.000, 2.000))\n"
        "\n"
        "timeline (virtual clock, 0.000 s to 2.000 s, one column = 0.05 s):\n"
        "  task2  [0.000, 1.000)  |####################....................|\n"
        "  task1  [0.000, 2.000)  |########################################|"
    )


def test_order_by_start_and_by_end() -> None:
    trace = blog_trace()
    assert_order(trace, "task1", "task2", "task3")
    assert_order(trace, "task2", "task1", "task3", by="end")


def test_order_by_start_fails_at_equal_times_by_seq() -> None:
    err = fail(assert_order, blog_trace(), "task2", "task1")
    assert str(err).splitlines()[0] == (
        "task2 starts at 0.000 s, task1 starts at 0.000 s: out of order by start, task1 starts"
        " first (task2 [0.000, 1.000) and task1 [0.000, 2.000));"
        " equal times, the recorder saw task1 start (seq 4) before task2 start (seq 5)"
    )


def test_order_by_end_fails_with_the_numbers() -> None:
    err = fail(assert_order, blog_trace(), "task1", "task2", by="end")
    assert str(err).splitlines()[0] == (
        "task1 ends at 2.000 s, task2 ends at 1.000 s: out of order by end, task2 ends first"
        " (task1 [0.000, 2.000) and task2 [0.000, 1.000))"
    )


def test_order_at_equal_times_follows_seq_both_ways() -> None:
    assert_order(blog_trace(), "task1", "task2")  # both start at 0.0, seq 4 < 5
    assert_order(blog_trace(), "task1", "task3", by="end")
    assert_order(workers_trace(), "worker-1", "worker-3", by="start")
    err = fail(assert_order, workers_trace(), "worker-3", "worker-1")
    assert str(err).splitlines()[0] == (
        "worker-3 starts at 2.000 s, worker-1 starts at 0.000 s: out of order by start, worker-1"
        " starts first (worker-3 [2.000, 5.000) and worker-1 [0.000, 2.000))"
    )


def test_order_rejects_a_wrong_by() -> None:
    with pytest.raises(ValueError, match=r"by='middle' is not a span event; use by='start' or"):
        assert_order(blog_trace(), "task1", "task2", by="middle")


# ---------------------------------------------------------------- within and duration


def test_within_passes_for_time_containment_including_equal_ends() -> None:
    trace = blog_trace()
    assert_within(trace, "asyncio.sleep(2)", "task1")
    assert_within(trace, "task1", "gather(*")
    assert_within(trace, "task3", "main")


def test_within_fails_with_both_ends_explained() -> None:
    err = fail(assert_within, blog_trace(), "main", "task3")
    assert str(err) == (
        "main starts at 0.000 s, task3 starts at 2.000 s: not within, main starts before task3"
        " (main [0.000, 5.000) and task3 [2.000, 5.000))\n"
        "main ends at 5.000 s, task3 ends at 5.000 s: not within, main ends after task3"
        " (main [0.000, 5.000) and task3 [2.000, 5.000));"
        " equal times, the recorder saw task3 end (seq 16) before main end (seq 17)\n"
        "\n"
        "timeline (virtual clock, 0.000 s to 5.000 s, one column = 0.125 s):\n"
        "  task3  [2.000, 5.000)  |................########################|\n"
        "  main   [0.000, 5.000)  |########################################|"
    )


def test_duration_is_exact_under_the_virtual_clock() -> None:
    trace = blog_trace()
    assert_duration(trace, "task3", 3.0)
    assert_duration(trace, "task1", 2)
    err = fail(assert_duration, trace, "task3", 3.001)
    assert str(err).splitlines()[0] == (
        "task3 lasted 3.000 s [2.000, 5.000), expected 3.001 s +- 1e-09 s (virtual clock):"
        " off by -0.001 s"
    )


def test_duration_failure_message() -> None:
    err = fail(assert_duration, blog_trace(), "task3", 2.0)
    assert str(err) == (
        "task3 lasted 3.000 s [2.000, 5.000), expected 2.000 s +- 1e-09 s (virtual clock):"
        " off by +1.000 s\n"
        "\n"
        "timeline (virtual clock, 2.000 s to 5.000 s, one column = 0.075 s):\n"
        "  task3  [2.000, 5.000)  |########################################|"
    )


def test_duration_default_tolerance_on_the_monotonic_clock() -> None:
    trace = blog_trace(clock="monotonic")
    assert_duration(trace, "task3", 2.75)  # 0.05 + 0.275 s allowed
    err = fail(assert_duration, trace, "task3", 2.5)
    assert str(err).splitlines()[0] == (
        "task3 lasted 3.000 s [2.000, 5.000), expected 2.500 s +- 0.3 s (monotonic clock):"
        " off by +0.500 s"
    )
    assert_duration(trace, "task3", 2.5, tolerance=0.5)


def test_duration_rejects_negative_numbers() -> None:
    with pytest.raises(ValueError, match=r"seconds=-1 is negative"):
        assert_duration(blog_trace(), "task3", -1)
    with pytest.raises(ValueError, match=r"tolerance=-0.1 is negative"):
        assert_duration(blog_trace(), "task3", 3, tolerance=-0.1)


# ---------------------------------------------------------------- concurrency


def test_max_concurrency_passes_for_the_blog_example() -> None:
    assert_max_concurrency(blog_trace(), "task*", 2)
    assert_max_concurrency(workers_trace(), "worker-*", 2)


def test_max_concurrency_reports_the_moment_and_the_spans_alive() -> None:
    err = fail(assert_max_concurrency, workers_trace(w3_first=True), "worker-*", 2)
    assert str(err) == (
        "at most 2 spans matching 'worker-*' may be alive at once, but 3 were at 2.000 s, when"
        " worker-3 started: worker-1 [0.000, 2.000), worker-2 [1.000, 4.000),"
        " worker-3 [2.000, 5.000); peak 3 at 2.000 s\n"
        "\n"
        "timeline (virtual clock, 0.000 s to 7.000 s, one column = 0.175 s):\n"
        "  worker-1  [0.000, 2.000)  |############............................|\n"
        "  worker-2  [1.000, 4.000)  |.....##################.................|\n"
        "  worker-3  [2.000, 5.000)  |...........##################...........|\n"
        "  worker-4  [6.000, 7.000)  |..................................######|\n"
        "                                        ^ 2.000 s"
    )
    assert [s.name for s in err.spans] == ["worker-1", "worker-2", "worker-3", "worker-4"]


def test_max_concurrency_of_one_with_a_list_of_spans_and_names() -> None:
    trace = blog_trace()
    err = fail(assert_max_concurrency, trace, [find_span(trace, "task1"), "task2"], 1)
    assert str(err).splitlines()[0] == (
        "at most 1 span matching 'task1', 'task2' may be alive at once, but 2 were at 0.000 s,"
        " when task2 started: task1 [0.000, 2.000), task2 [0.000, 1.000); peak 2 at 0.000 s"
    )


def test_max_concurrency_with_kind_filter() -> None:
    assert_max_concurrency(blog_trace(), "*", 1, kind="coroutine")
    err = fail(assert_max_concurrency, blog_trace(), "task*", 0, kind="task")
    assert str(err).startswith("at most 0 spans matching 'task*' (kind task) may be alive")


def test_min_concurrency_passes_and_reports_the_peak() -> None:
    assert_min_concurrency(blog_trace(), "task*", 2)
    assert_min_concurrency(workers_trace(w3_first=True), "worker-*", 3)
    err = fail(assert_min_concurrency, workers_trace(), "worker-*", 3)
    assert str(err).splitlines()[0] == (
        "at least 3 spans matching 'worker-*' should be alive at once, but the peak was 2,"
        " first reached at 1.000 s: worker-1 [0.000, 2.000), worker-2 [1.000, 4.000)"
    )
    assert str(err).splitlines()[-1] == " " * 34 + "^ 1.000 s"  # column 5 of the bar


def test_concurrency_of_a_pattern_that_matches_nothing_fails() -> None:
    err = fail(assert_max_concurrency, blog_trace(), "worker*", 2)
    assert str(err).startswith("no span matches 'worker*'; the trace has 9 spans:")
    err = fail(assert_min_concurrency, blog_trace(), "task*", 1, kind="thread")
    assert str(err).splitlines()[0] == (
        "no span of kind 'thread' matches 'task*' (it matches spans of kind task, coroutine);"
        " the trace has 9 spans:"
    )


def test_concurrency_rejects_a_bad_n() -> None:
    with pytest.raises(ValueError, match=r"assert_min_concurrency\(\) got n=0; pass a whole"):
        assert_min_concurrency(blog_trace(), "task*", 0)
    with pytest.raises(ValueError, match=r"got n=True"):
        assert_max_concurrency(blog_trace(), "task*", True)


def test_empty_spans_are_never_alive() -> None:
    trace = Trace([mk(1, None, "task", "a", 1.0, 1.0, 0, 0), mk(2, None, "task", "b", 0, 2, 0, 0)])
    assert_max_concurrency(trace, "*", 1)
    err = fail(assert_overlap, trace, "a", "b")
    assert str(err).splitlines()[0] == "a is empty [1.000, 1.000): an empty span overlaps nothing"


# ---------------------------------------------------------------- tree

BLOG_OUTLINE = """
    gather.py
      main
        gather(task1, task2)
          task1
            asyncio.sleep(2)
          task2
            asyncio.sleep(1)
        task3
          asyncio.sleep(3)
"""


def test_tree_matches_the_full_outline_exactly() -> None:
    assert_tree(blog_trace(), BLOG_OUTLINE, exact=True)


def test_tree_matches_a_subtree_with_globs_and_unlisted_children() -> None:
    assert_tree(blog_trace(), "main\n  gather(*\n    task2\n  task3\n")
    assert_tree(blog_trace(), "task*\n  asyncio.sleep(3)")


def test_tree_siblings_must_be_in_start_order() -> None:
    err = fail(assert_tree, blog_trace(), "main\n  task3\n  gather(*\n")
    assert "1 of 3 outline lines not found" in str(err).splitlines()[0]


def test_tree_reports_a_missing_node_and_a_wrong_parent_as_a_diff() -> None:
    outline = """
    main
      gather(task1, task2)
        task1
          asyncio.sleep(3)
        task2
        task3
    """
    err = fail(assert_tree, blog_trace(), outline)
    assert str(err).split("\n\n")[0] == (
        "the span tree does not match the outline: 2 of 6 outline lines not found\n"
        "  main\n"
        "    gather(task1, task2)\n"
        "      task1\n"
        "-       asyncio.sleep(3)  <- not among the children of task1: asyncio.sleep(2);"
        " asyncio.sleep(3) is a child of task3\n"
        "      task2\n"
        "-     task3  <- not among the children of gather(task1, task2): task1, task2;"
        " task3 is a child of main"
    )


def test_tree_reports_an_unknown_top_level_name_and_its_subtree() -> None:
    err = fail(assert_tree, blog_trace(), "mian\n  task3\n")
    assert str(err) == (
        "the span tree does not match the outline: 2 of 2 outline lines not found\n"
        "- mian  <- no span matches; did you mean 'main'?\n"
        "-   task3\n"
        "\n"
        "clock: virtual"
    )


def test_tree_exact_lists_unlisted_children() -> None:
    err = fail(
        assert_tree, blog_trace(), "main\n  gather*\n    task1\n    task2\n  task3\n", exact=True
    )
    assert str(err).split("\n\n")[0] == (
        "the span tree does not match the outline: 0 of 5 outline lines not found,"
        " 3 spans not listed (exact=True)\n"
        "  main\n"
        "    gather*  (gather(task1, task2))\n"
        "      task1\n"
        "+       asyncio.sleep(2)  <- not in the outline\n"
        "      task2\n"
        "+       asyncio.sleep(1)  <- not in the outline\n"
        "    task3\n"
        "+     asyncio.sleep(3)  <- not in the outline"
    )


def test_tree_leaf_without_children_is_reported() -> None:
    err = fail(assert_tree, blog_trace(), "asyncio.sleep(1)\n  anything")
    assert str(err).splitlines()[1:3] == [
        "  asyncio.sleep(1)",
        "-   anything  <- asyncio.sleep(1) has no children; no span in the trace matches it",
    ]


def test_tree_rejects_bad_indentation_and_empty_outlines() -> None:
    with pytest.raises(ValueError, match=r"outline line 3 \('task2'\) is indented by 1 spaces"):
        assert_tree(blog_trace(), "main\n    task1\n task2\n")
    with pytest.raises(ValueError, match=r"outline is empty"):
        assert_tree(blog_trace(), "\n  \n")


# ---------------------------------------------------------------- timeline rendering


def test_timeline_labels_duplicates_and_marks_status() -> None:
    trace = Trace(
        [
            mk(1, None, "task", "w", 0.0, 1.0, 1, 3),
            mk(2, None, "task", "w", 0.5, 2.0, 2, 4),
        ]
    )
    trace.spans[1].status = "cancelled"
    text = at._render_involved(trace, trace.spans)
    assert text.splitlines()[1:] == [
        "  w #1  [0.000, 1.000)  |####################....................|",
        "  w #2  [0.500, 2.000)  |..........##############################| cancelled",
    ]


def test_dropped_spans_are_noted() -> None:
    trace = Trace(blog_trace().spans, clock="virtual", dropped=7)
    err = fail(assert_overlap, trace, "task1", "task3")
    assert str(err).endswith("note: the recorder dropped 7 spans; the trace is incomplete")


# ---------------------------------------------------------------- docs and a real trace

DOCS = (Path(__file__).resolve().parent.parent / "docs" / "testing.md").read_text("utf-8")


def test_the_failure_messages_shown_in_the_docs_are_the_real_ones() -> None:
    trace = blog_trace()
    shown = [
        str(fail(find_span, trace, "tsk1")),
        str(fail(find_span, trace, "task?")),
        str(fail(assert_overlap, trace, "task1", "task3")),
        str(fail(assert_sequential, trace, "task2", "task1")).splitlines()[0],
        str(fail(assert_duration, trace, "task3", 2.0)).splitlines()[0],
        str(fail(assert_max_concurrency, workers_trace(w3_first=True), "worker-*", 2)),
        str(
            fail(
                assert_tree,
                trace,
                "main\n  gather(task1, task2)\n    task1\n      asyncio.sleep(3)\n"
                "    task2\n    task3\n",
            )
        ).split("\n\n")[0],
    ]
    for message in shown:
        assert message in DOCS


def test_assertions_on_a_real_trace_of_the_blog_example(capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio
    import runpy

    import asynctrace

    blog = runpy.run_path(str(Path(__file__).resolve().parent.parent / "examples" / "gather.py"))
    with asynctrace.tracing(name="gather.py", virtual_time=True) as t:
        asyncio.run(blog["main"]())
    assert "Task 3 complete" in capsys.readouterr().out
    assert_overlap(t, "task1", "task2")
    assert_sequential(t, "task1", "task3")
    assert_max_concurrency(t, "task*", 2)
    assert_min_concurrency(t, "task*", 2)
    assert_duration(t, "task1", 2.0)
    assert_within(t, "task1", "gather(task1, task2)")
    assert_tree(t, "main\n  gather(task1, task2)\n    task1\n    task2\n  task3\n")
    err = fail(assert_overlap, t, "task1", "task3")
    assert "no overlap" in str(err) and "(virtual clock," in str(err)


def test_concurrency_accepts_a_generator_and_rejects_an_empty_list() -> None:
    trace = workers_trace()
    err = fail(assert_max_concurrency, trace, (f"worker-{i}" for i in (1, 2)), 1)
    assert str(err).startswith("at most 1 span matching 'worker-1', 'worker-2' may be alive")
    with pytest.raises(ValueError, match=r"pattern=\[\] selects no spans"):
        assert_min_concurrency(trace, [], 1)


def test_concurrency_sweep_is_fast_on_a_fanout_of_2000_tasks() -> None:
    spans = [mk(0, None, "run", "fanout", 0.0, 1.0, 0, 10_000)]
    spans += [mk(i, 0, "task", f"t{i}", 0.0, 0.5, i, 5000 + i) for i in range(1, 2001)]
    trace = Trace(spans, clock="virtual")
    assert_min_concurrency(trace, "t*", 2000)
    err = fail(assert_max_concurrency, trace, "t*", 1999)
    assert "but 2000 were at 0.000 s, when t2000 started" in str(err)
    assert str(err).count("\n") < 40  # the timeline is truncated, not 2000 lines
    assert "t12 [0.000, 0.500), ... (1988 more); peak 2000" in str(err)
