"""OTLP export: a :class:`~asynctrace._model._spans.Trace` as OpenTelemetry spans, sent or written.

Problem: the recorder builds spans after the run, but OpenTelemetry backends want spans with
ids that other instrumentation may already have seen live (an HTTP client's span whose parent is
a recorded await), a service name, and a delivery that cannot hang or break the program when the
collector is down.

Solution: :func:`otlp_spans` makes each span what OTLP writes of it (an
``_otlp_proto.OtlpSpan``) after the fact, with explicit times and ids from
:func:`otel_span_id` (the same function the live side uses), and no SDK span object:
``_otlp_send.OtlpExport`` encodes and sends them; :func:`write_otlp_json` writes the OTLP/JSON
file encoding; :func:`readable_spans` makes SDK ``ReadableSpan``\\ s of them for a
TracerProvider of the program's.  OpenTelemetry is imported here only inside functions:
``import asynctrace`` MUST NOT import it (about 110 ms).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .. import __version__
from .._export._files import write_whole
from .._export._sanitize import clean
from ._otlp_proto import OtlpEvent, OtlpLink, OtlpSpan

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext

    from .._model._spans import Span, Trace

# The attributes _otel_traces.TraceMap gives a span, hex as backends show ids (read here for the
# span's trace and parent, not exported as attributes).
TRACE_KEY = "otel.trace_id"
SPAN_KEY = "otel.span_id"
PARENT_KEY = "otel.parent_span_id"  # when it is not the span's timeline parent
LINK_KEY = "otel.link"  # "<trace id>-<span id>": a span that starts a trace links there
OTEL_KEYS = (TRACE_KEY, SPAN_KEY, PARENT_KEY, LINK_KEY)
# How _otel_traces.TraceMap cuts a run into traces (here, so that the options can be read and
# checked without importing it): which tasks start a trace of their own (the default first),
# and the most span ids in one part of the run's trace.
TRACE_PER = ("auto", "task", "run")
DEFAULT_MAX_TRACE_SPANS = 10_000

_INTERNAL = 1  # OTLP's SPAN_KIND_INTERNAL
_UNSET, _ERROR = 0, 2  # OTLP's status codes
_MASK64 = (1 << 64) - 1
_MIX = 0x9E3779B97F4A7C15  # odd, so sid -> sid * _MIX is a bijection modulo 2**64
_MIX_INVERSE = pow(_MIX, -1, 1 << 64)
_HALF = 1 << 63


def otel_span_id(span_id_base: int, sid: int) -> int:
    """The 64-bit OpenTelemetry span id of recorded span ``sid`` in a trace: never 0.

    Cheap enough for the live side (one multiply, one xor) and one-to-one in ``sid`` for a
    fixed base.  With a base from :func:`new_span_id_base` no ``sid`` below 2**63 hits the
    zero fallback.
    """
    return (((sid * _MIX) & _MASK64) ^ span_id_base) or _MASK64


def new_span_id_base() -> int:
    """A random base for :func:`otel_span_id` whose 0 and fallback ids are out of reach."""
    while True:
        base = int.from_bytes(os.urandom(8), "big")
        zero_sid = (base * _MIX_INVERSE) & _MASK64
        fallback_sid = ((_MASK64 ^ base) * _MIX_INVERSE) & _MASK64
        if zero_sid >= _HALF and fallback_sid >= _HALF:
            return base


def new_trace_id() -> int:
    """A random, non-zero 128-bit trace id."""
    return int.from_bytes(os.urandom(16), "big") or 1


def otlp_spans(
    trace: Trace,
    *,
    resource: Resource,
    trace_id: int,
    span_id_base: int,
    parent_context: SpanContext | None = None,
    link_all: bool = False,
) -> Iterator[OtlpSpan]:
    """The trace's spans as OTLP writes them, with explicit ids, parents and times, made as
    they are taken (an export of a large trace holds one batch of them at a time).

    Args:
        trace: the spans; not modified.
        resource: the SDK ``Resource`` (service name).
        trace_id: the OpenTelemetry trace id; MUST equal ``parent_context.trace_id`` if given.
        span_id_base: see :func:`otel_span_id`.
        parent_context: the span current when tracing started; parent of the root spans.
        link_all: link each span to its parent even when the parent is not in ``trace`` (a
            batch of a run sent as it goes); else such a span (its parent dropped) is a root.

    Raises:
        ValueError: ``trace_id`` differs from the parent context's (at once, not when
            the first span is taken).
    """
    _check_trace_id(trace_id, parent_context)
    return _otlp_spans(trace, resource, trace_id, span_id_base, parent_context, link_all)


def readable_spans(
    trace: Trace,
    *,
    resource: Resource,
    trace_id: int,
    span_id_base: int,
    parent_context: SpanContext | None = None,
) -> Iterator[ReadableSpan]:
    """The trace's spans as SDK ``ReadableSpan``\\ s (for the program's own TracerProvider):
    :func:`otlp_spans`' ids, parents, times and attributes.  Raises as :func:`otlp_spans`."""
    _check_trace_id(trace_id, parent_context)
    spans = _otlp_spans(trace, resource, trace_id, span_id_base, parent_context, False)
    return _sdk_spans(spans, parent_context)


