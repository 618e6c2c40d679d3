"""Which OpenTelemetry trace each recorded span is in, and its parent there.

Problem: a run is not always one trace.  A span the program makes current (a server span
continuing a caller's ``traceparent``) adopts the spans recorded under it into its own trace; a
task started outside any task may start a trace of its own (``trace_per``); and the run's own
trace MUST stay small enough for Jaeger to open.  Spans are built in batches while a run is
streamed, children before their parents, so a span's trace cannot wait for its ancestors.

Solution: the places where a trace begins are registered when they begin, by the live side
(``_otel_adopt.py``), in :class:`TraceMap`: an adoption mark (its trace, the program's span as
parent), a task that starts a trace (a new trace, a link to where it began), a task made inside
another trace (that trace).  At build time :meth:`TraceMap.place` walks each span's ancestors
(the batch, the spans still open) to the nearest registered one; a span with none is in the
run's trace, which is cut by span id into parts of at most ``max_trace_spans`` ids: a span whose
parent is in an earlier part starts its part, linked to that parent.  Each span gets
``otel.trace_id`` and ``otel.span_id`` (hex, as backends show them), ``otel.parent_span_id``
when its OpenTelemetry parent is not its timeline parent, and ``otel.link`` when it starts a
trace linked to another; :func:`~_otlp.otlp_spans` reads them back.  Spans
whose timeline parent was an adoption mark get the mark's parent instead.  A streamed run
forgets a registered place once the spans that need it are built.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import CodeType

from .._core._record import Recorder
from .._model._spans import Span
from ._otlp import LINK_KEY, PARENT_KEY, SPAN_KEY, TRACE_KEY, otel_span_id

_MASK128 = (1 << 128) - 1
_PART_MIX = 0x9E3779B97F4A7C15F39CC0605CEDC835  # odd: parts' trace ids differ from each other


@dataclass(slots=True)
class TracePlace:
    """Where a trace begins, or which trace a task made inside one is in.

    Attributes:
        trace_id: the trace of the spans under it.
        remote_parent: (trace id, span id) of the program's span that is the OpenTelemetry
            parent of the spans directly under it (an adoption), else None.
        link: (trace id, span id) that a task starting a trace links to, else None.
        timeline_parent: for an adoption mark, the span that ran when it began: the timeline
            parent of the spans directly under the mark.  None for a task.
        ended: for an adoption mark, set when the program's span stopped being current.
        code: for an adoption mark, the code of the traced call it was pushed over (awaits
            under the mark are at places in it).
    """

    trace_id: int
    remote_parent: tuple[int, int] | None = None
    link: tuple[int, int] | None = None
    timeline_parent: int | None = None
    ended: bool = False
    code: CodeType | None = None


def part_trace_id(run_trace_id: int, part: int) -> int:
    """The trace id of part ``part`` of the run's trace (part 0 is the run's own id)."""
    if part == 0:
        return run_trace_id
    return ((run_trace_id ^ (part * _PART_MIX)) & _MASK128) or 1


class TraceMap:
    """The traces of one run's spans; see the module docstring.

    Args:
        recorder: the run's recorder (its live roots give the parents of open spans).
        run_trace_id: the run's trace id.
        span_id_base: see :func:`~asynctrace._opentelemetry._otlp.otel_span_id`.
        max_trace_spans: span ids per part of the run's trace; 0: one part.
    """

    def __init__(
        self, recorder: Recorder, run_trace_id: int, span_id_base: int, max_trace_spans: int
    ) -> None:
        self.recorder = recorder
        self.run_trace_id = run_trace_id
        self.span_id_base = span_id_base
        self.max_trace_spans = max_trace_spans
        self.places: dict[int, TracePlace] = {}
        self._ending: list[list[int]] = [[], []]  # marks ended, forgotten two batches later

    def run_trace_of(self, sid: int) -> int:
        """The trace id of span ``sid`` of the run's trace (its part)."""
        if not self.max_trace_spans:
            return self.run_trace_id
        return part_trace_id(self.run_trace_id, sid // self.max_trace_spans)

    def code_of(self, sid: int) -> CodeType | None:
        """The code an adoption mark ``sid`` was pushed over, else None."""
        place = self.places.get(sid)
        return None if place is None else place.code

    def place(self, spans: list[Span], streaming: bool) -> None:
        """Give each span its trace, its OpenTelemetry parent and link (attributes).

        ``streaming``: these spans are a batch of a streamed run, built once: forget the
        places that no later span needs.
        """
        places = self.places
        parents = {span.span_id: span.parent_id for span in spans}
        parents.update(self._open_parents())
        found: dict[int, TracePlace | None] = {}

        def place_of(sid: int | None) -> TracePlace | None:
            """The nearest registered place at ``sid`` or above it, None for the run's trace."""
            path = []
            result = None
            while sid is not None:
                if sid in found:
                    result = found[sid]
                    break
                result = places.get(sid)
                if result is not None:
                    break
                path.append(sid)
                sid = parents.get(sid)
            for step in path:
                found[step] = result
            return result

        base = self.span_id_base
        for span in spans:
            sid = span.span_id
            parent = span.parent_id
            attrs = span.attributes
            own = places.get(sid)
            mark = places.get(parent) if parent is not None else None
            if mark is not None and mark.timeline_parent is not None:
                # directly under an adoption mark: the program's span is its parent
                span.parent_id = mark.timeline_parent
                trace_id = mark.trace_id
                if mark.remote_parent is not None:
                    attrs[PARENT_KEY] = f"{mark.remote_parent[1]:016x}"
            elif own is not None:  # a task registered when it was made
                trace_id = own.trace_id
                if own.link is not None:
                    attrs[LINK_KEY] = _hex_pair(own.link)
                elif own.remote_parent is not None:
                    attrs[PARENT_KEY] = f"{own.remote_parent[1]:016x}"
            else:
                outer = place_of(parent)
                if outer is not None:
                    trace_id = outer.trace_id
                else:
                    trace_id = self.run_trace_of(sid)
                    if parent is not None and self.run_trace_of(parent) != trace_id:
                        # its parent is in an earlier part: this span starts its part
                        attrs[LINK_KEY] = _hex_pair(
                            (self.run_trace_of(parent), otel_span_id(base, parent))
                        )
            attrs[TRACE_KEY] = f"{trace_id:032x}"
            attrs[SPAN_KEY] = f"{otel_span_id(base, sid):016x}"
        if streaming:
            self._forget(spans)

    def _open_parents(self) -> dict[int, int]:
        """sid -> parent of the tasks and traced calls still running, and of adoption marks."""
        parents: dict[int, int] = {}
        for root in self.recorder.live_roots():
            if root._task_name is None:  # ended: its _top is no chain any more
                continue
            root_sid = root._sid
            parents[root_sid] = root._parent
            call = root._top
            while call is not root:
                parent = getattr(call, "_parent", None)  # a call merged into its task has none
                if parent is not None and call._sid != root_sid:
                    parents[call._sid] = parent
                call = call._outer
        return parents

    def _forget(self, spans: list[Span]) -> None:
        """After a streamed batch: drop the tasks built in it, and the marks that ended two
        batches ago (a span under a mark is appended before the mark ends, but may be in the
        batch after the one being built when it ended)."""
        places = self.places
        for span in spans:
            if span.kind == "task":
                places.pop(span.span_id, None)
        for sid in self._ending.pop(0):
            places.pop(sid, None)
        scheduled = {sid for batch in self._ending for sid in batch}
        self._ending.append(
            [sid for sid, place in list(places.items()) if place.ended and sid not in scheduled]
        )


def _hex_pair(context: tuple[int, int]) -> str:
    return f"{context[0]:032x}-{context[1]:016x}"
