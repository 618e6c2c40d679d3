"""Living inside OpenTelemetry: one trace id per run, live parents for other spans, delivery.

Problem: building live SDK spans on every await costs ~14x on fanout, yet spans that the
program or other instrumentation (an HTTP client, a database driver) create inside a traced
coroutine must become children of that coroutine's span, in the same trace, and a span current
when tracing starts must become the run's parent.

Solution: :class:`OtelBridge` decides the run's trace id and the base of its span ids when
tracing starts (from the current span, else from a ``TRACEPARENT`` variable that a parent
process under asynctrace passed down, else new), so the OpenTelemetry id of every recorded span
is known at once (:func:`~_otlp.otel_span_id`).  The current span while tracing is
one non-recording span that, when asked, names the recorded span running in the asking task:
other spans get it as parent and nothing is built on the hot path.  Child processes started
with ``asyncio.create_subprocess_*`` get ``TRACEPARENT`` naming the span that started them.
At stop, the recorded spans are built once and delivered off the event loop: to the OTLP
exporter asked for, to an OTLP JSON file, and to the program's own global SDK
``TracerProvider`` when it set one.

Importing this module imports the OpenTelemetry API; it is imported only when needed.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from .._core import _coro
from .._core._record import Recorder
from .._model._spans import Trace
from ._otel_adopt import Adopter
from ._otel_traces import TraceMap
from ._otlp import DEFAULT_MAX_TRACE_SPANS, new_span_id_base, new_trace_id, otel_span_id

TRACEPARENT = "TRACEPARENT"
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def _parse_traceparent(value: str) -> SpanContext | None:
    """The span context of a W3C ``traceparent`` value, or None when it is malformed."""
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))


def _starting_parent() -> SpanContext | None:
    current = otel_trace.get_current_span().get_span_context()
    if current.is_valid:
        return current
    return _parse_traceparent(os.environ.get(TRACEPARENT, ""))


class _LiveSpan(NonRecordingSpan):
    """The current OpenTelemetry span while tracing: whichever recorded span runs when asked.

    A span that other instrumentation starts gets as parent the innermost traced call (or the
    task, or the run) running at that moment in that task: nothing is built per call.
    """

    def __init__(self, bridge: OtelBridge) -> None:
        super().__init__(bridge.span_context(_coro.run_sid))
        self._bridge = bridge

    def get_span_context(self) -> SpanContext:
        return self._bridge.current_context()


class OtelBridge:
    """The OpenTelemetry side of one traced run; see the module docstring.

    Args:
        recorder: the run's recorder (its built spans are given their traces).
        deliver: callables given ``(trace, bridge)`` at stop (the OTLP exporter, the JSON file).
        trace_per: which tasks start a trace of their own: ``auto``, ``task`` or ``run``.
        max_trace_spans: span ids per part of the run's trace (0: one part).
    """

    live_span_type = _LiveSpan

    def __init__(
        self,
        recorder: Recorder,
        deliver: tuple[Callable[[Trace, OtelBridge], None], ...] = (),
        *,
        trace_per: str = "auto",
        max_trace_spans: int = DEFAULT_MAX_TRACE_SPANS,
    ) -> None:
        self.parent_context = _starting_parent()
        self.trace_id = (
            self.parent_context.trace_id if self.parent_context is not None else new_trace_id()
        )
        self.span_id_base = new_span_id_base()
        self.deliver = deliver
        self.recorder = recorder
        self.traces = TraceMap(recorder, self.trace_id, self.span_id_base, max_trace_spans)
        self.adopter = Adopter(self, self.traces, trace_per)
        self._orig_exec: Any = None
        self._orig_shell: Any = None
        self._token: object = None

    def span_context(self, sid: int) -> SpanContext:
        """The OpenTelemetry span context of recorded span ``sid`` of the run's trace."""
        trace_id = self.traces.run_trace_of(sid)
        return SpanContext(trace_id, otel_span_id(self.span_id_base, sid), False, _SAMPLED)

    def traceparent(self) -> str:
        """``traceparent`` of the span running now (the run's outside any task)."""
        context = self.current_context()
        return f"00-{context.trace_id:032x}-{context.span_id:016x}-01"

    def current_context(self) -> SpanContext:
        """The span context of the innermost recorded span running in this task now."""
        parent, _track = _coro.current_parent()
        return self.span_context(parent)

    def start(self) -> None:
        """Make recorded spans current while they run; pass trace context to child processes.

        One :class:`_LiveSpan` is made current here, once: every task created from now on
        inherits it with its context, and it names whichever recorded span runs when asked.
        """
        self.recorder.traces = self.traces
        self._token = otel_context.attach(otel_trace.set_span_in_context(_LiveSpan(self)))
        self.adopter.start()
        self._orig_exec = asyncio.create_subprocess_exec
        self._orig_shell = asyncio.create_subprocess_shell
        asyncio.create_subprocess_exec = self._with_traceparent(self._orig_exec)
        asyncio.create_subprocess_shell = self._with_traceparent(self._orig_shell)

    def stop(self) -> None:
        """Undo :meth:`start` (the live span stays only where a stop in another context left it:
        it then names the run span)."""
        self.adopter.stop()
        if isinstance(otel_trace.get_current_span(), _LiveSpan):
            otel_context.detach(self._token)  # type: ignore[arg-type]
        if self._orig_exec is not None:
            asyncio.create_subprocess_exec = self._orig_exec
            asyncio.create_subprocess_shell = self._orig_shell

    def _with_traceparent(self, create: Any) -> Any:
        async def create_subprocess(*args: Any, **kwargs: Any) -> Any:
            env = kwargs.get("env")
            kwargs["env"] = {
                **(os.environ if env is None else env),
                TRACEPARENT: self.traceparent(),
            }
            return await create(*args, **kwargs)

        create_subprocess.__wrapped__ = create  # type: ignore[attr-defined]
        return create_subprocess

    def publish(self, trace: Trace) -> None:
        """Deliver the finished trace everywhere it is due; failures are reported, not raised."""
        from .._tracing import report

        for deliver in self.deliver:
            try:
                deliver(trace, self)
            except Exception as exc:  # a destination MUST NOT break the program or the others
                report(f"OpenTelemetry delivery failed: {exc}")
        try:
            self._to_global_provider(trace)
        except Exception as exc:
            report(f"could not hand the spans to the program's TracerProvider: {exc}")

    def _to_global_provider(self, trace: Trace) -> None:
        """Hand the spans to the program's own SDK TracerProvider, when it set one."""
        if "opentelemetry.sdk.trace" not in sys.modules:
            return
        from opentelemetry.sdk.trace import TracerProvider

        from ._otlp import readable_spans

        provider = otel_trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider) or _is_ours(provider):
            return
        processor = provider._active_span_processor
        for span in readable_spans(
            trace,
            resource=provider.resource,
            trace_id=self.trace_id,
            span_id_base=self.span_id_base,
            parent_context=self.parent_context,
        ):
            processor.on_end(span)


def _is_ours(provider: Any) -> bool:
    """True for the provider asynctrace set for the program's spans (they export already)."""
    from ._otel_program import ProgramSpans

    processors = getattr(provider._active_span_processor, "_span_processors", ())
    return any(isinstance(p, ProgramSpans) for p in processors)
