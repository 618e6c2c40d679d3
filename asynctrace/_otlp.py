"""OTLP export: a :class:`~asynctrace._spans.Trace` as OpenTelemetry spans, sent or written.

Problem: the recorder builds spans after the run, but OpenTelemetry backends want SDK spans with
ids that other instrumentation may already have seen live (an HTTP client's span whose parent is
a recorded await), a service name, and a delivery that cannot hang or break the program when the
collector is down.  The SDK exporters log a retry storm, and their ``force_flush()`` answers True
even when nothing was delivered.

Solution: :func:`to_readable_spans` builds SDK ``ReadableSpan``\\ s after the fact, with explicit
times and ids from :func:`otel_span_id` (the same function the live side uses);
:class:`OtlpExport` sends them from a worker thread in batches, counts the spans that each
``export()`` really confirmed, waits a bounded time at close and then writes at most ONE warning
line; :func:`write_otlp_json` writes the OTLP/JSON file encoding.  OpenTelemetry is imported here
only inside functions: ``import asynctrace`` MUST NOT import it (about 110 ms).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import queue
import random
import re
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from ._files import write_whole
from ._otlp_config import OtlpSettings
from ._sanitize import clean

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import SpanContext

    from ._spans import Span, Trace

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
        base = random.getrandbits(64)
        zero_sid = (base * _MIX_INVERSE) & _MASK64
        fallback_sid = ((_MASK64 ^ base) * _MIX_INVERSE) & _MASK64
        if zero_sid >= _HALF and fallback_sid >= _HALF:
            return base


def new_trace_id() -> int:
    """A random, non-zero 128-bit trace id."""
    return random.getrandbits(128) or 1


def to_readable_spans(
    trace: Trace,
    *,
    resource: Resource,
    trace_id: int,
    span_id_base: int,
    parent_context: SpanContext | None = None,
    link_all: bool = False,
) -> list[ReadableSpan]:
    """The trace's spans as SDK ``ReadableSpan``\\ s with explicit ids, parents and times.

    Args:
        trace: the spans; not modified.
        resource: the SDK ``Resource`` (service name).
        trace_id: the OpenTelemetry trace id; MUST equal ``parent_context.trace_id`` if given.
        span_id_base: see :func:`otel_span_id`.
        parent_context: the span current when tracing started; parent of the root spans.
        link_all: link each span to its parent even when the parent is not in ``trace`` (a
            batch of a run sent as it goes); else such a span (its parent dropped) is a root.

    Raises:
        ValueError: ``trace_id`` differs from the parent context's.
    """
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

    if parent_context is not None and parent_context.trace_id != trace_id:
        msg = (
            f"trace_id={trace_id:032x} differs from the parent context's trace id"
            f" {parent_context.trace_id:032x}; pass trace_id=parent_context.trace_id"
        )
        raise ValueError(msg)
    scope = InstrumentationScope("asynctrace", _asynctrace_version())
    flags = TraceFlags(TraceFlags.SAMPLED)
    trace_end = trace.end
    unset = Status(StatusCode.UNSET)

    contexts: dict[int, SpanContext] = {}

    def context(sid: int) -> SpanContext:
        found = contexts.get(sid)
        if found is None:
            found = SpanContext(trace_id, otel_span_id(span_id_base, sid), False, flags)
            contexts[sid] = found
        return found

    def ns(seconds: float) -> int:
        return trace.epoch_ns + round(seconds * 1e9)

    result: list[ReadableSpan] = []
    for span in trace.spans:
        end = max(trace_end, span.end) if span.status == "unfinished" else span.end
        start_ns = ns(span.start)
        end_ns = max(ns(end), start_ns)
        attrs = _attributes(span, trace)
        events: list[Event] = []
        status = unset
        if span.status in ("error", "timeout"):
            exc_type, exc_message = _exception(span)
            attrs.setdefault("exception.type", exc_type)
            attrs.setdefault("exception.message", exc_message)
            events.append(
                Event(
                    "exception",
                    {"exception.type": exc_type, "exception.message": exc_message},
                    end_ns,
                )
            )
            description = f"{exc_type}: {exc_message}" if exc_message else exc_type
            status = Status(StatusCode.ERROR, description)
        elif span.status == "cancelled":
            events.append(Event("cancelled", {}, end_ns))
        parent: SpanContext | None = parent_context
        if span.parent_id is not None and (link_all or span.parent_id in trace.by_id):
            parent = context(span.parent_id)
        result.append(
            ReadableSpan(
                name=clean(span.name),
                context=context(span.span_id),
                parent=parent,
                resource=resource,
                attributes=attrs,
                events=events,
                kind=SpanKind.INTERNAL,
                status=status,
                start_time=start_ns,
                end_time=end_ns,
                instrumentation_scope=scope,
            )
        )
    return result


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


def _asynctrace_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("asynctrace")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


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
    spans = to_readable_spans(
        trace,
        resource=resource,
        trace_id=trace_id,
        span_id_base=span_id_base,
        parent_context=parent_context,
    )
    scope: dict[str, Any] = {"name": "asynctrace", "version": _asynctrace_version()}
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": _json_attributes(resource.attributes)},
                "scopeSpans": [{"scope": scope, "spans": [_json_span(s) for s in spans]}],
            }
        ]
    }


def _json_span(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    assert context is not None
    out: dict[str, Any] = {
        "traceId": f"{context.trace_id:032x}",
        "spanId": f"{context.span_id:016x}",
    }
    if span.parent is not None:
        out["parentSpanId"] = f"{span.parent.span_id:016x}"
    # SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE, and IS_REMOTE for a remote parent (as the SDK encodes).
    out["flags"] = 0x100 | (0x200 if span.parent is not None and span.parent.is_remote else 0)
    out["name"] = span.name
    out["kind"] = span.kind.value + 1  # SDK INTERNAL=0 .. CONSUMER=4; OTLP INTERNAL=1 ..
    out["startTimeUnixNano"] = str(span.start_time)
    out["endTimeUnixNano"] = str(span.end_time)
    if span.attributes:
        out["attributes"] = _json_attributes(span.attributes)
    if span.events:
        events = []
        for event in span.events:
            item: dict[str, Any] = {"timeUnixNano": str(event.timestamp), "name": event.name}
            if event.attributes:
                item["attributes"] = _json_attributes(event.attributes)
            events.append(item)
        out["events"] = events
    status: dict[str, Any] = {}
    if span.status.status_code.value:
        status["code"] = span.status.status_code.value  # UNSET=0, OK=1, ERROR=2 in both
    if span.status.description:
        status["message"] = span.status.description
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

    The file is written whole (:func:`~asynctrace._files.write_whole`): never half of it.
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


# --- sending --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportReport:
    """What an :class:`OtlpExport` delivered: spans confirmed by the receiver, out of total."""

    total: int
    sent: int
    reason: str | None = None

    @property
    def not_sent(self) -> int:
        """Spans not confirmed by the receiver."""
        return self.total - self.sent


@dataclass
class _Job:
    trace: Trace
    trace_id: int
    span_id_base: int
    parent_context: SpanContext | None
    link_all: bool


_STOP = object()


class OtlpExport:
    """Send traces to one OTLP endpoint from a worker thread, with a bounded wait at close.

    :meth:`submit` returns at once (the spans are built and sent on the worker thread);
    :meth:`close` waits at most ``settings.timeout + grace`` seconds, then writes at most one
    warning line to ``stream`` if spans were not confirmed, and returns the
    :class:`ExportReport`.  Nothing raises into the caller: a failure is counted and reported.
    The worker is a daemon thread, so an endpoint that never answers cannot hold the process.

    Args:
        settings: from :func:`~asynctrace._otlp_config.otlp_settings`.
        stream: where the warning goes (default ``sys.stderr`` at close time).
        batch_size: spans per ``export()`` call.
        grace: seconds added to the timeout for the close's wait.
        exporter: an SDK ``SpanExporter`` to use instead of the OTLP one (tests, custom sinks).
        max_queued: spans waiting to be sent at most; a batch that would pass it is counted
            as not sent (an endpoint slower than the program must not grow memory).
    """

    def __init__(
        self,
        settings: OtlpSettings,
        *,
        stream: TextIO | None = None,
        batch_size: int = 512,
        grace: float = 1.0,
        exporter: SpanExporter | None = None,
        max_queued: int = 200_000,
    ) -> None:
        self.settings = settings
        self._max_queued = max_queued
        self._queued = 0
        self._overflowed = False
        self._stream = stream
        self._batch_size = max(1, batch_size)
        self._grace = grace
        self._exporter = exporter
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._total = 0
        self._sent = 0
        self._reason: str | None = None
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._report: ExportReport | None = None

    def submit(
        self,
        trace: Trace,
        *,
        trace_id: int,
        span_id_base: int,
        parent_context: SpanContext | None = None,
        link_all: bool = False,
    ) -> None:
        """Queue a trace for sending; returns at once.  Called from any thread.

        ``link_all``: the trace is one batch of a run sent as it goes; a span's parent is
        linked even when it is not in this batch (see :func:`to_readable_spans`).
        """
        if self._report is not None:
            return
        count = len(trace.spans)
        with self._lock:
            self._total += count
            if self._queued + count > self._max_queued:
                self._overflowed = True
                return
            self._queued += count
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="asynctrace-otlp", daemon=True
                )
                self._thread.start()
        self._queue.put(_Job(trace, trace_id, span_id_base, parent_context, link_all))

    def close(self, timeout: float | None = None) -> ExportReport:
        """Wait (bounded) for the queued traces, warn once if spans were not sent, and report.

        Args:
            timeout: the longest wait in seconds; default ``settings.timeout + grace``.
        """
        if self._report is not None:
            return self._report
        wait = self.settings.timeout + self._grace if timeout is None else timeout
        if self._thread is not None:
            self._queue.put(_STOP)
            self._done.wait(wait)
        with self._lock:
            reason = self._reason
            if reason is None and self._overflowed:
                reason = "the endpoint could not keep up with the program"
            if not self._done.is_set() and self._thread is not None:
                reason = (
                    f"still sending after {wait:g} s (a large trace: raise"
                    f" OTEL_EXPORTER_OTLP_TIMEOUT)"
                    if self._sent
                    else f"no answer within {wait:g} s"
                )
            report = ExportReport(self._total, self._sent, reason)
        self._report = report
        if report.not_sent:
            stream = self._stream if self._stream is not None else sys.stderr
            line = (
                f"asynctrace: OTLP export to {self.settings.display_endpoint} failed:"
                f" {report.reason or 'not confirmed'}; {report.not_sent} of {report.total}"
                f" spans not sent\n"
            )
            try:
                stream.write(self._scrub(line))
                stream.flush()
            except (OSError, ValueError):
                pass
        return report

    def export(
        self,
        trace: Trace,
        *,
        trace_id: int,
        span_id_base: int,
        parent_context: SpanContext | None = None,
    ) -> ExportReport:
        """:meth:`submit` then :meth:`close`: send one trace, waiting a bounded time."""
        self.submit(
            trace, trace_id=trace_id, span_id_base=span_id_base, parent_context=parent_context
        )
        return self.close()

    # The rest runs on the worker thread.

    def _run(self) -> None:
        capture = _LogCapture(threading.get_ident())
        capture.install()
        exporter: SpanExporter | None = None
        try:
            if self._exporter is None:
                exporter = _make_exporter(self.settings)
                _watch_http_errors(exporter, capture)
            else:
                exporter = self._exporter
            while True:
                job = self._queue.get()
                if job is _STOP:
                    break
                assert isinstance(job, _Job)
                if self._reason is None:  # after a failure the rest is not sent, only counted
                    self._send(exporter, job, capture)
                with self._lock:
                    self._queued -= len(job.trace.spans)
        except Exception as error:  # MUST NOT reach the program: it is reported
            self._fail(f"{type(error).__name__}: {error}")
        finally:
            try:
                if exporter is not None:
                    exporter.shutdown()
            except Exception:  # shutting down a failed exporter: nothing to add
                pass
            capture.remove()
            self._done.set()

    def _send(self, exporter: SpanExporter, job: _Job, capture: _LogCapture) -> None:
        from opentelemetry.sdk.trace.export import SpanExportResult

        spans = to_readable_spans(
            job.trace,
            resource=self.settings.resource(),
            trace_id=job.trace_id,
            span_id_base=job.span_id_base,
            parent_context=job.parent_context,
            link_all=job.link_all,
        )
        deadline = time.monotonic() + self.settings.timeout
        for i in range(0, len(spans), self._batch_size):
            if time.monotonic() >= deadline:
                self._fail(f"no answer within {self.settings.timeout:g} s")
                return
            batch = spans[i : i + self._batch_size]
            capture.messages.clear()
            if exporter.export(batch) is SpanExportResult.SUCCESS:
                with self._lock:
                    self._sent += len(batch)
            else:
                # A refused or failing endpoint fails every batch the same way: stop here.
                self._fail(_summarize(capture.messages, self.settings.timeout))
                return

    def _fail(self, reason: str) -> None:
        with self._lock:
            if self._reason is None:
                self._reason = self._scrub(reason)

    def _scrub(self, text: str) -> str:
        return self.settings.scrub(text)


def _make_exporter(settings: OtlpSettings) -> SpanExporter:
    if settings.protocol == "grpc":
        import grpc  # type: ignore[import-untyped,unused-ignore]
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        credentials = None
        if not settings.insecure:
            credentials = grpc.ssl_channel_credentials(
                _read(settings.certificate),
                _read(settings.client_key),
                _read(settings.client_certificate),
            )
        grpc_compression = {
            "none": grpc.Compression.NoCompression,
            "gzip": grpc.Compression.Gzip,
            "deflate": grpc.Compression.Deflate,
        }[settings.compression]
        return GrpcExporter(
            endpoint=settings.endpoint,
            insecure=settings.insecure,
            credentials=credentials,
            headers=dict(settings.headers),
            timeout=settings.timeout,
            compression=grpc_compression,
        )
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    http_compression = {
        "none": Compression.NoCompression,
        "gzip": Compression.Gzip,
        "deflate": Compression.Deflate,
    }[settings.compression]
    return HttpExporter(
        endpoint=settings.endpoint,
        certificate_file=settings.certificate,
        client_key_file=settings.client_key,
        client_certificate_file=settings.client_certificate,
        headers=dict(settings.headers),
        timeout=settings.timeout,
        compression=http_compression,
    )


def _watch_http_errors(exporter: SpanExporter, capture: _LogCapture) -> None:
    """Keep the HTTP client's last error for the warning: the exporter logs only "due to
    timeout" when its retries run out of time (a refused connection, a 503).  Private API,
    so best effort: without it the warning is vaguer, not wrong.
    """
    client = getattr(exporter, "_client", None)
    inner = getattr(client, "export", None)
    if client is None or inner is None:
        return

    def export(data: bytes) -> Any:
        result = inner(data)
        if not getattr(result, "success", True):
            code = getattr(result, "status_code", None)
            error = getattr(result, "error", None)
            if code is not None:
                capture.messages.append(f"code: {code}, reason: {getattr(result, 'reason', '')}")
            elif error is not None:
                capture.messages.append(f"{type(error).__name__}: {error}")
        return result

    with contextlib.suppress(AttributeError):  # a client with slots: no reason, no harm
        client.export = export


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


class _LogCapture(logging.Filter):
    """Silences the SDK's, the exporters' and grpc's loggers for records made on one thread
    (the export worker), keeping their messages to explain a failure in one line.  Records
    from other threads (the program's own OpenTelemetry setup) pass untouched.
    """

    _PREFIXES = ("opentelemetry", "grpc", "urllib3", "requests")

    def __init__(self, thread_id: int) -> None:
        super().__init__()
        self.thread_id = thread_id
        self.messages: list[str] = []
        self._loggers: list[logging.Logger] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self.thread_id:
            return True
        with contextlib.suppress(Exception):  # a bad log call in a library: drop it
            self.messages.append(record.getMessage())
        return False

    def install(self) -> None:
        # Loggers exist once the exporter modules are imported; import them first.
        import opentelemetry.exporter.otlp.proto.grpc.trace_exporter
        import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401

        names = [n for n in logging.root.manager.loggerDict if n.startswith(self._PREFIXES)]
        for name in [*self._PREFIXES, *names]:
            logger = logging.getLogger(name)
            # First in line: the SDK's DuplicateFilter would otherwise drop repeats before us.
            logger.filters.insert(0, self)
            self._loggers.append(logger)

    def remove(self) -> None:
        for logger in self._loggers:
            logger.removeFilter(self)
        self._loggers.clear()


_HTTP_FAILURE = re.compile(r"code: (\d{3}), reason: (.*)")
_GRPC_FAILURE = re.compile(r"error code: StatusCode\.(\w+), error details: (.*)")
_TRANSIENT = re.compile(r"Transient error (.+?) encountered")
_TIMED_OUT = ("deadline_exceeded", "deadline exceeded", "timed out", "due to timeout")


def _summarize(messages: Sequence[str], timeout: float) -> str:
    """One short reason out of the exporters' log messages for a failed export."""
    lower = "\n".join(messages).lower()
    if "connection refused" in lower:
        return "connection refused"
    for pattern, fmt in (
        (_HTTP_FAILURE, "HTTP {0} {1}"),
        (_GRPC_FAILURE, "gRPC {0}: {1}"),
        (_TRANSIENT, "{0}"),
    ):
        for message in reversed(messages):
            match = pattern.search(message)
            if match and not any(k in match.group(0).lower() for k in _TIMED_OUT):
                return _short(fmt.format(*match.groups()))
    if any(k in lower for k in _TIMED_OUT) or not messages:
        return f"no answer within {timeout:g} s"
    return _short(messages[-1])


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
