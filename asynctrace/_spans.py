"""The span tree that every exporter and assertion reads.

Problem: the recorder keeps raw tuples on the event loop's hot path; exporters, the terminal
timeline and the test assertions want named, linked, typed spans.

Solution: :class:`Trace` is built once, at export time and off the hot path, from the recorder's
records (see ``_record.py``) or from a JSON timeline written earlier (see ``_chrome.py``).  It is a
plain, immutable-by-convention value: exporters MUST NOT mutate it.

Times are seconds on the trace's clock, relative to the moment tracing started (``0.0``).
Intervals are half-open ``[start, end)``.  Exact ties (common under the virtual clock) are broken
by ``start_seq``/``end_seq``: the order in which the recorder saw the events.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["run", "task", "coroutine", "gather", "await", "blocked", "thread"]
Status = Literal["ok", "error", "cancelled", "timeout", "unfinished"]

KINDS: tuple[Kind, ...] = ("run", "task", "coroutine", "gather", "await", "blocked", "thread")
STATUSES: tuple[Status, ...] = ("ok", "error", "cancelled", "timeout", "unfinished")


@dataclass(eq=False)
class Span:
    """One recorded interval: a run, task, coroutine call, gather, await, blocked step, thread job.

    ``parent``/``children`` are filled in by :class:`Trace`; ``track`` is the ``span_id`` of the
    task (or thread job, or run) whose timeline row the span is drawn on.
    """

    span_id: int
    parent_id: int | None
    kind: Kind
    name: str
    start: float
    end: float
    track: int
    status: Status = "ok"
    error: str | None = None
    attributes: dict[str, object] = field(default_factory=dict)
    start_seq: int = 0
    end_seq: int = 0
    parent: Span | None = field(default=None, repr=False)
    children: list[Span] = field(default_factory=list, repr=False)

    @property
    def duration(self) -> float:
        """Seconds from start to end."""
        return self.end - self.start

    def __repr__(self) -> str:
        return (
            f"<Span {self.kind} {self.name!r} {self.start:.6f}..{self.end:.6f}s"
            f" status={self.status} id={self.span_id}>"
        )


class Trace:
    """The spans of one traced run, linked into a tree, in start order.

    Args:
        spans: the spans, in any order; parents are linked by ``parent_id``.
        clock: ``"monotonic"`` or ``"virtual"`` (loop time that jumps over idle waits).
        epoch_ns: wall-clock epoch nanoseconds of trace time ``0.0``.
        dropped: how many spans the recorder discarded because of its cap.
    """

    def __init__(
        self,
        spans: list[Span],
        *,
        clock: str = "monotonic",
        epoch_ns: int = 0,
        dropped: int = 0,
    ) -> None:
        self.spans = sorted(spans, key=lambda s: (s.start, s.start_seq))
        self.clock = clock
        self.epoch_ns = epoch_ns
        self.dropped = dropped
        self.by_id: dict[int, Span] = {s.span_id: s for s in self.spans}
        for span in self.spans:
            span.children = []
        for span in self.spans:
            span.parent = self.by_id.get(span.parent_id) if span.parent_id is not None else None
            if span.parent is not None:
                span.parent.children.append(span)

    def __iter__(self) -> Iterator[Span]:
        return iter(self.spans)

    def __len__(self) -> int:
        return len(self.spans)

    def __repr__(self) -> str:
        return f"<Trace {len(self.spans)} spans clock={self.clock}>"

    @property
    def roots(self) -> list[Span]:
        """Spans without a recorded parent."""
        return [s for s in self.spans if s.parent is None]

    @property
    def tracks(self) -> list[Span]:
        """The spans that own a timeline row (run, tasks, thread jobs), in creation order."""
        ids = {s.track for s in self.spans}
        return sorted(
            (self.by_id[i] for i in ids if i in self.by_id),
            key=lambda s: (s.start_seq, s.span_id),
        )

    def spans_matching(
        self, name_glob: str | None = None, kind: str | None = None, **attributes: object
    ) -> list[Span]:
        """Spans whose name matches the glob, of the kind, with these attribute values."""
        if kind is not None and kind not in KINDS:
            msg = f"kind={kind!r} is not a span kind; use one of {', '.join(KINDS)}"
            raise ValueError(msg)
        found = []
        for span in self.spans:
            if name_glob is not None and not fnmatch.fnmatchcase(span.name, name_glob):
                continue
            if kind is not None and span.kind != kind:
                continue
            if any(span.attributes.get(k) != v for k, v in attributes.items()):
                continue
            found.append(span)
        return found

    @property
    def end(self) -> float:
        """The latest end time in the trace (0.0 when empty)."""
        return max((s.end for s in self.spans), default=0.0)
