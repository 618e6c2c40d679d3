"""Two runs of one program side by side: their orders of events, and the first place they differ.

Problem: a failing schedule and a passing one are two timelines of the same program; the reader
wants the first thing the two runs did in a different order, not two pictures to compare.

Solution: each trace becomes its order of events: every task, coroutine and await span's start
and end, by time and then by the recorder's sequence number.  An event is named so that it
means the same in both runs: a task by its coroutine's name and its rank among the tasks of that
name in start order (``withdraw#2``), never by ``Task-7`` (asyncio's counter runs on across
runs), and an await by its task and what it awaited.  Times are shown but not compared: under a
jittered schedule every time differs, only the order says what raced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .._model._spans import Span, Trace

_KINDS = ("task", "coroutine", "await", "gather")
_TASK_NAME = re.compile(r"\bTask-\d+\b")
_CONTEXT_BEFORE = 6
_CONTEXT_AFTER = 4
_COLUMN = 62
DIVERGENCE = "asynctrace.explore.divergence"
"""Attribute set on the span whose start or end is a run's first diverging event."""


@dataclass(frozen=True)
class Event:
    """One start or end of a span, named the same way in every run of the program."""

    time: float
    label: str
    span: Span
    edge: str  # "start" or "end"


def _task_labels(trace: Trace) -> dict[int, str]:
    """Task span id -> ``name#rank`` (rank among the tasks of that name, in start order)."""
    tasks = sorted(
        (s for s in trace.spans if s.kind == "task"), key=lambda s: (s.start, s.start_seq)
    )
    counts: dict[str, int] = {}
    labels: dict[int, str] = {}
    for span in tasks:
        n = counts[span.name] = counts.get(span.name, 0) + 1
        labels[span.span_id] = f"{span.name}#{n}"
    return labels


def events(trace: Trace) -> list[Event]:
    """The trace's order of events (task, coroutine, await and gather starts and ends)."""
    labels = _task_labels(trace)
    renames = {
        str(s.attributes.get("asynctrace.task.name")): labels[s.span_id]
        for s in trace.spans
        if s.kind == "task" and s.span_id in labels
    }

    def stable(text: str) -> str:
        return _TASK_NAME.sub(lambda m: renames.get(m.group(0), m.group(0)), text)

    keyed: list[tuple[float, int, Event]] = []
    for span in trace.spans:
        if span.kind not in _KINDS:
            continue
        if span.kind == "task":
            what = labels.get(span.span_id, span.name)
        else:
            what = f"{labels.get(span.track, '?')}: {stable(span.name)}"
            if span.kind == "coroutine":
                what += "()"
        keyed.append(
            (span.start, span.start_seq, Event(span.start, f"{what} starts", span, "start"))
        )
        if span.status != "unfinished":
            label = f"{what} ends" + ("" if span.status == "ok" else f" [{span.status}]")
            keyed.append((span.end, span.end_seq, Event(span.end, label, span, "end")))
    keyed.sort(key=lambda k: (k[0], k[1]))
    return [k[2] for k in keyed]


def first_divergence(a: list[Event], b: list[Event]) -> int | None:
    """The index of the first event where the two orders differ; None if they are the same."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x.label != y.label:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def divergence_text(passing: list[Event], failing: list[Event], at: int) -> str:
    """The first divergence in words: which event comes first in the failing run."""
    if at >= len(failing):
        return f"the failing run ended where the passing run went on with '{passing[at].label}'"
    if at >= len(passing):
        return f"the passing run ended where the failing run went on with '{failing[at].label}'"
    first, expected = failing[at].label, passing[at].label
    if any(ev.label == expected for ev in failing[at + 1 :]):
        return f"'{first}' comes before '{expected}' (in the passing run, after it)"
    return f"the failing run has '{first}' where the passing run has '{expected}'"


def side_by_side(
    passing: list[Event], failing: list[Event], at: int | None, titles: tuple[str, str]
) -> str:
    """The two orders of events in two columns around ``at``, the first difference marked ``>>``."""
    centre = at if at is not None else max(len(passing), len(failing))
    lo = max(0, centre - _CONTEXT_BEFORE)
    hi = min(max(len(passing), len(failing)), centre + _CONTEXT_AFTER + 1)
    rows = [f"     {titles[0]:<{_COLUMN}} | {titles[1]}"]
    if lo > 0:
        rows.append(f"     ... {lo} events in the same order ...")
    for i in range(lo, hi):
        left = _cell(passing, i)
        right = _cell(failing, i)
        mark = ">>" if i == at else "  "
        rows.append(f"{mark}{i + 1:>3} {left:<{_COLUMN}} | {right}")
    rest = max(len(passing), len(failing)) - hi
    if rest > 0:
        rows.append(f"     ... {rest} more events")
    return "\n".join(rows)


def _cell(evs: list[Event], i: int) -> str:
    if i >= len(evs):
        return "(run ended)"
    ev = evs[i]
    text = f"t={ev.time:.6g} {ev.label}"
    return text if len(text) <= _COLUMN else text[: _COLUMN - 3] + "..."


def marked_chrome(trace: Trace, evs: list[Event], at: int | None, note: str) -> dict[str, Any]:
    """The trace as a Chrome JSON document with the first diverging event marked.

    The span of that event gets the :data:`DIVERGENCE` attribute, and a global instant event
    (a vertical line in Perfetto) stands at its time, named ``note``.
    """
    from .._export._chrome import PID, to_chrome

    event = evs[at] if at is not None and at < len(evs) else None
    if event is not None:
        event.span.attributes[DIVERGENCE] = f"{event.edge}: {note}"
    doc = to_chrome(trace)
    if event is None:
        return doc
    for ev in doc["traceEvents"]:
        args = ev.get("args")
        if (
            ev.get("ph") == "X"
            and isinstance(args, dict)
            and args.get("span_id") == event.span.span_id
        ):
            ts = ev["ts"] if event.edge == "start" else ev["ts"] + ev.get("dur", 0)
            doc["traceEvents"].append(
                {"ph": "i", "s": "g", "pid": PID, "tid": ev["tid"], "ts": ts, "name": note}
            )
            break
    return doc
