"""The JSON timeline's arrows, counter and row names made in C (``_cflows.c``) are exactly
what their Python versions in ``_chrome_around.py`` make: the same markers on the same rows, the
same flow tuples, the same counter events and labels, bit-identical times; and a hand-made
trace's odd values that C refuses get the Python answer (or its error), with nothing half-made
left behind."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asynctrace._export import _chrome, _chrome_around
from asynctrace._export._chrome import MAX_COUNTER_POINTS
from asynctrace._export._sanitize import MAX_CHARS
from asynctrace._model._spans import Span, Trace
from asynctrace._model._timeline import activity, joins
from tests.test_cbuild import MORE
from tests.test_chrome import blog_trace, wide_trace
from tests.test_ctimeline import _hand_made_trace, _same, _Text
from tests.test_speedups import WORKLOADS, _run

needs_c = pytest.mark.skipif(
    _chrome_around._cflows() is None, reason="asynctrace._cflows is not built"
)


def _marker_state(item: _chrome._Item) -> tuple[Any, ...]:
    return (item.key, item.start, item.end, item.tid, item.event, item.after, item.span)


def _layouts(trace: Trace, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """What ``_layout`` makes of ``trace`` with the arrows and counter made in C, then in
    Python: the markers of each row, the flows after each slice, the tail, the rows' names."""

    def made() -> Any:
        trace._derived.clear()
        layout = _chrome._layout(trace, False, lazy=True)
        rows = {track: [_marker_state(m) for m in row] for track, row in layout.rows.items()}
        return rows, layout.after, layout.tail, layout.labels

    in_c = made()
    with monkeypatch.context() as patch:
        patch.setattr(_chrome_around, "_cflows", lambda: None)
        return in_c, made()


def _check(trace: Trace, monkeypatch: pytest.MonkeyPatch) -> Any:
    in_c, in_python = _layouts(trace, monkeypatch)
    assert _same(in_c[1:], in_python[1:])
    assert in_c[0].keys() == in_python[0].keys()
    for track, markers in in_c[0].items():
        assert len(markers) == len(in_python[0][track])
        for mine, theirs in zip(markers, in_python[0][track], strict=True):
            assert _same(list(mine[:-1]), list(theirs[:-1])) and mine[-1] is theirs[-1]
    return in_python


