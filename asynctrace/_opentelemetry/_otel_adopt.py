"""The live side of a run of many traces: spans the program makes current, tasks that start one.

Problem: an instrumentation makes its server span current around a request's handler
(``start_as_current_span``, continuing the caller's ``traceparent``): what asynctrace records
there belongs in that span's trace, under it, and spans started there (an outbound HTTP call)
must get asynctrace's running span as parent, in that trace.  A server's connection task
started from a protocol callback should be a trace of its own.  Nothing of this may cost the
hot path.

Solution: OpenTelemetry's runtime context is wrapped once per process (:func:`install`), so that
:meth:`Adopter.attach` sees every context made current.  One whose span is not asynctrace's
(the program's span) is an adoption: an :class:`~_coro.AdoptionMark` is pushed on the
running task's chain (outside a task: set as the current gather), so that spans starting under
it get it as parent like under a traced call, its place is registered in the
:class:`~_otel_traces.TraceMap`, and the context actually made current holds an
:class:`AdoptedSpan`: it answers ``get_span_context()`` with the innermost recorded span in the
program's span's trace (the program's span itself until something is recorded under it) and
passes everything else (``set_attribute``, ``add_event``...) to the program's span.  Detaching
pops the mark.  When a task is made (:meth:`Adopter.task_made`, from ``_instrument``), it is
registered in the trace it is made in, or starts one of its own (``trace_per``), with a
:class:`TraceSpan` made current in its context.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable, Mapping
from types import CodeType
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.context.context import Context, _RuntimeContext
from opentelemetry.trace import INVALID_SPAN, NonRecordingSpan, SpanContext, Status, StatusCode
from opentelemetry.util import types

from .._core import _coro
from .._core._coro import AdoptionMark, FnInfo
from ._otel_traces import TraceMap, TracePlace
from ._otlp import new_trace_id, otel_span_id

if TYPE_CHECKING:
    from ._otel import OtelBridge

_SAMPLED = otel_trace.TraceFlags(otel_trace.TraceFlags.SAMPLED)

_adopter: Adopter | None = None  # the active run's; None: the wrapper only passes through
_install_lock = threading.Lock()


class TraceSpan(NonRecordingSpan):
    """Current in a trace other than the run's: names the recorded span running when asked.

    ``program_span`` (an adoption): the program's span, whose context it gives while nothing
    is recorded under it, and which gets what is recorded into the current span.
    """

    def __init__(self, adopter: Adopter, trace_id: int, mark: int, program_span: Any) -> None:
        context = program_span.get_span_context() if program_span is not None else None
        super().__init__(context or SpanContext(trace_id, 1, False, _SAMPLED))
        self._adopter = adopter
        self._trace_id = trace_id
        self._mark = mark
        self._program_span = program_span
        # what the program's span carries on to its children: tracestate, the sampled flag
        self._flags = _SAMPLED if context is None else context.trace_flags
        self._trace_state = None if context is None else context.trace_state

    @property
    def trace_id(self) -> int:
        return self._trace_id

    def get_span_context(self) -> SpanContext:
        parent, _track = _coro.current_parent()
        if parent == self._mark and self._program_span is not None:
            return self._program_span.get_span_context()  # type: ignore[no-any-return]
        span_id = otel_span_id(self._adopter.traces.span_id_base, parent)
        return SpanContext(self._trace_id, span_id, False, self._flags, self._trace_state)

    # What the program records into the current span reaches its own span.

    def is_recording(self) -> bool:
        span = self._program_span
        return span is not None and bool(span.is_recording())

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        if self._program_span is not None:
            self._program_span.set_attributes(attributes)

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        if self._program_span is not None:
            self._program_span.set_attribute(key, value)

    def add_event(
        self,
        name: str,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
    ) -> None:
        if self._program_span is not None:
            self._program_span.add_event(name, attributes, timestamp)

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if self._program_span is not None:
            self._program_span.add_link(context, attributes)

    def update_name(self, name: str) -> None:
        if self._program_span is not None:
            self._program_span.update_name(name)

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._program_span is not None:
            self._program_span.set_status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        if self._program_span is not None:
            self._program_span.record_exception(exception, attributes, timestamp, escaped)

    def end(self, end_time: int | None = None) -> None:
        if self._program_span is not None:
            self._program_span.end(end_time)

    def __repr__(self) -> str:
        return f"TraceSpan(trace_id=0x{self._trace_id:032x}, program_span={self._program_span!r})"


class _Adoption:
    __slots__ = ("gather_token", "mark", "root", "token")

    def __init__(self, token: object, mark: AdoptionMark, root: Any, gather_token: Any) -> None:
        self.token = token
        self.mark = mark
        self.root = root
        self.gather_token = gather_token


class Adopter:
    """The run's adoptions and traces of its own; see the module docstring.

    Args:
        bridge: the run's OpenTelemetry bridge (its run span is current outside other traces).
        traces: where places are registered.
        trace_per: ``auto``, ``task`` or ``run`` (see docs/distributed.md).
    """

    def __init__(self, bridge: OtelBridge, traces: TraceMap, trace_per: str) -> None:
        self.bridge = bridge
        self.traces = traces
        self.trace_per = trace_per
        self.main_tasks: set[int] = set()
        # id(token) -> adoption (tokens are not hashable; the adoption holds its token, so the
        # id stays its own until the detach pops it)
        self._adoptions: dict[int, _Adoption] = {}

    def start(self) -> None:
        global _adopter
        install()
        _adopter = self
        from .._core import _instrument

        _instrument.task_made = self.task_made

    def stop(self) -> None:
        global _adopter
        if _adopter is self:
            _adopter = None
        from .._core import _instrument

        if _instrument.task_made == self.task_made:
            _instrument.task_made = None

    def attach(self, runtime: _RuntimeContext, context: Context) -> object:
        """Make ``context`` current; a span of the program in it adopts what runs under it."""
        span = otel_trace.get_current_span(context)
        if (
            span is INVALID_SPAN
            or isinstance(span, (TraceSpan, self.bridge.live_span_type))
            or not _coro.active
            or asyncio._get_running_loop() is None  # a worker thread: the program's business
        ):
            return runtime.attach(context)
        span_context = span.get_span_context()
        if not span_context.is_valid:
            return runtime.attach(context)
        parent, _track = _coro.current_parent()
        root = _coro.current_root.get()
        sid = _coro.next_id()
        trace_id = span_context.trace_id
        outer = self.traces.places.get(parent)
        if outer is not None and outer.timeline_parent is not None:
            parent = outer.timeline_parent  # a mark over a mark: the span under both
        place = TracePlace(
            trace_id, remote_parent=(trace_id, span_context.span_id), timeline_parent=parent
        )
        self.traces.places[sid] = place
        live = TraceSpan(self, trace_id, sid, span)
        token = runtime.attach(otel_trace.set_span_in_context(live, context))
        if root is not None and root._task_name is not None:
            mark = AdoptionMark(sid, parent, root._top)
            info = mark._info
            code = info.code if isinstance(info, FnInfo) else info
            place.code = code if isinstance(code, CodeType) else None
            root._top = mark
            self._adoptions[id(token)] = _Adoption(token, mark, root, None)
        else:
            mark = AdoptionMark(sid, parent, None)
            gather_token = _coro.current_gather.set(sid)
            self._adoptions[id(token)] = _Adoption(token, mark, None, gather_token)
        return token

    def detach(self, runtime: _RuntimeContext, token: Any) -> None:
        """Undo an attach; an adoption's mark leaves its chain and its place ends."""
        adoption = self._adoptions.get(id(token))
        if adoption is not None and adoption.token is token:
            del self._adoptions[id(token)]
        else:
            adoption = None
        runtime.detach(token)  # a token of another context raises here, as without asynctrace
        if adoption is None:
            return
        mark = adoption.mark
        place = self.traces.places.get(mark._sid)
        if place is not None:
            place.ended = True
        root = adoption.root
        if root is None:
            with contextlib.suppress(ValueError):  # detached in another context: leave it
                _coro.current_gather.reset(adoption.gather_token)
            return
        if root._top is mark:
            root._top = mark._outer
            return
        link = root._top
        while link is not root and link is not None:  # popped out of order: unlink it
            outer = getattr(link, "_outer", None)
            if outer is mark:
                link._outer = mark._outer
                return
            link = outer

    def task_made(self, root: Any) -> Callable[[], None] | None:
        """A task is being made in the current context (before it is): register its trace.

        Returns what to call once it is made (a trace of its own was made current for it to
        inherit), or None.
        """
        span = otel_trace.get_current_span()
        places = self.traces.places
        if isinstance(span, TraceSpan):
            parent = root._parent
            mark = places.get(parent)
            if mark is not None and mark.timeline_parent is not None:
                # made directly under the program's span: that is its parent in the trace
                root._parent = mark.timeline_parent
                places[root._sid] = TracePlace(span.trace_id, remote_parent=mark.remote_parent)
            else:
                places[root._sid] = TracePlace(span.trace_id)
            return None
        if not isinstance(span, self.bridge.live_span_type):
            return None
        if asyncio._get_running_loop() is None:  # asyncio.run / run_until_complete: a main task
            self.main_tasks.add(root._sid)
            return None
        # A callback's context is a copy of the one that scheduled it: its root is no task's.
        creator = _coro.current_root.get() if asyncio.current_task() is not None else None
        if (
            self.trace_per == "run"
            or not (
                creator is None or (self.trace_per == "task" and creator._sid in self.main_tasks)
            )
            or _asyncios_own(root)  # the loop's accept task: its connection's task starts one
        ):
            return None
        parent = root._parent
        run_trace = self.traces.run_trace_of(parent)
        trace_id = new_trace_id()
        places[root._sid] = TracePlace(
            trace_id, link=(run_trace, otel_span_id(self.traces.span_id_base, parent))
        )
        token = otel_context.attach(
            otel_trace.set_span_in_context(TraceSpan(self, trace_id, root._sid, None))
        )
        return lambda: otel_context.detach(token)


_ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep


def _asyncios_own(root: Any) -> bool:
    """True for a task running a coroutine of asyncio's own (a loop's connection accept)."""
    info = root._info
    code = info.code if isinstance(info, FnInfo) else info
    return isinstance(code, CodeType) and code.co_filename.startswith(_ASYNCIO_DIR)


class _AdoptingContext(_RuntimeContext):
    """OpenTelemetry's runtime context, seen by the active :class:`Adopter` (if any)."""

    def __init__(self, inner: _RuntimeContext) -> None:
        self.inner = inner

    def attach(self, context: Context) -> Any:
        adopter = _adopter
        if adopter is None:
            return self.inner.attach(context)
        return adopter.attach(self.inner, context)

    def get_current(self) -> Context:
        return self.inner.get_current()

    def detach(self, token: Any) -> None:
        adopter = _adopter
        if adopter is None:
            self.inner.detach(token)
        else:
            adopter.detach(self.inner, token)


def install() -> None:
    """Wrap OpenTelemetry's runtime context, once per process (it then stays)."""
    with _install_lock:
        if not isinstance(otel_context._RUNTIME_CONTEXT, _AdoptingContext):
            otel_context._RUNTIME_CONTEXT = _AdoptingContext(otel_context._RUNTIME_CONTEXT)
