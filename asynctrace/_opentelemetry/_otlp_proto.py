"""OTLP's protobuf encoding of spans, written straight to bytes.

Problem: the SDK's encoder (``opentelemetry.exporter.otlp.proto.common``) builds a protobuf
object for every span, attribute and value in Python: about 20 us a span, four fifths of an OTLP
export of 22,000 spans, on the thread that competes with the program's for the GIL.  Making SDK
span objects of a trace's spans only to encode them cost 4.5 us a span more.

Solution: :func:`encode_request` writes the ``ExportTraceServiceRequest`` message itself, field
by field in protobuf's wire format, from :class:`OtlpSpan`\\ s: exactly what it writes of a
span, made from a trace's span directly (``_otlp.otlp_spans``) or from an SDK span
(:func:`from_sdk`: the program's own), so that one encoder writes both.  What repeats (an
attribute's key and value, a resource, a scope) is encoded once per call and its bytes reused.
The message is the SDK encoder's, field for field (tests parse both and compare them): spans
grouped by resource, then by instrumentation scope, in the order they come; an attribute value
the SDK refuses (an int past 64 bits, an object of no OTLP type) is left out as the SDK leaves
it out.  Only the standard library is used (the message's schema is fixed:
``opentelemetry/proto/trace/v1``).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["OtlpEvent", "OtlpLink", "OtlpSpan", "encode_request", "from_sdk"]

_FIXED64 = struct.Struct("<Q").pack
_DOUBLE = struct.Struct("<d").pack
_FIXED32 = struct.Struct("<I").pack
_INT64 = (-(1 << 63), 1 << 63)
_NONE = object()  # no resource or scope seen yet
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200  # SpanFlags: is_remote known; and true
# the flags field of a span (by whether its parent is remote) and of a link (its context)
_SPAN_FLAGS = {r: b"\x85\x01" + _FIXED32(_HAS_IS_REMOTE | (_IS_REMOTE * r)) for r in (0, 1)}
_LINK_FLAGS = {r: b"\x35" + _FIXED32(_HAS_IS_REMOTE | (_IS_REMOTE * r)) for r in (0, 1)}


class OtlpEvent(NamedTuple):
    """A span's event as OTLP writes it."""

    time: int | None  # epoch nanoseconds
    name: str
    attributes: Mapping[str, Any] | None
    dropped_attributes: int


class OtlpLink(NamedTuple):
    """A span's link as OTLP writes it (the SDK's encoder leaves the trace state out)."""

    trace_id: int
    span_id: int
    attributes: Mapping[str, Any] | None
    dropped_attributes: int
    is_remote: bool


class OtlpSpan(NamedTuple):
    """A span as OTLP writes it, and the resource and scope it is grouped under."""

    trace_id: int
    span_id: int
    trace_state: str  # "k=v,..."; "" for none
    parent_id: int | None
    parent_remote: bool
    name: str
    kind: int  # OTLP's SpanKind: INTERNAL=1 .. CONSUMER=5
    start_time: int | None  # epoch nanoseconds
    end_time: int | None
    attributes: Mapping[str, Any] | None
    dropped_attributes: int
    events: Sequence[OtlpEvent]
    dropped_events: int
    links: Sequence[OtlpLink]
    dropped_links: int
    status_code: int  # UNSET=0, OK=1, ERROR=2 (the SDK's and OTLP's)
    status_message: str | None
    resource: Any  # an SDK Resource: ``attributes`` and ``schema_url``
    scope: Any  # an InstrumentationScope (``name``, ``version``, ``schema_url``) or None


