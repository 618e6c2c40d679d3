"""The critical path's walk in C (``_ccritical.c``) gives the Python walk's path, step for step,
and leaves to Python the traces it does not read the same way."""

from __future__ import annotations

import math
from typing import Any

import pytest

from asynctrace._core._coro import speedups
from asynctrace._model import _critical
from asynctrace._model._build import build_trace
from asynctrace._model._spans import AWAITED_SPAN, Span, Trace
from tests.test_cbuild import MORE, _recorder
from tests.test_critical import chain_deeper_than_the_cut, cycle_of_awaits
from tests.test_critical import made as span
from tests.test_speedups import WORKLOADS

pytestmark = pytest.mark.skipif(speedups is None, reason="asynctrace._speedups is not built")


def python_path(trace: Trace, span: Span) -> list[Span]:
    path: list[Span] = []
    _critical._walk(trace, span, path, _critical._TaskLabels(trace), set(), 0)
    return path


def c_path(trace: Trace, span: Span) -> list[Span]:
    tasks = _critical._TaskLabels(trace)
    return speedups.critical_walk(span, trace.by_id, tasks, _critical._MAX_DEPTH)


def same_path(trace: Trace, span: Span) -> list[Span]:
    python = python_path(trace, span)
    assert [id(s) for s in c_path(trace, span)] == [id(s) for s in python]
    return python


@pytest.mark.parametrize("name", sorted(WORKLOADS) + sorted(MORE))
def test_every_span_of_the_workloads_has_the_python_path(name: str) -> None:
    trace = build_trace(_recorder({**WORKLOADS, **MORE}[name]))
    assert len(trace.spans) > 1
    for each in trace.spans:
        same_path(trace, each)


def test_ties_gathers_bare_futures_and_awaits_on_spans() -> None:
    awaited = {AWAITED_SPAN: 9}
    trace = Trace([
        span(1, None, "run", 0.0, 10.0),
        span(2, 1, "gather", 0.0, 6.0),
        span(3, 2, "await", 5.0, 6.0),  # the result taken: not a step
        span(4, 2, "task", 0.0, 6.0, attributes={"asynctrace.task.name": "Task-4"}, name="w"),
        span(5, 2, "task", 0.0, 6.0, end_seq=104),  # a tie of ends: the sequence decides
        span(6, 1, "await", 6.0, 8.0, name="Future"),  # a bare future: the task ended in it
        span(7, 1, "task", 6.5, 7.5),
        span(8, 1, "await", 8.0, 10.0, attributes=awaited),
        span(9, 1, "task", 8.0, 9.5),
        span(10, 1, "await", 9.5, 9.9, name="Task-4 (w)"),  # by its label
        span(11, 1, "await", 0.0, 0.0),  # no duration: never a step
    ])  # fmt: skip
    path = same_path(trace, trace.by_id[1])
    assert [s.span_id for s in path][:2] == [1, 2]


def test_a_cycle_of_awaits_and_a_chain_deeper_than_the_cut() -> None:
    cycle = cycle_of_awaits()
    assert [s.span_id for s in same_path(cycle, cycle.by_id[1])] == [1, 2, 3, 4]
    deep = chain_deeper_than_the_cut()
    assert len(same_path(deep, deep.by_id[1])) == _critical._MAX_DEPTH + 1


@pytest.mark.parametrize(
    ("odd", "error"),
    [
        ({"start": 1}, TypeError),  # an int time
        ({"end": math.nan}, ValueError),
        ({"start_seq": 2**70}, TypeError),
        ({"kind": b"await"}, TypeError),
    ],
)
def test_odd_values_are_left_to_python(odd: dict[str, Any], error: type[Exception]) -> None:
    spans = [
        span(1, None, "run", 0.0, 4.0),
        span(2, 1, "coroutine", 1.0, 3.0),
        span(3, 2, "await", 1.5, 2.5),
    ]
    trace = Trace(spans)
    for key, value in odd.items():
        setattr(spans[2], key, value)
    with pytest.raises(error):
        c_path(trace, trace.by_id[1])
    assert _critical._path(trace, trace.by_id[1]) == python_path(trace, trace.by_id[1])


def test_a_span_subclass_is_left_to_python() -> None:
    class Mine(Span):
        __slots__ = ()

    trace = Trace([span(1, None, "run", 0.0, 4.0), Mine(2, 1, "task", "t", 1.0, 3.0, 1)])
    with pytest.raises(TypeError):
        c_path(trace, trace.by_id[1])
    assert _critical._path(trace, trace.by_id[1]) == python_path(trace, trace.by_id[1])


def test_a_span_with_more_children_than_the_stack_holds() -> None:
    wide = [span(1, None, "run", 0.0, 30.0, end_seq=1000), span(2, 1, "gather", 0.0, 30.0)]
    wide += [span(i, 2, "task", 0.0, float(i), end_seq=i) for i in range(3, 30)]  # by end
    trace = Trace(wide)
    assert [s.span_id for s in same_path(trace, trace.by_id[1])] == [1, 2, 29]
