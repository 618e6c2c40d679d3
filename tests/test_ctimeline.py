"""The C passes (``_ctimeline.c``) give exactly the results of their Python versions in
``_timeline.py``: the same spans in the same order, the same tuples, bit-identical floats; and
a hand-made trace's odd values that C refuses get the Python answer (or its error)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from asynctrace._model import _timeline
from asynctrace._model._spans import KINDS, Span, Trace
from asynctrace._model._timeline import activity, await_keys, idle_waits, joins, spans_of_kind
from tests.test_cbuild import MORE
from tests.test_examples import _run_scaled, run_example
from tests.test_speedups import WORKLOADS, _run

needs_c = pytest.mark.skipif(_timeline._C is None, reason="asynctrace._ctimeline is not built")


def _same(a: Any, b: Any) -> bool:
    """Equal, and alike to the bit: spans are the same objects, floats have the same repr
    (``-0.0`` is not ``0.0``, NaN is NaN), containers hold the same types in the same order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, Span):
        return a is b
    if isinstance(a, float):
        return repr(a) == repr(b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(map(_same, a.values(), b.values()))
    return bool(a == b)


def _passes(trace: Trace) -> dict[str, Any]:
    """Everything ``_timeline`` derives from ``trace``, worked out afresh."""
    trace._derived.clear()
    return {
        "kinds": {kind: spans_of_kind(trace, kind) for kind in KINDS},
        "joins": joins(trace),
        "await_keys": await_keys(trace),
        "idle_waits": idle_waits(trace),
        "join_activity": _timeline._activity_python(spans_of_kind(trace, "task"), joins(trace)),
        "activity": activity(trace),
    }


def _python_passes(trace: Trace, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    with monkeypatch.context() as patch:
        patch.setattr(_timeline, "_C", None)
        return _passes(trace)


def _c_passes(trace: Trace) -> dict[str, Any]:
    """The C functions called straight (no fallback: they MUST take a recorded trace)."""
    c = _timeline._C
    positions = c.kind_positions(trace.spans)
    tasks = c.spans_at(trace.spans, positions.get("task", []))
    awaits = c.spans_at(trace.spans, positions.get("await", []))
    found = c.joins(tasks, awaits)
    keys = c.await_keys(awaits)
    idle = c.idle_waits(found, awaits, keys, _timeline._IDLE_NAMES, _timeline._IDLE_PREFIXES)
    return {
        "kinds": {kind: c.spans_at(trace.spans, positions.get(kind, [])) for kind in KINDS},
        "joins": found,
        "await_keys": keys,
        "idle_waits": idle,
        "join_activity": c.activity(tasks, found),
        "activity": c.activity(tasks, idle),
    }


def _check_recorded(trace: Trace, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    python = _python_passes(trace, monkeypatch)
    assert _same(_c_passes(trace), python)
    assert _same(_passes(trace), python)
    return python


@needs_c
@pytest.mark.parametrize("name", sorted(WORKLOADS) + sorted(MORE))
def test_c_passes_are_the_python_ones_on_recorded_traces(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace, _ = _run({**WORKLOADS, **MORE}[name], otel=False)
    assert len(trace) > 1
    _check_recorded(trace, monkeypatch)


@needs_c
def test_a_run_of_many_tasks_has_joins_idle_waits_and_activity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trace, _ = _run(WORKLOADS["locks"], otel=False)
    python = _check_recorded(trace, monkeypatch)
    assert python["joins"] and python["activity"]  # what is compared is not empty
    assert len(python["idle_waits"]) > len(python["joins"])


@needs_c
@pytest.mark.parametrize("name", ["async_tasks", "coroutine", "event_loop", "gather"])
def test_c_passes_are_the_python_ones_on_the_examples(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, trace = run_example(name, tmp_path)  # read back from its JSON file
    _check_recorded(trace, monkeypatch)


@needs_c
@pytest.mark.parametrize("name", ["blocking_gather", "sync_tasks"])
def test_c_passes_are_the_python_ones_on_the_blocking_examples(
    name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _check_recorded(_run_scaled(name, capsys, monkeypatch), monkeypatch)


def _task(sid: int, start: float, end: float, name: str = "work", **attrs: object) -> Span:
    attributes: dict[str, object] = {"asynctrace.task.name": f"Task-{sid}", **attrs}
    return Span(sid, 1, "task", name, start, end, sid, attributes=attributes, start_seq=sid)


def _await(sid: int, track: int, start: float, end: float, name: str, **attrs: object) -> Span:
    return Span(sid, track, "await", name, start, end, track, attributes=attrs, start_seq=sid)


def _hand_made() -> list[Span]:
    """A run, tasks whose joins overlap, nest, stick out of their task and tie at -0.0 and
    0.0, and idle waits of every sort."""
    return [
        Span(1, None, "run", "main", -0.0, 9.0, 1),
        _task(2, 0.0, 8.0),
        _task(3, -0.0, 5.0, name="other"),
        _task(4, 1.0, 2.0, **{"asynctrace.task.name": ""}),  # no name: nothing awaits it by one
        _task(5, 2.0, 2.0),
        _await(10, 2, 0.5, 3.0, "Task-3 (other)"),
        _await(11, 2, 2.0, 4.0, "Task-5 (work)"),
        _await(12, 2, 3.5, 9.5, "gather(a, b)"),
        _await(13, 2, -1.0, 0.25, "x", **{"asynctrace.awaited": "Task-2 (work)"}),
        _await(14, 3, 1.0, 1.0, "Task-2 (work)"),
        _await(15, 3, 4.0, 4.5, "Lock.acquire()"),
        _await(16, 3, 4.5, 4.75, "Future (resp.json())", **{"asynctrace.awaited": "Future"}),
        _await(17, 3, 0.0, 0.1, "Queue.get()", **{"asynctrace.awaited.span_id": 2}),
        _await(18, 4, 1.0, 1.5, "asyncio.sleep(1)", **{"code.file.path": "a.py"}),
        _await(19, 4, 1.5, 1.75, "asyncio.wait_for", **{"code.line.number": 3}),
        _await(20, 9, 1.0, 2.0, "Task-3 (other)"),  # on no task's row
        Span(21, 2, "gather", "gather", 3.0, 3.5, 2),
        _await(22, 2, 3.0, 3.5, "anything"),  # parent set below: on the gather
    ]


def _hand_made_trace(change: Callable[[list[Span]], None] = lambda spans: None) -> Trace:
    spans = _hand_made()
    spans[2].start_seq = -1  # task 3 first: its start, -0.0, is the key its tie keeps
    spans[-1].parent_id = 21
    change(spans)
    return Trace(spans)


@needs_c
def test_c_passes_are_the_python_ones_on_a_hand_made_trace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trace = _hand_made_trace()
    python = _check_recorded(trace, monkeypatch)
    assert [s.span_id for s in python["joins"]] == [13, 10, 14, 20, 11, 22, 12]  # start order
    assert [s.span_id for s in python["idle_waits"]] == [13, 10, 14, 20, 11, 22, 12, 17, 19, 15, 16]
    assert _same(python["join_activity"][0], (-0.0, 1, 1))  # of equal times, the first added
    assert _same(python["activity"][0], (-0.0, 0, 2))  # task 3 in Queue.get() from 0.0


class _Sub(Span):
    __slots__ = ()


class _Text(str):
    __slots__ = ()


class _Attributes(dict[str, object]):
    pass


def _set(position: int, **fields: Any) -> Callable[[list[Span]], None]:
    def change(spans: list[Span]) -> None:
        for name, value in fields.items():
            setattr(spans[position], name, value)

    return change


def _subclass(position: int) -> Callable[[list[Span]], None]:
    def change(spans: list[Span]) -> None:
        old = spans[position]
        spans[position] = _Sub(
            old.span_id, old.parent_id, old.kind, old.name, old.start, old.end, old.track,
            attributes=old.attributes, start_seq=old.start_seq,
        )  # fmt: skip

    return change


ODD = {
    "attributes_a_list": _set(6, attributes=[("asynctrace.awaited", "x")]),
    "awaited_a_list": _set(6, attributes={"asynctrace.awaited": ["Task-3 (other)"]}),
    "awaited_a_str_subclass": _set(6, attributes={"asynctrace.awaited": _Text("Lock.x")}),
    "name_not_a_str": _set(6, name=7),
    "name_a_str_subclass": _set(6, name=_Text("Task-3 (other)")),
    "task_name_not_a_str": _set(2, attributes={"asynctrace.task.name": 3}),
    "task_name_none": _set(2, attributes={"asynctrace.task.name": None}),
    "kind_a_str_subclass": _set(2, kind=_Text("task")),
    "a_span_subclass": _subclass(2),
    "an_await_subclass": _subclass(6),
    "nan_start": _set(2, start=math.nan),
    "nan_join_end": _set(6, end=math.nan),
    "int_times": _set(3, start=0, end=5),
    "inf_end": _set(3, end=math.inf),
    "duplicate_task_ids": _set(3, span_id=2),
    "attributes_a_dict_subclass": _set(6, attributes=_Attributes({"asynctrace.awaited": "x"})),
    "no_spans": lambda spans: spans.clear(),
    "no_tasks": lambda spans: spans.__delitem__(slice(1, 5)),
    "track_not_an_int": _set(6, track="2"),
}


@pytest.mark.parametrize("case", sorted(ODD))
def test_odd_values_give_the_python_answer(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    trace = _hand_made_trace(ODD[case])
    try:
        python: Any = _python_passes(trace, monkeypatch)
    except Exception as exc:  # the same error, with C or without
        python = type(exc)
    try:
        with_c: Any = _passes(trace)
    except Exception as exc:
        with_c = type(exc)
    assert _same(with_c, python)


@needs_c
def test_c_refuses_a_position_outside_the_spans() -> None:
    trace = _hand_made_trace()
    positions = _timeline._C.kind_positions(trace.spans)
    with pytest.raises(ValueError, match="position"):
        _timeline._C.spans_at([], positions["task"])  # then Python raises its IndexError


def test_the_extension_is_built() -> None:
    # Optional for users (pure-Python fallback); this project's CI (CI=true) MUST build it.
    if os.environ.get("ASYNCTRACE_NO_SPEEDUPS") or not os.environ.get("CI"):
        pytest.skip("asynctrace._ctimeline is only required on CI, with speedups")
    assert _timeline._C is not None, "asynctrace._ctimeline did not build; see pip install -e . -v"


def test_no_speedups_selects_the_python_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCTRACE_NO_SPEEDUPS", "1")
    assert _timeline._load_ctimeline() is None