def from_sdk(span: ReadableSpan) -> OtlpSpan:
    """The :class:`OtlpSpan` of an SDK span (the program's own), as the SDK's encoder reads it."""
    context = span.get_span_context()
    assert context is not None  # an SDK span always has one
    parent = span.parent
    status = span.status
    return OtlpSpan(
        context.trace_id,
        context.span_id,
        _trace_state(context.trace_state) if context.trace_state else "",
        None if parent is None else parent.span_id,
        parent is not None and bool(parent.is_remote),
        span.name,
        span.kind.value + 1,  # SDK INTERNAL=0 .. CONSUMER=4; OTLP INTERNAL=1 ..
        span.start_time,
        span.end_time,
        span.attributes,
        span.dropped_attributes,
        [OtlpEvent(e.timestamp, e.name, e.attributes, e.dropped_attributes) for e in span.events],
        span.dropped_events,
        [
            OtlpLink(
                link.context.trace_id,
                link.context.span_id,
                link.attributes,
                link.dropped_attributes,
                bool(link.context.is_remote),
            )
            for link in span.links
        ],
        span.dropped_links,
        status.status_code.value,
        status.description,
        span.resource,
        span.instrumentation_scope,
    )


def _varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(key: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its key (field number and wire type), length and payload."""
    return key + _varint(len(payload)) + payload


def _text(key: bytes, text: str) -> bytes:
    """A string field, left out when empty (proto3)."""
    return _field(key, text.encode()) if text else b""


def _any_value(value: Any) -> bytes:
    """An ``AnyValue``'s fields, as the SDK's ``_encode_value`` chooses them (in its order of
    ``isinstance`` checks); ValueError for what it refuses."""
    # one field of a oneof: written even when it holds its type's default (False, 0, "")
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _field(b"\x0a", value.encode())
    if isinstance(value, int):
        if not _INT64[0] <= value < _INT64[1]:
            msg = f"int {value} is past 64 bits"
            raise ValueError(msg)
        return b"\x18" + _varint(value & 0xFFFF_FFFF_FFFF_FFFF)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, Sequence):
        values = b"".join(_field(b"\x0a", _any_value(v)) for v in value)
        return _field(b"\x2a", values)
    if isinstance(value, Mapping):
        pairs = b"".join(_field(b"\x0a", _key_value(str(k), v)) for k, v in value.items())
        return _field(b"\x32", pairs)
    msg = f"a {type(value).__name__} is no OTLP value"
    raise ValueError(msg)


def _key_value(key: str, value: Any) -> bytes:
    return _text(b"\x0a", key) + _field(b"\x12", _any_value(value))


class _Encoder:
    """The bytes of one request; the attributes' bytes kept for the spans that repeat them."""

    def __init__(self) -> None:
        # (field key, attribute key, value's class, value) -> the field's bytes
        self._pairs: dict[tuple[bytes, str, type, object], bytes] = {}
        self._kinds: dict[int, bytes] = {}  # OTLP's SpanKind -> its field
        self._statuses: dict[tuple[int, str | None], bytes] = {}  # (code, message) -> field

    def attributes(self, key: bytes, attributes: Mapping[str, Any] | None) -> bytes:
        """Each ``KeyValue`` of ``attributes`` as a field ``key``; a value the SDK refuses is
        left out, as it leaves it out (and logs it)."""
        if not attributes:
            return b""
        parts = []
        pairs = self._pairs
        for name, value in attributes.items():
            cls = value.__class__
            # not a float: 0.0 == -0.0, and their bytes differ
            cached = cls is str or cls is int or cls is bool or value is None
            if cached:
                found = pairs.get((key, name, cls, value))
                if found is not None:
                    parts.append(found)
                    continue
            try:
                encoded = _field(key, _key_value(name, value))
            except (ValueError, UnicodeEncodeError):
                continue
            if cached:
                pairs[key, name, cls, value] = encoded
            parts.append(encoded)
        return b"".join(parts)

    def span(self, span: OtlpSpan) -> bytes:
        parts = [
            b"\x0a\x10" + span.trace_id.to_bytes(16, "big"),
            b"\x12\x08" + span.span_id.to_bytes(8, "big"),
            _text(b"\x1a", span.trace_state),
        ]
        if span.parent_id is not None:
            parts.append(b"\x22\x08" + span.parent_id.to_bytes(8, "big"))
        kind = self._kinds.get(span.kind)
        if kind is None:
            kind = self._kinds[span.kind] = b"\x30" + _varint(span.kind)
        parts += (
            _text(b"\x2a", span.name),
            kind,
            _time(b"\x39", span.start_time),
            _time(b"\x41", span.end_time),
            self.attributes(b"\x4a", span.attributes),
            _count(b"\x50", span.dropped_attributes),
        )
        for event in span.events:
            body = (
                _time(b"\x09", event.time)
                + _text(b"\x12", event.name)
                + self.attributes(b"\x1a", event.attributes)
                + _count(b"\x20", event.dropped_attributes)
            )  # fmt: skip
            parts.append(_field(b"\x5a", body))
        parts.append(_count(b"\x60", span.dropped_events))
        for link in span.links:
            body = (
                b"\x0a\x10" + link.trace_id.to_bytes(16, "big")
                + b"\x12\x08" + link.span_id.to_bytes(8, "big")
                + self.attributes(b"\x22", link.attributes)
                + _count(b"\x28", link.dropped_attributes)
                + _LINK_FLAGS[link.is_remote]
            )  # fmt: skip
            parts.append(_field(b"\x6a", body))
        parts.append(_count(b"\x70", span.dropped_links))
        key = (span.status_code, span.status_message)
        status_field = self._statuses.get(key)
        if status_field is None:
            message = _text(b"\x12", span.status_message or "")
            status_field = _field(b"\x7a", message + _count(b"\x18", span.status_code))
            self._statuses[key] = status_field
        parts.append(status_field)
        parts.append(_SPAN_FLAGS[span.parent_remote])
        return _field(b"\x12", b"".join(parts))


def _time(key: bytes, ns: int | None) -> bytes:
    return key + _FIXED64(ns) if ns else b""


def _count(key: bytes, count: int) -> bytes:
    return key + _varint(count) if count else b""


def _trace_state(state: Any) -> str:
    return ",".join(f"{k}={v}" for k, v in state.items())


def encode_request(spans: Sequence[OtlpSpan]) -> bytes:
    """The serialized ``ExportTraceServiceRequest`` of ``spans``: what the SDK's
    ``encode_spans(sdk_spans).SerializeToString()`` means (``spans`` made of them by
    :func:`from_sdk`), in about a third of its time."""
    encoder = _Encoder()
    groups: dict[Any, dict[Any, list[bytes]]] = {}
    # a run of spans shares its resource and scope objects: looked up when they change (a
    # Resource's hash is a JSON dump of its attributes)
    resource: Any = _NONE
    scope: Any = _NONE
    for span in spans:
        if span.resource is not resource:
            resource, scope = span.resource, _NONE
            scopes = groups.setdefault(resource, {})
        if span.scope is not scope:
            scope = span.scope
            encoded = scopes.setdefault(scope or None, [])
        encoded.append(encoder.span(span))
    request = []
    for resource, scopes in groups.items():
        scope_spans = []
        for scope, encoded in scopes.items():
            if scope is None:
                scope_fields, schema = b"", ""
            else:
                scope_fields = (
                    _text(b"\x0a", scope.name)
                    + _text(b"\x12", scope.version or "")
                    + encoder.attributes(b"\x1a", getattr(scope, "attributes", None))
                )
                schema = scope.schema_url or ""
            body = _field(b"\x0a", scope_fields) + b"".join(encoded) + _text(b"\x1a", schema)
            scope_spans.append(_field(b"\x12", body))
        resource_fields = _field(b"\x0a", encoder.attributes(b"\x0a", resource.attributes))
        body = resource_fields + b"".join(scope_spans) + _text(b"\x1a", resource.schema_url)
        request.append(_field(b"\x0a", body))
    return b"".join(request)