def _check_trace_id(trace_id: int, parent_context: SpanContext | None) -> None:
    if parent_context is not None and parent_context.trace_id != trace_id:
        msg = (
            f"trace_id={trace_id:032x} differs from the parent context's trace id"
            f" {parent_context.trace_id:032x}; pass trace_id=parent_context.trace_id"
        )
        raise ValueError(msg)


def _sdk_spans(
    spans: Iterator[OtlpSpan], parent_context: SpanContext | None
) -> Iterator[ReadableSpan]:
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

    flags = TraceFlags(TraceFlags.SAMPLED)
    for span in spans:
        parent = None
        if span.parent_id is not None:
            # the same span id is the same span: the context given, with its flags and state
            is_given = parent_context is not None and (
                (span.parent_id, span.parent_remote)
                == (parent_context.span_id, bool(parent_context.is_remote))
            )
            parent = (
                parent_context
                if is_given
                else SpanContext(span.trace_id, span.parent_id, span.parent_remote, flags)
            )
        yield ReadableSpan(
            name=span.name,
            context=SpanContext(span.trace_id, span.span_id, False, flags),
            links=[
                Link(SpanContext(link.trace_id, link.span_id, link.is_remote, flags))
                for link in span.links
            ],
            parent=parent,
            resource=span.resource,
            attributes=span.attributes,
            events=[Event(e.name, e.attributes, e.time) for e in span.events],
            kind=SpanKind(span.kind - 1),
            status=Status(StatusCode(span.status_code), span.status_message),
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.scope,
        )


def _otlp_spans(
    trace: Trace,
    resource: Resource,
    trace_id: int,
    span_id_base: int,
    parent_context: SpanContext | None,
    link_all: bool,
) -> Iterator[OtlpSpan]:
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    scope = InstrumentationScope("asynctrace", __version__)
    trace_end = trace.end
    by_id = trace.by_id
    given: tuple[int | None, bool] = (None, False)  # the roots' parent: (span id, is remote)
    if parent_context is not None:
        given = (parent_context.span_id, bool(parent_context.is_remote))

    def ns(seconds: float) -> int:
        return trace.epoch_ns + round(seconds * 1e9)

    for span in trace.spans:
        end = max(trace_end, span.end) if span.status == "unfinished" else span.end
        start_ns = ns(span.start)
        end_ns = max(ns(end), start_ns)
        attrs = _attributes(span, trace)
        events: list[OtlpEvent] = []
        status, message = _UNSET, None
        if span.status in ("error", "timeout"):
            exc_type, exc_message = _exception(span)
            attrs.setdefault("exception.type", exc_type)
            attrs.setdefault("exception.message", exc_message)
            exc = {"exception.type": exc_type, "exception.message": exc_message}
            events.append(OtlpEvent(end_ns, "exception", exc, 0))
            message = f"{exc_type}: {exc_message}" if exc_message else exc_type
            status = _ERROR
        elif span.status == "cancelled":
            events.append(OtlpEvent(end_ns, "cancelled", {}, 0))
        attributes = span.attributes
        span_trace = trace_id
        links: list[OtlpLink] = []
        parent_id, parent_remote = given
        placed = TRACE_KEY in attributes  # by _otel_traces.TraceMap: its own trace and parent
        if placed:
            span_trace = int(str(attributes[TRACE_KEY]), 16)
            for key in OTEL_KEYS:
                attrs.pop(key, None)
        if placed and LINK_KEY in attributes:
            link_trace, _, link_span = str(attributes[LINK_KEY]).partition("-")
            links.append(OtlpLink(int(link_trace, 16), int(link_span, 16), None, 0, False))
            parent_id, parent_remote = None, False
        elif placed and PARENT_KEY in attributes:
            parent_id, parent_remote = int(str(attributes[PARENT_KEY]), 16), False
        elif span.parent_id is not None and (link_all or span.parent_id in by_id):
            parent_id, parent_remote = otel_span_id(span_id_base, span.parent_id), False
        yield OtlpSpan(
            span_trace,
            otel_span_id(span_id_base, span.span_id),
            "",
            parent_id,
            parent_remote,
            clean(span.name),
            _INTERNAL,
            start_ns,
            end_ns,
            attrs,
            0,
            events,
            0,
            links,
            0,
            status,
            message,
            resource,
            scope,
        )


def _attributes(span: Span, trace: Trace) -> dict[str, Any]:
    # protobuf strings MUST be valid UTF-8 (no lone surrogates) and every string is capped
    attrs: dict[str, Any] = {clean(str(k)): _attribute_value(v) for k, v in span.attributes.items()}
    attrs["asynctrace.kind"] = span.kind
    if span.status != "ok":
        attrs["asynctrace.status"] = span.status
    if span.kind == "run":
        attrs["asynctrace.clock"] = trace.clock
        if trace.dropped:
            attrs["asynctrace.dropped"] = trace.dropped
    return attrs


