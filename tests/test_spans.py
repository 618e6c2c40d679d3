"""Spans and their Trace: the builders' quick constructor, the links, the cycles cut."""

from __future__ import annotations

import dataclasses
import math

import pytest

from asynctrace._model import _spans
from asynctrace._model._spans import CUT_PARENT, Span, Trace, quick_span


def test_quick_span_is_a_span_with_every_field_given() -> None:
    args = (7, 3, "await", "x", 0.5, 1.5, 2, "error", "E: m", {"k": 1}, 7, 9)
    quick, made = quick_span(*args), Span(*args)  # type: ignore[arg-type]
    assert type(quick) is Span
    for field in dataclasses.fields(Span):
        assert getattr(quick, field.name) == getattr(made, field.name), field.name
    assert quick.children is not quick_span(*args).children  # type: ignore[arg-type]


def _span(sid: int, parent: int | None, start: float, seq: int) -> Span:
    return Span(sid, parent, "task", f"s{sid}", start, start + 1.0, sid, start_seq=seq)


# each case: its spans, then each span's (id, parent id, children ids, the parent id cut)
CASES = {
    "parents_first": (
        [_span(3, 2, 2.0, 3), _span(2, 1, 1.0, 2), _span(1, None, 0.0, 1), _span(4, 1, 1.5, 4)],
        [(1, None, [2, 4], None), (2, 1, [3], None), (4, 1, [], None), (3, 2, [], None)],
    ),
    "a_tie_of_starts": (  # the sequence decides: the parent first
        [_span(2, 1, 0.5, 2), _span(1, None, 0.5, 1)],
        [(1, None, [2], None), (2, 1, [], None)],
    ),
    "a_tie_of_both": (  # not decided: linked all the same
        [_span(1, None, 0.0, 1), _span(2, 1, 0.0, 1)],
        [(1, None, [2], None), (2, 1, [], None)],
    ),
    "child_first": (  # a parent that starts after its child: no cycle
        [_span(2, 1, 0.0, 1), _span(1, None, 1.0, 2)],
        [(2, 1, [], None), (1, None, [2], None)],
    ),
    "cycle": (  # cut at the span that starts first
        [_span(1, 3, 0.0, 1), _span(2, 1, 1.0, 2), _span(3, 2, 2.0, 3), _span(4, 2, 3.0, 4)],
        [(1, None, [2], 3), (2, 1, [3, 4], None), (3, 2, [], None), (4, 2, [], None)],
    ),
    "self_parent": (
        [_span(1, 1, 0.0, 1), _span(2, 1, 1.0, 2)],
        [(1, None, [2], 1), (2, 1, [], None)],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_python_links_parents_and_children_and_cuts_cycles(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spans, expected = CASES[case]
    for span in spans:
        span.children = [span]  # whatever a span held before: a trace makes its own
    monkeypatch.setattr(_spans, "speedups", None)
    trace = Trace(spans)
    found = [
        (
            s.span_id,
            s.parent.span_id if s.parent is not None else None,
            [c.span_id for c in s.children],
            s.attributes.get(CUT_PARENT),
        )
        for s in trace
    ]
    assert found == expected
    assert all(s.parent_id == (s.parent.span_id if s.parent else None) for s in trace)


def test_python_links_spans_whose_starts_do_not_compare(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_spans, "speedups", None)
    nan = Trace([_span(2, 1, 0.0, 2), _span(1, None, math.nan, 1)])
    assert [c.span_id for c in nan.by_id[1].children] == [2]
    odd = [_span(1, None, 0.0, 1), _span(2, 1, 0.0, 2)]
    for span in odd:
        span.start = None  # type: ignore[assignment]  # a hand-made span's: sorts by its seq
    assert [c.span_id for c in Trace(odd).by_id[1].children] == [2]
