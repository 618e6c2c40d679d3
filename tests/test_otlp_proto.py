"""OTLP's protobuf written by asynctrace is the SDK encoder's message, field for field; a
trace's spans are encoded without SDK span objects, to the same bytes as through them."""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from asynctrace._model._spans import KINDS, Span, Trace
from asynctrace._opentelemetry import _otlp
from asynctrace._opentelemetry._otlp import (
    LINK_KEY,
    PARENT_KEY,
    TRACE_KEY,
    new_span_id_base,
    new_trace_id,
    otlp_spans,
    readable_spans,
)
from asynctrace._opentelemetry._otlp_config import make_resource
from asynctrace._opentelemetry._otlp_proto import encode_request, from_sdk

sys.path.insert(0, str(Path(__file__).parent))
from test_otlp import blog_trace, status_trace


@pytest.fixture(autouse=True)
def _quiet_sdk_encoder(caplog: pytest.LogCaptureFixture) -> None:
    # the SDK's encoder logs each attribute value it refuses, with a traceback
    caplog.set_level(logging.CRITICAL, logger="opentelemetry")


def same_message(spans: list[ReadableSpan]) -> None:
    ours = ExportTraceServiceRequest.FromString(encode_request([from_sdk(s) for s in spans]))
    sdk = encode_spans(spans)
    # compared as the canonical bytes of each parsed message: NaN != NaN as a field value
    assert ours.SerializeToString(deterministic=True) == sdk.SerializeToString(
        deterministic=True
    ), f"ours:\n{ours}\nSDK's:\n{sdk}"


def test_asynctraces_spans_are_the_sdk_encoders_message() -> None:
    parent = SpanContext(0xABC, 0xDEF, True, TraceFlags(1))
    resource = make_resource("svc", (("deployment.environment", "test"),))
    for trace, context in ((blog_trace(), None), (status_trace(), parent)):
        trace_id = context.trace_id if context is not None else new_trace_id()
        spans = list(
            readable_spans(
                trace,
                resource=resource,
                trace_id=trace_id,
                span_id_base=new_span_id_base(),
                parent_context=context,
            )
        )
        same_message(spans)


values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),  # past 64 bits: left out
        st.floats(),  # NaN, infinities, -0.0
        st.text(max_size=6),
        st.binary(max_size=4),
        st.just(object()),  # no OTLP type: left out
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=2)
    ),
    max_leaves=6,
)
attributes = st.dictionaries(st.text(max_size=5), values, max_size=4)
contexts = st.builds(
    SpanContext,
    trace_id=st.integers(1, 2**128 - 1),
    span_id=st.integers(1, 2**64 - 1),
    is_remote=st.booleans(),
    trace_flags=st.just(TraceFlags(1)),
    trace_state=st.sampled_from([None, TraceState([("k", "v"), ("a", "b")])]),
)
resources = st.sampled_from(
    [Resource({"service.name": "a"}), Resource({"service.name": "b", "n": 1}, "https://s")]
)
scopes = st.sampled_from(
    [
        None,
        InstrumentationScope("asynctrace", "1.0"),
        InstrumentationScope("aiohttp", None, "https://schema"),
    ]
)


@st.composite
def sdk_spans(draw: Any) -> ReadableSpan:
    start = draw(st.integers(0, 2**64 - 1))
    status = draw(
        st.sampled_from(
            [Status(StatusCode.UNSET), Status(StatusCode.OK), Status(StatusCode.ERROR, "boom")]
        )
    )
    events = draw(
        st.lists(
            st.builds(Event, name=st.text(max_size=4), attributes=attributes,
                      timestamp=st.integers(0, 2**64 - 1)),
            max_size=2,
        )
    )  # fmt: skip
    links = draw(st.lists(st.builds(Link, contexts, attributes), max_size=2))
    return ReadableSpan(
        name=draw(st.text(max_size=8)),
        context=draw(contexts),
        parent=draw(st.one_of(st.none(), contexts)),
        resource=draw(resources),
        attributes=draw(attributes),
        events=events,
        links=links,
        kind=draw(st.sampled_from(list(SpanKind))),
        status=status,
        start_time=start,
        end_time=draw(st.integers(start, 2**64 - 1)),
        instrumentation_scope=draw(scopes),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(sdk_spans(), max_size=5))
def test_any_sdk_spans_are_the_sdk_encoders_message(spans: list[ReadableSpan]) -> None:
    same_message(spans)