def _attribute_value(value: object) -> Any:
    """An OpenTelemetry attribute value: str, bool, int (int64), float, or a list of one type."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        return value if -(1 << 63) <= value < (1 << 63) else str(value)
    if isinstance(value, (list, tuple)):
        items = [_attribute_value(v) for v in value]
        if len({type(v) for v in items}) <= 1 and all(not isinstance(v, list) for v in items):
            return items
        return [clean(_str(v)) for v in value]
    return clean(_str(value))


def _str(value: object) -> str:
    try:
        return str(value)
    except RecursionError:  # a value read back from a hostile file, nested too deeply
        return f"<{type(value).__name__} nested too deeply to show>"


def _exception(span: Span) -> tuple[str, str]:
    """(exception.type, exception.message) from the span's attributes or its ``error`` text."""
    exc_type = span.attributes.get("exception.type")
    exc_message = span.attributes.get("exception.message")
    text = span.error or ""
    head, sep, tail = text.partition(": ")
    if exc_type is None:
        exc_type = head if sep or (text and " " not in text) else None
    if exc_message is None:
        exc_message = tail if sep else ("" if exc_type == text else text)
    if exc_type is None:
        exc_type = "TimeoutError" if span.status == "timeout" else "Exception"
    return clean(str(exc_type)), clean(str(exc_message))


# --- OTLP/JSON file -------------------------------------------------------------------------


def otlp_json_dict(
    trace: Trace,
    *,
    resource: Resource,
    trace_id: int,
    span_id_base: int,
    parent_context: SpanContext | None = None,
) -> dict[str, Any]:
    """The OTLP/JSON encoding (``{"resourceSpans": [...]}``) of the trace.

    Protobuf's JSON mapping of ``ExportTraceServiceRequest`` (lowerCamelCase keys, 64-bit
    integers as strings, default values left out) with the OTLP/JSON changes: ids are hex, not
    base64, and enums are integers.  Built directly, not through ``MessageToDict``, which takes
    over a millisecond per span.
    """
    spans = otlp_spans(
        trace,
        resource=resource,
        trace_id=trace_id,
        span_id_base=span_id_base,
        parent_context=parent_context,
    )
    scope: dict[str, Any] = {"name": "asynctrace", "version": __version__}
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": _json_attributes(resource.attributes)},
                "scopeSpans": [{"scope": scope, "spans": [_json_span(s) for s in spans]}],
            }
        ]
    }


def _json_span(span: OtlpSpan) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": f"{span.trace_id:032x}",
        "spanId": f"{span.span_id:016x}",
    }
    if span.parent_id is not None:
        out["parentSpanId"] = f"{span.parent_id:016x}"
    # SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE, and IS_REMOTE for a remote parent (as the SDK encodes).
    out["flags"] = 0x100 | (0x200 if span.parent_remote else 0)
    out["name"] = span.name
    out["kind"] = span.kind
    out["startTimeUnixNano"] = str(span.start_time)
    out["endTimeUnixNano"] = str(span.end_time)
    if span.attributes:
        out["attributes"] = _json_attributes(span.attributes)
    if span.events:
        events = []
        for event in span.events:
            item: dict[str, Any] = {"timeUnixNano": str(event.time), "name": event.name}
            if event.attributes:
                item["attributes"] = _json_attributes(event.attributes)
            events.append(item)
        out["events"] = events
    status: dict[str, Any] = {}
    if span.status_code:
        status["code"] = span.status_code  # UNSET=0, OK=1, ERROR=2
    if span.status_message:
        status["message"] = span.status_message
    out["status"] = status
    return out


def _json_attributes(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _json_value(v)} for k, v in attributes.items()]


def _json_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        if math.isfinite(value):
            return {"doubleValue": value}
        return {
            "doubleValue": "NaN"
            if math.isnan(value)
            else ("Infinity" if value > 0 else "-Infinity")
        }
    if isinstance(value, (list, tuple)):
        items = [_json_value(v) for v in value]
        return {"arrayValue": {"values": items} if items else {}}
    return {"stringValue": str(value)}


def write_otlp_json(
    trace: Trace,
    path: str | os.PathLike[str],
    *,
    resource: Resource,
    trace_id: int,
    span_id_base: int,
    parent_context: SpanContext | None = None,
) -> int:
    """Write the OTLP/JSON file (one JSON object on one line, as the collector's file exporter
    writes it; Jaeger UI's "JSON File" upload reads it).  Returns the number of spans written.

    The file is written whole (:func:`~asynctrace._export._files.write_whole`): never half of it.
    """
    data = otlp_json_dict(
        trace,
        resource=resource,
        trace_id=trace_id,
        span_id_base=span_id_base,
        parent_context=parent_context,
    )
    text = json.dumps(data, separators=(",", ":"))  # one shot: the C encoder, 10x json.dump
    write_whole(path, (text + "\n").encode("utf-8"))
    return len(trace.spans)
