"""The C span builder and linker (``_cbuild.c``) give exactly the spans and links of the
pure-Python ones (``SpanBuilder``'s loop, ``Trace.__init__``)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import types
from collections.abc import Callable
from typing import Any

import pytest

import asynctrace
from asynctrace._core import _coro
from asynctrace._core._coro import copy_records
from asynctrace._model import _spans
from asynctrace._model._build import SpanBuilder
from asynctrace._model._spans import Span, Trace
from tests.test_speedups import WORKLOADS, Main

needs_c = pytest.mark.skipif(_coro.speedups is None, reason="asynctrace._speedups is not built")


def _fields(span: Span) -> tuple[Any, ...]:
    return (
        span.span_id,
        span.parent_id,
        span.kind,
        span.name,
        repr(span.start),  # repr: exact, and NaN equals NaN
        repr(span.end),
        span.track,
        span.status,
        span.error,
        list(span.attributes.items()),  # in order: the JSON file writes them in it
        span.start_seq,
        span.end_seq,
        span.parent.span_id if span.parent is not None else None,
        [child.span_id for child in span.children],
    )


async def _to_thread_and_odd_awaits() -> None:
    def blocking(n: int) -> int:
        return n * 2

    await asyncio.to_thread(blocking, 3)
    await asyncio.sleep(-0.0)  # named "-0": equal to 0.0 as a cache key, but not the same name
    await asyncio.sleep(0)
    await asyncio.sleep(0.0)
    fut = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(fut.set_result, 1)
    await fut
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.sleep(5), 0.01)


@asynctrace.trace(name="custom", attributes={"user.key": "v"})
async def _decorated(n: int) -> int:
    await asyncio.sleep(0.001 * n)
    return n


async def _decorated_calls() -> None:
    await asyncio.gather(*(_decorated(n) for n in range(3)))
    await asyncio.create_task(_decorated(4))


MORE: dict[str, Main] = {"odd_awaits": _to_thread_and_odd_awaits, "decorated": _decorated_calls}


def _recorder(main: Main) -> Any:
    # the workloads' own errors: their spans are what is compared
    tracing = asynctrace.tracing(virtual_time=True, otel=False)
    with tracing, contextlib.suppress(BaseException):
        asyncio.run(main())
    return tracing.recorder


def _record_by_record(
    self: SpanBuilder,
    records: list[Any],
    codes: dict[int, Any],
    spans: dict[int, Span],
    build_one: Callable[[Any], None],
) -> None:
    """The reference: every record through ``SpanBuilder._span``, none through a quick loop."""
    for rec in records:
        if rec[0] in (_coro.K_TASK, _coro.K_CORO):
            info = rec[7]
            code = info.code if isinstance(info, _coro.FnInfo) else info
            if isinstance(code, types.CodeType):
                codes[rec[1]] = code
    for rec in records:
        build_one(rec)


@pytest.mark.parametrize("name", sorted(WORKLOADS) + sorted(MORE))
def test_the_quick_loops_make_the_spans_of_the_record_by_record_builder(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The C loop and the Python loop build most spans themselves; the one-record builder
    (``_span``, which every other record goes through) is the reference for both."""
    recorder = _recorder({**WORKLOADS, **MORE}[name])
    python_spans = SpanBuilder(recorder, place=False).build(list(recorder.records))
    with monkeypatch.context() as patch:
        patch.setattr(SpanBuilder, "_build_python", _record_by_record)
        reference = SpanBuilder(recorder, place=False).build(list(recorder.records))
    assert len(reference) > 1
    assert [_fields(s) for s in python_spans] == [_fields(s) for s in reference]
    if _coro.speedups is not None:
        stored = copy_records(recorder.records)
        assert isinstance(stored, _coro.speedups.Records)
        c_spans = SpanBuilder(recorder, place=False).build(stored)
        assert [_fields(s) for s in c_spans] == [_fields(s) for s in reference]
        assert all(type(s) is Span for s in c_spans)
        c_trace, python_trace = Trace(c_spans), Trace(python_spans)  # linked in C, alike
        assert [_fields(s) for s in c_trace] == [_fields(s) for s in python_trace]


@needs_c
def test_a_copy_of_records_is_a_slice_that_takes_more() -> None:
    recorder = _recorder(WORKLOADS["gather"])
    records = recorder.records
    whole = list(records)
    assert list(copy_records(records)) == whole
    assert list(copy_records(records, 2, 5)) == whole[2:5]
    assert list(copy_records(records, -3)) == whole[-3:]
    assert list(copy_records(records, 5, 2)) == []
    part = copy_records(records, 0, 3)
    part.extend([("extra", 1), ("more", 2)])
    part.append(("last",))
    assert list(part) == [*whole[:3], ("extra", 1), ("more", 2), ("last",)]
    assert list(records) == whole  # the copy is its own
    with pytest.raises(TypeError):
        part.extend(3)  # type: ignore[arg-type]


def _span(sid: int, parent: int | None, start: float, seq: int) -> Span:
    return Span(sid, parent, "task", f"s{sid}", start, start + 1.0, sid, start_seq=seq)


def _python_trace(spans: list[Span], monkeypatch: pytest.MonkeyPatch) -> Trace:
    with monkeypatch.context() as patch:
        patch.setattr(_spans, "speedups", None)
        return Trace(spans)


@needs_c
@pytest.mark.parametrize(
    "case",
    [
        "ties",  # equal starts: start_seq, then the list's order
        "cycle",  # a loop of parents: cut as the Python path cuts it
        "self_parent",
        "child_first",  # a parent that starts after its child: no cycle, linked all the same
        "duplicate_ids",  # the last span with an id is the parent its children get
        "nan",  # not sortable in C: the Python path
    ],
)
def test_c_and_python_link_spans_alike(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def spans() -> list[Span]:
        made = {
            "ties": [_span(3, 1, 0.5, 3), _span(2, 1, 0.5, 2), _span(1, None, 0.0, 1),
                     _span(4, 1, 0.5, 2)],
            "cycle": [_span(1, 3, 0.0, 1), _span(2, 1, 1.0, 2), _span(3, 2, 2.0, 3),
                      _span(4, 2, 3.0, 4)],
            "self_parent": [_span(1, 1, 0.0, 1), _span(2, 1, 1.0, 2)],
            "child_first": [_span(2, 1, 0.0, 1), _span(1, None, 1.0, 2)],
            "duplicate_ids": [_span(1, None, 0.0, 1), _span(1, None, 1.0, 2),
                              _span(2, 1, 2.0, 3)],
            "nan": [_span(1, None, math.nan, 1), _span(2, 1, 0.0, 2)],
        }  # fmt: skip
        return made[case]

    c_trace = Trace(spans())
    python_trace = _python_trace(spans(), monkeypatch)
    assert [_fields(s) for s in c_trace] == [_fields(s) for s in python_trace]
    assert c_trace.by_id.keys() == python_trace.by_id.keys()
    assert [c_trace.by_id[k].start_seq for k in c_trace.by_id] == [
        python_trace.by_id[k].start_seq for k in python_trace.by_id
    ]
    assert _coro.speedups.link_spans(spans()) is not None or case == "nan"


@needs_c
def test_link_spans_leaves_what_it_cannot_sort_to_python() -> None:
    speedups = _coro.speedups
    assert speedups.link_spans((_span(1, None, 0.0, 1),)) is None  # type: ignore[arg-type]
    odd = _span(1, None, 0.0, 1)
    odd.start = 0  # an int start (a hand-made trace)
    assert speedups.link_spans([odd]) is None
    assert len(Trace([odd])) == 1