def test_a_repeated_attribute_is_encoded_once_and_reused_exactly() -> None:
    # 0.0 and -0.0 are equal keys but different bytes; True == 1
    resource = Resource({"service.name": "a"})
    values = [0.0, -0.0, True, 1, 1.0, math.inf, "1", None, False, 0]
    spans = [
        ReadableSpan(
            name="s",
            context=SpanContext(1, i + 1, False, TraceFlags(1)),
            resource=resource,
            attributes={"v": value},
            start_time=1,
            end_time=2,
        )
        for i, value in enumerate(values * 2)
    ]
    same_message(spans)


# --- a trace's spans, encoded without SDK span objects ---------------------------------------

ODD_TEXT = st.text(st.characters(codec=None), max_size=6) | st.sampled_from(
    ["", "é", "名前", "\udcff lone", "x" * 5000, "ValueError: boom", "two words"]
)
odd_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),  # past 64 bits: a string
        st.floats(),
        ODD_TEXT,
        st.binary(max_size=3),
        st.just(object()),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner),
    max_leaves=5,
)
HEX_64 = st.integers(1, 2**64 - 1).map(lambda n: f"{n:016x}")
HEX_128 = st.integers(1, 2**128 - 1).map(lambda n: f"{n:032x}")


@st.composite
def odd_attributes(draw: Any) -> dict[str, object]:
    """Any attributes, with the exception and the keys _otel_traces.TraceMap places."""
    attrs: dict[str, object] = draw(st.dictionaries(ODD_TEXT, odd_values, max_size=4))
    for key in ("exception.type", "exception.message"):
        if draw(st.booleans()):
            attrs[key] = draw(odd_values)
    if draw(st.booleans()):
        attrs[TRACE_KEY] = draw(HEX_128)
        attrs["otel.span_id"] = draw(HEX_64)
        placed = draw(st.sampled_from(["none", "parent", "link"]))
        if placed == "parent":
            attrs[PARENT_KEY] = draw(HEX_64)
        elif placed == "link":
            attrs[LINK_KEY] = f"{draw(HEX_128)}-{draw(HEX_64)}"
    return attrs


@st.composite
def odd_traces(draw: Any) -> Trace:
    """Traces of any shape: parents cut or dropped, every status, odd names and attributes."""
    count = draw(st.integers(1, 8))
    sids = draw(st.lists(st.integers(1, 2**63 - 1), min_size=count, max_size=count, unique=True))
    spans = []
    for i, sid in enumerate(sids):
        parent = draw(st.sampled_from([None, 2**62 + 7, *sids[:i]]))  # 2**62 + 7: not there
        start = draw(st.floats(0, 10))
        status = draw(st.sampled_from(["ok", "error", "cancelled", "timeout", "unfinished"]))
        spans.append(
            Span(
                sid, parent, draw(st.sampled_from(KINDS)), draw(ODD_TEXT), start,
                start + draw(st.floats(0, 5)), sids[0], status=status,
                error=draw(st.one_of(st.none(), ODD_TEXT)), attributes=draw(odd_attributes()),
            )
        )  # fmt: skip
    return Trace(
        spans,
        clock=draw(st.sampled_from(["monotonic", "virtual"])),
        epoch_ns=draw(st.integers(0, 2**62)),
        dropped=draw(st.integers(0, 3)),
    )


def parent_contexts(trace_id: int) -> Any:
    return st.one_of(
        st.none(),
        st.builds(
            SpanContext,
            trace_id=st.just(trace_id),
            span_id=st.integers(1, 2**64 - 1),
            is_remote=st.booleans(),
            trace_flags=st.sampled_from([TraceFlags(0), TraceFlags(1)]),
            trace_state=st.sampled_from([None, TraceState([("k", "v")])]),
        ),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(odd_traces(), st.integers(1, 2**128 - 1), st.integers(0, 2**64 - 1), st.data())
def test_a_traces_spans_encode_to_the_bytes_of_their_sdk_spans(
    trace: Trace, trace_id: int, base: int, data: st.DataObject
) -> None:
    parent = data.draw(parent_contexts(trace_id))
    resource = Resource({"service.name": "odd"})
    ids = {"resource": resource, "trace_id": trace_id, "span_id_base": base}
    sdk = list(readable_spans(trace, **ids, parent_context=parent))
    direct = encode_request(list(otlp_spans(trace, **ids, parent_context=parent)))
    assert direct == encode_request([from_sdk(s) for s in sdk])
    same_message(sdk)
    # a batch sent as the run goes links every parent: its SDK spans' bytes too
    linked = list(otlp_spans(trace, **ids, parent_context=parent, link_all=True))
    assert encode_request(linked) == encode_request([
        from_sdk(s) for s in _otlp._sdk_spans(iter(linked), parent)
    ])  # fmt: skip