@needs_c
@pytest.mark.parametrize("name", sorted(WORKLOADS) + sorted(MORE))
def test_c_arrows_are_the_python_ones_on_recorded_traces(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace, _ = _run({**WORKLOADS, **MORE}[name], otel=False)
    _check(trace, monkeypatch)


@needs_c
def test_c_arrows_are_the_python_ones_on_the_blog_trace_and_a_wide_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows, after, tail, labels = _check(blog_trace(), monkeypatch)
    assert after and tail and any(rows.values())  # what is compared is not empty
    assert labels == ["run gather.py", "Task-1 main()", "Task-2 task1()", "Task-3 task2()"]
    rows, after, tail, _labels = _check(wide_trace(3000, 2), monkeypatch)
    assert len(after) == 3001  # main's and each task's spawn arrow
    assert "start 3000 tasks" in [m[4]["name"] for row in rows.values() for m in row]
    assert 0 < sum(isinstance(e, dict) for e in tail) < 6004  # the counter's 6,004 points bucketed


@needs_c
def test_c_arrows_are_the_python_ones_on_a_hand_made_trace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tasks awaited by name (``Task-3 (other)``) and by ``asynctrace.awaited``, joins that
    overlap, times that tie at -0.0 and 0.0, a gather."""
    _rows, after, _tail, labels = _check(_hand_made_trace(), monkeypatch)
    assert "track 9" in labels and "Task work()" in labels  # no owner; a task named ""
    assert len(after) == 4


@st.composite
def _spawning_traces(draw: st.DrawFn) -> Trace:
    """A run whose tasks spawn tasks, directly or through gathers, and await them (by a task's
    name, by a gather's, or not at all), on times that tie."""
    times = st.one_of(st.integers(0, 16).map(lambda k: k / 4), st.floats(-1, 5))
    spans = [Span(1, None, "run", "main", 0.0, 5.0, 1, start_seq=0)]
    owners = [1]  # the spans that own a row
    for sid in range(2, draw(st.integers(2, 30))):
        a, b = sorted((draw(times), draw(times)))
        kind = draw(st.sampled_from(["task", "task", "gather", "await", "thread"]))
        parent = draw(st.sampled_from([s.span_id for s in spans]))
        track = sid if kind in ("task", "thread") else draw(st.sampled_from(owners))
        attributes: dict[str, object] = {}
        if kind == "task" and draw(st.booleans()):
            task_names = [f"Task-{sid}", f"Task-{sid}", "", "n" * (MAX_CHARS + 1), 7]
            attributes["asynctrace.task.name"] = draw(st.sampled_from(task_names))
        name = draw(st.sampled_from(["work", "gather(work)", "main", "w" * (MAX_CHARS + 1)]))
        if kind == "await":
            target = draw(st.sampled_from(spans))
            name = draw(st.sampled_from([f"Task-{target.span_id} ({target.name})", target.name]))
            if draw(st.booleans()):
                attributes["asynctrace.awaited"] = f"Task-{target.span_id} (work)"
        span = Span(sid, parent, kind, name, a, b, track, attributes=attributes)
        span.start_seq = draw(st.integers(0, 40))
        spans.append(span)
        if kind in ("task", "thread"):
            owners.append(sid)
    return Trace(spans)


@needs_c
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_spawning_traces())
def test_c_arrows_are_the_python_ones_on_any_trace(trace: Trace) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        _check(trace, monkeypatch)


def _odd(span_id: int, **fields: Any) -> Trace:
    """The blog trace with fields of one span changed (5, 7: tasks; 4: the await on them)."""
    trace = blog_trace()
    for name, value in fields.items():
        setattr(trace.by_id[span_id], name, value)
    return trace


@needs_c
@pytest.mark.parametrize(
    ("span_id", "field", "value"),
    [
        (5, "end", 2),  # a time that is not a float
        (7, "start", math.nan),
        (4, "end", math.nan),
        (5, "start", 1e300),  # past 2**53 ns
        (5, "kind", _Text("task")),
    ],
    ids=["int time", "NaN", "NaN join", "huge time", "kind not a str"],
)
def test_what_c_refuses_is_undone_and_python_answers(
    span_id: int, field: str, value: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = _odd(span_id, **{field: value})
    tids = {span.track: span.track for span in trace.spans}
    rows: dict[int, list[_chrome._Item]] = {track: [] for track in tids}
    after: dict[int, list[Any]] = {}
    spawned = [s for s in trace.spans if s.kind in ("task", "thread")]
    with pytest.raises((TypeError, ValueError)):
        _chrome_around._cflows().flows(
            spawned, joins(trace), trace.by_id, tids, rows, after,
            _chrome_around._spawn_marker, _chrome_around._join_marker,
        )  # fmt: skip
    try:
        _check(trace, monkeypatch)  # what C began is undone: the rows and arrows are Python's
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        trace._derived.clear()
        with monkeypatch.context() as patch, pytest.raises(type(exc)):  # Python fails alike
            patch.setattr(_chrome_around, "_cflows", lambda: None)
            _chrome._layout(trace, False, lazy=True)


def _points(n: int, rng: random.Random) -> list[tuple[float, int, int]]:
    t = rng.choice([0.0, -0.0, 1e-9, 3.5])
    points = []
    for _ in range(n):
        t += rng.choice([0.0, 1e-9, 1e-7, rng.random() * 1e-3])
        points.append((t, rng.randrange(0, 100), rng.randrange(0, 50)))
    return points


@needs_c
@pytest.mark.parametrize("n", [0, 1, 2, 1999, 2000, 2001, 5000, 40000])
def test_c_counter_is_the_python_one(n: int) -> None:
    rng = random.Random(n)
    for _ in range(5):
        points = _points(n, rng)
        expected = _chrome_around._counter_python(list(points))
        got = _chrome_around._cflows().counter_events(points, MAX_COUNTER_POINTS)
        assert _same(got, expected)
        assert len(got) == min(n, MAX_COUNTER_POINTS) or n > MAX_COUNTER_POINTS


@needs_c
def test_c_counter_is_the_python_one_on_recorded_activity() -> None:
    trace = wide_trace(5000, 1)
    points = activity(trace)
    assert len(points) > MAX_COUNTER_POINTS
    got = _chrome_around._cflows().counter_events(points, MAX_COUNTER_POINTS)
    assert _same(got, _chrome_around._counter_python(points))


@needs_c
@pytest.mark.parametrize(
    "points",
    [[(0.0, 1, 1), (math.inf, 2, 2)], [(0.0, 1, 1), (1.0, 2**70, 0)], [(0, 1, 1)]],
    ids=["infinite", "past 64 bits", "int time"],
)
def test_odd_counter_points_are_refused(points: list[tuple[float, int, int]]) -> None:
    with pytest.raises((TypeError, ValueError)):
        _chrome_around._cflows().counter_events(points, 2)
