"""OTLP export: settings, span conversion, real gRPC/HTTP receivers, OTLP/JSON, a real Jaeger."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asynctrace._model._spans import Span, Trace
from asynctrace._opentelemetry import _otlp_send
from asynctrace._opentelemetry._otlp import (
    new_span_id_base,
    new_trace_id,
    otel_span_id,
    otlp_json_dict,
    readable_spans,
    write_otlp_json,
)
from asynctrace._opentelemetry._otlp_config import DEFAULT_TIMEOUT, otlp_resource, otlp_settings
from asynctrace._opentelemetry._otlp_send import OtlpExport
from asynctrace._opentelemetry._otlp_transport import Rejected, SendFailed

sys.path.insert(0, str(Path(__file__).parent))
import otlp_receiver

EPOCH_NS = 1_764_000_000_123_456_789
SECRET = "Bearer s3cr3t-t0ken-XYZ"


def blog_trace(epoch_ns: int = EPOCH_NS) -> Trace:
    """The blog's gather example, by hand: task1 and task2 gathered, then task3."""
    f = "/src/examples/gather.py"

    def code(name: str, line: int) -> dict[str, object]:
        return {"code.function.name": name, "code.file.path": f, "code.line.number": line}

    def wait(n: int, line: int) -> dict[str, object]:
        awaited = f"asyncio.sleep({n})"
        return {"asynctrace.awaited": awaited, "code.file.path": f, "code.line.number": line}

    spans = [
        Span(1, None, "run", "gather.py", 0.0, 5.0, 1, start_seq=0, end_seq=99),
        Span(2, 1, "task", "main", 0.0, 5.0, 2, attributes={
            **code("main", 14), "asynctrace.task.name": "Task-1"}, start_seq=1, end_seq=98),
        Span(3, 2, "gather", "gather(task1, task2)", 0.0, 2.0, 2, start_seq=2, end_seq=20),
        Span(4, 3, "task", "task1", 0.0, 2.0, 4, attributes={
            **code("task1", 4), "asynctrace.task.name": "Task-2"}, start_seq=3, end_seq=19),
        Span(5, 4, "await", "asyncio.sleep(2)", 0.0, 2.0, 4, attributes=wait(2, 5),
             start_seq=4, end_seq=18),
        Span(6, 3, "task", "task2", 0.0, 1.0, 6, attributes={
            **code("task2", 8), "asynctrace.task.name": "Task-3"}, start_seq=5, end_seq=11),
        Span(7, 6, "await", "asyncio.sleep(1)", 0.0, 1.0, 6, attributes=wait(1, 9),
             start_seq=6, end_seq=10),
        Span(8, 2, "coroutine", "task3", 2.0, 5.0, 2, attributes=code("task3", 11),
             start_seq=21, end_seq=97),
        Span(9, 8, "await", "asyncio.sleep(3)", 2.0, 5.0, 2, attributes=wait(3, 12),
             start_seq=22, end_seq=96),
    ]  # fmt: skip
    return Trace(spans, clock="virtual", epoch_ns=epoch_ns)


def status_trace(epoch_ns: int = EPOCH_NS) -> Trace:
    """One span of each failure status under a run."""
    spans = [
        Span(1, None, "run", "statuses.py", 0.0, 3.0, 1),
        Span(2, 1, "task", "fails", 0.0, 1.0, 2, status="error", error="ValueError: boom",
             attributes={"exception.type": "ValueError", "exception.message": "boom"}),
        Span(3, 1, "await", "asyncio.sleep(10)", 0.0, 0.5, 1, status="timeout",
             error="TimeoutError"),
        Span(4, 1, "task", "waiter", 0.0, 2.0, 4, status="cancelled"),
        Span(5, 1, "await", "Event.wait", 1.0, 1.5, 1, status="unfinished"),
    ]  # fmt: skip
    return Trace(spans, epoch_ns=epoch_ns)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OTLP variable from the machine; proxies MUST NOT divert loopback traffic."""
    for key in list(os.environ):
        if key.startswith(("OTEL_", "GRPC_")) or key.lower().endswith("_proxy"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture(params=["grpc", "http/protobuf"])
def receiver(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A real OTLP receiver on 127.0.0.1, for each protocol."""
    yield from otlp_receiver.running(request.param)


def dead_endpoint() -> str:
    """A loopback port that was bound, then closed: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def send(settings: Any, trace: Trace, **kw: Any) -> tuple[Any, str, int, int]:
    """Export; return (report, stderr text, trace id, span id base)."""
    err = io.StringIO()
    trace_id, base = new_trace_id(), new_span_id_base()
    report = OtlpExport(settings, stream=err, **kw).export(
        trace, trace_id=trace_id, span_id_base=base
    )
    return report, err.getvalue(), trace_id, base


# --- ids and the lazy import ----------------------------------------------------------------


def test_otel_span_id_is_unique_nonzero_and_64_bit() -> None:
    for _ in range(20):
        base = new_span_id_base()
        ids = [otel_span_id(base, sid) for sid in range(5000)]
        assert len(set(ids)) == 5000
        assert all(0 < i < 2**64 for i in ids)
    assert otel_span_id(0, 0) != 0  # the fallback for a base that maps a sid to 0


def test_import_asynctrace_does_not_import_opentelemetry() -> None:
    code = (
        "import sys, asynctrace, asynctrace._opentelemetry._otlp;"
        "import asynctrace._opentelemetry._otlp_config;"
        "print(any(m.startswith('opentelemetry') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- settings -------------------------------------------------------------------------------


def test_defaults_grpc_on_4317_and_named_after_the_script() -> None:
    s = otlp_settings(default_service="gather", environ={})
    assert (s.endpoint, s.protocol, s.service_name) == ("http://localhost:4317", "grpc", "gather")
    assert (s.timeout, s.insecure, s.compression, s.headers) == (DEFAULT_TIMEOUT, True, "none", ())
    h = otlp_settings(protocol="http/protobuf", environ={})
    assert h.endpoint == "http://localhost:4318/v1/traces"
    assert otlp_settings(environ={}).resource().attributes["service.name"] == "asynctrace"


def test_endpoint_precedence_flag_over_traces_var_over_generic() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://generic:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }
    assert otlp_settings(environ=env).endpoint == "http://generic:4318/v1/traces"
    env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = "http://traces:4318/custom"
    assert otlp_settings(environ=env).endpoint == "http://traces:4318/custom"
    assert otlp_settings("http://flag:9999", environ=env).endpoint == "http://flag:9999/v1/traces"
    assert otlp_settings("flag:9999", protocol="grpc", environ=env).endpoint == "http://flag:9999"
    grpc_env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector.example:4317/"}
    s = otlp_settings(environ=grpc_env)
    assert (s.endpoint, s.insecure) == ("https://collector.example:4317", False)


def test_protocol_headers_timeout_compression_insecure_from_variables() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-generic=1",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "Authorization=Bearer%20abc,x-tenant=t1",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "GZIP",
        "OTEL_EXPORTER_OTLP_INSECURE": "false",
    }
    s = otlp_settings(headers={"X-Extra": "2"}, environ=env)
    assert s.protocol == "http/protobuf"
    assert dict(s.headers) == {"authorization": "Bearer abc", "x-tenant": "t1", "x-extra": "2"}
    assert (s.timeout, s.compression) == (2.5, "gzip")
    assert otlp_settings(timeout=0.25, environ=env).timeout == 0.25
    assert otlp_settings(protocol="grpc", environ=env).insecure is False
    assert otlp_settings(protocol="grpc", insecure=True, environ=env).insecure is True


def test_service_name_precedence() -> None:
    env = {"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs,deployment.environment=ci"}
    s = otlp_settings(default_service="script", environ=env)
    assert s.service_name == "from-attrs"
    assert dict(s.resource_attributes)["deployment.environment"] == "ci"
    env["OTEL_SERVICE_NAME"] = "from-var"
    assert otlp_settings(default_service="script", environ=env).service_name == "from-var"
    assert otlp_settings(service_name="flag", environ=env).service_name == "flag"
    resource = otlp_resource(default_service="script", environ={})
    assert resource.attributes["service.name"] == "script"
    assert resource.attributes["telemetry.sdk.language"] == "python"


@pytest.mark.parametrize(
    ("kwargs", "env", "words"),
    [
        (
            {"protocol": "http/json"},
            {},
            ["--otlp-protocol", "'http/json'", "grpc or http/protobuf"],
        ),
        (
            {},
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"},
            ["OTEL_EXPORTER_OTLP_PROTOCOL", "'thrift'"],
        ),
        ({"endpoint": "ftp://x"}, {}, ["--otlp", "'ftp://x'", "http://localhost:4317"]),
        ({"endpoint": "http://host:port"}, {}, ["--otlp", "bad port"]),
        (
            {},
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://"},
            ["OTEL_EXPORTER_OTLP_ENDPOINT", "'http://'"],
        ),
        (
            {},
            {"OTEL_EXPORTER_OTLP_TIMEOUT": "soon"},
            ["OTEL_EXPORTER_OTLP_TIMEOUT", "'soon'", "5000"],
        ),
        ({"timeout": -1.0}, {}, ["timeout", "'-1.0'", "seconds"]),
        (
            {},
            {"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"},
            ["OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"],
        ),
        (
            {},
            {"OTEL_EXPORTER_OTLP_INSECURE": "yes"},
            ["OTEL_EXPORTER_OTLP_INSECURE", "true or false"],
        ),
        ({}, {"OTEL_EXPORTER_OTLP_CERTIFICATE": "/nope.pem"}, ["'/nope.pem'", "PEM"]),
        ({}, {"OTEL_RESOURCE_ATTRIBUTES": "novalue"}, ["OTEL_RESOURCE_ATTRIBUTES", "'novalue'"]),
    ],
)
def test_bad_values_raise_one_sentence_naming_variable_value_and_fix(
    kwargs: dict[str, Any], env: dict[str, str], words: list[str]
) -> None:
    with pytest.raises(ValueError) as info:
        otlp_settings(environ=env, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert ";" in message  # what is wrong; the fix
    for word in words:
        assert word in message


def test_header_secrets_never_in_errors_or_repr() -> None:
    env = {"OTEL_EXPORTER_OTLP_HEADERS": f"authorization={SECRET},{SECRET}"}
    with pytest.raises(ValueError) as info:
        otlp_settings(environ=env)
    assert "OTEL_EXPORTER_OTLP_HEADERS entry 2" in str(info.value)
    assert "s3cr3t" not in str(info.value)
    s = otlp_settings(headers=f"authorization={SECRET}", environ={})
    assert "s3cr3t" not in repr(s)
    s2 = otlp_settings("http://user:pw-s3cr3t@host:4317", environ={})
    assert "s3cr3t" not in s2.display_endpoint


# --- spans ----------------------------------------------------------------------------------


def test_readable_spans_have_exact_ids_parents_times_and_attributes() -> None:
    trace_id, base = new_trace_id(), new_span_id_base()
    resource = otlp_resource(default_service="gather", environ={})
    spans = list(
        readable_spans(blog_trace(), resource=resource, trace_id=trace_id, span_id_base=base)
    )
    by_name = {s.name: s for s in spans}
    assert len(spans) == 9
    for s in spans:
        assert s.context is not None and s.context.trace_id == trace_id
        assert s.instrumentation_scope is not None
        assert s.instrumentation_scope.name == "asynctrace"
    assert by_name["gather.py"].parent is None
    assert by_name["task1"].parent is not None
    assert by_name["task1"].parent.span_id == otel_span_id(base, 3)
    assert by_name["task1"].context.span_id == otel_span_id(base, 4)
    assert by_name["task3"].start_time == EPOCH_NS + 2_000_000_000
    assert by_name["task3"].end_time == EPOCH_NS + 5_000_000_000
    assert by_name["task1"].attributes is not None
    assert dict(by_name["task1"].attributes) == {
        "code.function.name": "task1",
        "code.file.path": "/src/examples/gather.py",
        "code.line.number": 4,
        "asynctrace.task.name": "Task-2",
        "asynctrace.kind": "task",
    }
    assert by_name["gather.py"].attributes is not None
    assert by_name["gather.py"].attributes["asynctrace.clock"] == "virtual"


def test_statuses_errors_timeouts_cancelled_unfinished() -> None:
    from opentelemetry.trace import NonRecordingSpan, SpanContext, StatusCode, TraceFlags

    parent = SpanContext(0xABC, 0xDEF, True, TraceFlags(1))
    spans = list(
        readable_spans(
            status_trace(),
            resource=otlp_resource(environ={}),
            trace_id=0xABC,
            span_id_base=new_span_id_base(),
            parent_context=parent,
        )
    )
    by_name = {s.name: s for s in spans}
    assert by_name["statuses.py"].parent == parent
    fails = by_name["fails"]
    assert fails.status.status_code is StatusCode.ERROR
    assert fails.status.description == "ValueError: boom"
    assert [(e.name, dict(e.attributes or {})) for e in fails.events] == [
        ("exception", {"exception.type": "ValueError", "exception.message": "boom"})
    ]
    timeout = by_name["asyncio.sleep(10)"]
    assert timeout.status.status_code is StatusCode.ERROR
    assert timeout.events[0].attributes == {
        "exception.type": "TimeoutError",
        "exception.message": "",
    }
    cancelled = by_name["waiter"]
    assert cancelled.status.status_code is StatusCode.UNSET
    assert cancelled.attributes is not None
    assert cancelled.attributes["asynctrace.status"] == "cancelled"
    assert [e.name for e in cancelled.events] == ["cancelled"]
    unfinished = by_name["Event.wait"]
    assert unfinished.end_time == EPOCH_NS + 3_000_000_000  # the trace's end
    assert unfinished.attributes is not None
    assert unfinished.attributes["asynctrace.status"] == "unfinished"
    with pytest.raises(ValueError, match="parent context's trace id"):
        readable_spans(  # at once, before any span is taken
            status_trace(),
            resource=otlp_resource(environ={}),
            trace_id=1,
            span_id_base=1,
            parent_context=NonRecordingSpan(parent).get_span_context(),
        )


# --- real receivers -------------------------------------------------------------------------


def test_blog_trace_arrives_exact(receiver: Any) -> None:
    settings = otlp_settings(
        receiver.endpoint, receiver.protocol, service_name="gather", environ={}
    )
    report, err, trace_id, base = send(settings, blog_trace())
    assert (report.total, report.sent, report.not_sent, err) == (9, 9, 0, "")
    got = {s.name: s for s in receiver.spans}
    assert len(got) == 9
    assert {s.trace_id for s in got.values()} == {trace_id}
    assert {s.resource["service.name"] for s in got.values()} == {"gather"}
    assert {s.scope for s in got.values()} == {"asynctrace"}
    expected_parent = {
        "gather.py": None, "main": 1, "gather(task1, task2)": 2, "task1": 3,
        "asyncio.sleep(2)": 4, "task2": 3, "asyncio.sleep(1)": 6, "task3": 2,
        "asyncio.sleep(3)": 8,
    }  # fmt: skip
    for name, parent in expected_parent.items():
        want = None if parent is None else otel_span_id(base, parent)
        assert got[name].parent_id == want, name
    t1, t2, t3 = got["task1"].span, got["task2"].span, got["task3"].span
    assert t1.start_time_unix_nano == t2.start_time_unix_nano == EPOCH_NS
    assert t1.end_time_unix_nano == EPOCH_NS + 2_000_000_000
    assert t2.end_time_unix_nano == EPOCH_NS + 1_000_000_000
    assert t3.start_time_unix_nano == t1.end_time_unix_nano  # task3 after the gather
    assert got["asyncio.sleep(1)"].attributes == {
        "asynctrace.awaited": "asyncio.sleep(1)",
        "code.file.path": "/src/examples/gather.py",
        "code.line.number": 9,
        "asynctrace.kind": "await",
    }
    assert all(s.span.status.code == 0 for s in got.values())  # UNSET: nothing failed


def test_statuses_and_exception_events_arrive(receiver: Any) -> None:
    settings = otlp_settings(receiver.endpoint, receiver.protocol, environ={})
    report, _, _, _ = send(settings, status_trace())
    assert report.sent == 5
    got = {s.name: s for s in receiver.spans}
    fails = got["fails"].span
    assert (fails.status.code, fails.status.message) == (2, "ValueError: boom")
    assert [e.name for e in fails.events] == ["exception"]
    assert got["asyncio.sleep(10)"].attributes["exception.type"] == "TimeoutError"
    assert got["waiter"].span.status.code == 0
    assert [e.name for e in got["waiter"].span.events] == ["cancelled"]
    assert got["Event.wait"].attributes["asynctrace.status"] == "unfinished"


def test_headers_arrive_but_never_in_logs(
    receiver: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization={SECRET},x-tenant=acme")
    caplog.set_level(logging.DEBUG)
    settings = otlp_settings(receiver.endpoint, receiver.protocol)
    report, err, _, _ = send(settings, blog_trace())
    assert report.sent == 9
    assert receiver.headers[0]["authorization"] == SECRET
    assert receiver.headers[0]["x-tenant"] == "acme"
    assert "s3cr3t" not in err + caplog.text
    assert not [s for s in receiver.spans if "s3cr3t" in str(s.attributes) + str(s.resource)]
    # And when it fails: the warning names the endpoint, never the headers.
    dead = otlp_settings(dead_endpoint(), receiver.protocol, timeout=0.5)
    report, err, _, _ = send(dead, blog_trace())
    assert report.sent == 0 and err.startswith("asynctrace: OTLP export to")
    assert "s3cr3t" not in err + caplog.text


def test_gzip_compression(receiver: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    settings = otlp_settings(receiver.endpoint, receiver.protocol)
    assert settings.compression == "gzip"
    report, _, _, _ = send(settings, blog_trace())
    assert report.sent == 9 and len(receiver.spans) == 9
    if receiver.protocol == "http/protobuf":
        assert receiver.headers[0]["content-encoding"] == "gzip"
    else:  # gRPC hides grpc-encoding from the server's metadata: check the channel's setting
        import grpc

        from asynctrace._opentelemetry._otlp_transport import make_transport

        transport = make_transport(settings, threading.Event())
        assert transport.compression == grpc.Compression.Gzip  # type: ignore[attr-defined]
        transport.close()


def test_endpoint_from_variables_reaches_the_receiver(
    receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = receiver.endpoint.removesuffix("/v1/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", base)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", receiver.protocol)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    report, _, _, _ = send(otlp_settings(default_service="ignored"), blog_trace())
    assert report.sent == 9
    assert receiver.spans[0].resource["service.name"] == "from-env"


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_dead_endpoint_one_warning_and_returns(
    protocol: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    endpoint = dead_endpoint()
    settings = otlp_settings(endpoint, protocol, timeout=1.0)
    report, err, _, _ = send(settings, blog_trace())
    assert (report.total, report.sent, report.reason) == (9, 0, "connection refused")
    assert err.count("\n") == 1
    assert err.startswith(f"asynctrace: OTLP export to {endpoint}")
    assert err.endswith("failed: connection refused; 9 of 9 spans not sent\n")
    assert not [r for r in caplog.records if r.name.startswith(("opentelemetry", "grpc"))]
    assert capfd.readouterr().err == ""  # nothing else on the real stderr either


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_refused_loopback_endpoint_fails_before_anything_is_sent(
    protocol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing listens: known from one refused connection, not from retries (1 s, then 2 s)
    that would hold the program's exit."""

    def made(settings: Any) -> Any:
        raise AssertionError("a transport was made for a port nothing listens on")

    monkeypatch.setattr(_otlp_send, "make_transport", made)
    report, err, _, _ = send(otlp_settings(dead_endpoint(), protocol), blog_trace())
    assert (report.total, report.sent, report.reason) == (9, 0, "connection refused")
    assert err.endswith("failed: connection refused; 9 of 9 spans not sent\n")


def test_only_a_loopback_port_without_a_listener_is_known_refused(
    receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("grpc_proxy", "https_proxy", "http_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    dead = dead_endpoint()
    port = dead.rsplit(":", 1)[1]
    assert _otlp_send._nothing_listens(dead)
    assert _otlp_send._nothing_listens(f"http://localhost:{port}/v1/traces")
    assert not _otlp_send._nothing_listens(receiver.endpoint)  # something listens
    assert not _otlp_send._nothing_listens("http://127.0.0.1")  # no port: not guessed
    # a remote host is never asked (not even its name looked up)
    assert not _otlp_send._nothing_listens(f"http://collector.invalid:{port}")
    # a proxy answers for the endpoint, unless no_proxy names its host
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    monkeypatch.setenv("no_proxy", "example.com")
    assert not _otlp_send._nothing_listens(dead)
    monkeypatch.setenv("no_proxy", "example.com,127.0.0.1")
    assert _otlp_send._nothing_listens(dead)


def test_process_exits_normally_with_a_stalling_receiver() -> None:
    """The program's output and exit code stay the same; the export adds one line."""
    r = otlp_receiver.receiver("grpc", "stall")
    code = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_otlp import blog_trace
from asynctrace._opentelemetry._otlp import new_span_id_base, new_trace_id
from asynctrace._opentelemetry import _otlp_send
from asynctrace._opentelemetry._otlp_send import OtlpExport
from asynctrace._opentelemetry._otlp_transport import SendFailed
from asynctrace._opentelemetry._otlp_config import otlp_settings
export = OtlpExport(otlp_settings({r.endpoint!r}, "grpc", timeout=0.5))
export.submit(blog_trace(), trace_id=new_trace_id(), span_id_base=new_span_id_base())
print("program output")
export.close()
sys.exit(3)
"""
    try:
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
    finally:
        r.stop()
    assert (out.returncode, out.stdout) == (3, "program output\n")
    assert out.stderr.endswith("no answer within 0.5 s; 9 of 9 spans not sent\n")
    assert out.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("protocol", "mode", "reason"),
    [
        ("grpc", "unavailable", "UNAVAILABLE"),
        ("http/protobuf", "500", "HTTP 500 Internal Server Error"),
        ("http/protobuf", "503", "HTTP 503"),
    ],
)
def test_receiver_errors_count_as_not_sent(protocol: str, mode: str, reason: str) -> None:
    r = otlp_receiver.receiver(protocol, mode)
    try:
        # Retryable answers (UNAVAILABLE, 503) are retried with backoff: leave room for one
        # retry on a loaded machine, so the reason is the receiver's answer, not a timeout.
        report, err, _, _ = send(otlp_settings(r.endpoint, protocol, timeout=3.0), blog_trace())
    finally:
        r.stop()
    assert r.attempts >= 1 and r.requests == []
    assert (report.sent, report.not_sent) == (0, 9)
    # gRPC retries: under load the bounded wait may end on the retry message or the final one;
    # both name the status.
    assert report.reason is not None and reason in report.reason
    assert err.count("\n") == 1 and reason in err


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_spans_a_receiver_rejects_are_counted_as_not_sent(protocol: str) -> None:
    # OTLP's partial success: the request is taken, some of its spans are not (2 a batch)
    r = otlp_receiver.receiver(protocol, "partial")
    try:
        report, err, _, _ = send(otlp_settings(r.endpoint, protocol), blog_trace(), batch_size=4)
    finally:
        r.stop()
    assert len(r.requests) == 3  # 4 + 4 + 1 spans: every batch was sent
    assert (report.sent, report.not_sent) == (9 - 5, 5)  # 2 + 2 + the last batch's 1
    assert report.reason == "the receiver rejected them: span too old"
    assert err.endswith("failed: the receiver rejected them: span too old; 5 of 9 spans not sent\n")


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_stalling_receiver_bounded_wait(protocol: str) -> None:
    r = otlp_receiver.receiver(protocol, "stall")
    try:
        t0 = time.monotonic()
        report, err, _, _ = send(otlp_settings(r.endpoint, protocol, timeout=0.5), blog_trace())
        elapsed = time.monotonic() - t0
    finally:
        r.stop()
    assert report.sent == 0 and "no answer within" in err
    assert elapsed < 0.5 + 1.0 + 2.0  # timeout + grace, plus slack for a loaded machine


def span_names(body: bytes) -> list[str]:
    """The names of the spans in one encoded ``ExportTraceServiceRequest``."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest.FromString(body)
    return [span.name for span in request.resource_spans[0].scope_spans[0].spans]


def wide_trace(tasks: int) -> Trace:
    """A run span and ``tasks`` tasks under it, named t0, t1, ..."""
    spans = [Span(1, None, "run", "wide.py", 0.0, 1.0, 1)]
    spans += [Span(2 + n, 1, "task", f"t{n}", 0.0, 1.0, 2 + n) for n in range(tasks)]
    return Trace(spans, epoch_ns=EPOCH_NS)


def test_batches_are_counted_separately() -> None:
    class HalfBroken:
        """A fake transport: confirms the request with the run span, fails the others."""

        def send(self, body: bytes, deadline: float) -> None:
            if "gather.py" not in span_names(body):
                raise SendFailed("HTTP 500 Internal Server Error")

        def close(self) -> None:
            pass

    settings = otlp_settings("http://127.0.0.1:9", environ={})
    report, err, _, _ = send(settings, blog_trace(), batch_size=4, transport=HalfBroken())
    assert (report.sent, report.not_sent) == (4, 5)
    assert err.endswith("failed: HTTP 500 Internal Server Error; 5 of 9 spans not sent\n")


def test_a_trace_is_made_into_otlp_spans_one_batch_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a large trace's export holds one batch of its spans as OTLP writes them, not the whole
    # trace's
    import gc

    from asynctrace._opentelemetry._otlp_proto import OtlpSpan

    alive: list[int] = []
    real_encode = _otlp_send.encode_request

    def counted(batch: Any) -> bytes:
        alive.append(
            sum(
                isinstance(o, OtlpSpan) and o.resource.attributes["service.name"] == "one"
                for o in gc.get_objects()
            )
        )
        return real_encode(batch)

    monkeypatch.setattr(_otlp_send, "encode_request", counted)

    class Sent:
        def send(self, body: bytes, deadline: float) -> None:
            pass

        def close(self) -> None:
            pass

    settings = otlp_settings("http://127.0.0.1:9", service_name="one", environ={})
    report, _, _, _ = send(settings, blog_trace(), batch_size=4, transport=Sent())
    assert report.sent == 9
    assert alive == [4, 4, 1]  # the batch encoded, no more: the whole trace's 9 at once before


def test_a_traces_export_makes_no_sdk_span(monkeypatch: pytest.MonkeyPatch) -> None:
    # its spans are encoded as they are: SDK spans of them cost 4.5 us a span
    from opentelemetry.sdk.trace import ReadableSpan

    def refused(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("an SDK span was made of a trace's span")

    monkeypatch.setattr(ReadableSpan, "__init__", refused)
    sent: list[bytes] = []

    class Keeping:
        def send(self, body: bytes, deadline: float) -> None:
            sent.append(body)

        def close(self) -> None:
            pass

    settings = otlp_settings("http://127.0.0.1:9", environ={})
    report, err, _, _ = send(settings, status_trace(), transport=Keeping())
    assert (report.sent, report.not_sent, err) == (5, 0, "")
    assert sorted(span_names(sent[0])) == sorted(s.name for s in status_trace().spans)


def test_the_next_request_is_made_while_one_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    # a far receiver's round trip overlaps the making of the next request, not added to it
    made: list[int] = []
    real_encode = _otlp_send.encode_request

    def counted(batch: Any) -> bytes:
        made.append(len(batch))
        return real_encode(batch)

    monkeypatch.setattr(_otlp_send, "encode_request", counted)

    class Slow:
        """Waits, in each send but the last, for the next request to have been made."""

        def __init__(self) -> None:
            self.overlapped: list[bool] = []
            self.threads: set[str] = set()

        def send(self, body: bytes, deadline: float) -> None:
            self.threads.add(threading.current_thread().name)
            sent = len(self.overlapped) + 1
            if sent < 3:  # 9 spans in batches of 4: three requests
                wait_until = time.monotonic() + 10
                while len(made) <= sent and time.monotonic() < wait_until:
                    time.sleep(0.005)
            self.overlapped.append(len(made) > sent or sent == 3)

        def close(self) -> None:
            pass

    slow = Slow()
    settings = otlp_settings("http://127.0.0.1:9", environ={})
    report, err, _, _ = send(settings, blog_trace(), batch_size=4, transport=slow)
    assert (report.sent, err) == (9, "")
    assert made == [4, 4, 1]
    assert slow.overlapped == [True, True, True]
    assert all(name.startswith("asynctrace-otlp-send-") for name in slow.threads), slow.threads


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_requests_are_in_flight_together(protocol: str) -> None:
    # a receiver that answers none until a second request has come: sent one at a time, the
    # first would wait for an answer until the timeout
    r = otlp_receiver.receiver(protocol, "together")
    try:
        report, err, _, _ = send(otlp_settings(r.endpoint, protocol), blog_trace(), batch_size=4)
    finally:
        r.stop()
    assert (report.sent, report.reason, err) == (9, None, "")
    assert len(r.requests) == 3


class AllAtOnce:
    """A fake transport: each request waits until as many as can be are in flight, then is
    answered by ``answer(names of its spans)``: None (taken), a :class:`Rejected`, or raises."""

    def __init__(self, answer: Any) -> None:
        self._answer = answer
        self._all_in_flight = threading.Barrier(_otlp_send._IN_FLIGHT, timeout=30)
        self.sent: list[list[str]] = []

    def send(self, body: bytes, deadline: float) -> Any:
        names = span_names(body)
        self.sent.append(names)
        self._all_in_flight.wait()
        return self._answer(names)

    def close(self) -> None:
        pass


def test_a_request_in_flight_is_not_tried_again_after_another_failed() -> None:
    # the first request is refused for good (HTTP 500) while a second one, in flight with it,
    # is told to try again later (503): the export has failed, so the second gives up at once
    # instead of trying again after 1 s and 3 s within the 5 s timeout
    r = otlp_receiver.receiver("http/protobuf", "500 then 503")
    try:
        settings = otlp_settings(r.endpoint, "http/protobuf")
        report, err, _, _ = send(settings, blog_trace(), batch_size=4)
    finally:
        r.stop()
    assert (report.sent, report.reason) == (0, "HTTP 500 Internal Server Error")
    assert err.count("\n") == 1
    assert r.attempts in (2, 3), r.attempts  # each request tried once (the third may be dropped)


def test_failures_at_once_are_reported_once_and_what_waits_is_dropped() -> None:
    def failed(names: list[str]) -> None:
        raise SendFailed(f"HTTP 500 for {names[0]}")

    fake = AllAtOnce(failed)
    # a request a span: all in flight, one waiting, one made; those two are never begun
    trace = wide_trace(_otlp_send._IN_FLIGHT + 2)
    settings = otlp_settings("http://127.0.0.1:9", environ={})
    report, err, _, _ = send(settings, trace, batch_size=1, transport=fake)
    total = _otlp_send._IN_FLIGHT + 3
    assert len(fake.sent) == _otlp_send._IN_FLIGHT  # none begun after the failures
    assert (report.total, report.sent) == (total, 0)
    assert report.reason in {f"HTTP 500 for {names[0]}" for names in fake.sent}
    assert err.count("\n") == 1
    assert err.endswith(f"failed: {report.reason}; {total} of {total} spans not sent\n")


def test_each_request_in_flight_is_counted_as_its_receiver_answers() -> None:
    # answered together: one fails, some are taken in part (OTLP's partial success), the rest
    # are taken whole; what each confirmed is counted, the failure is the reason
    def answer(names: list[str]) -> Rejected | None:
        if "t0" in names:
            raise SendFailed("HTTP 500 Internal Server Error")
        if "t2" in names or "t4" in names:
            return Rejected(1, "span too old")
        return None

    fake = AllAtOnce(answer)
    in_flight = _otlp_send._IN_FLIGHT
    trace = wide_trace(2 * in_flight - 1)  # with the run span: two a request, all in flight
    settings = otlp_settings("http://127.0.0.1:9", environ={})
    report, err, _, _ = send(settings, trace, batch_size=2, transport=fake)
    assert len(fake.sent) == in_flight
    assert (report.total, report.sent) == (2 * in_flight, 2 * in_flight - 2 - 1 - 1)
    assert report.reason == "HTTP 500 Internal Server Error"
    assert err.count("\n") == 1


def test_each_sending_thread_has_a_transport_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests.Session is not promised safe to share between threads
    lock = threading.Lock()
    calls: list[int] = []
    used_by: dict[int, set[str]] = {}  # transport -> the threads it sent from
    first_two_together = threading.Barrier(2, timeout=30)

    class Recording:
        def send(self, body: bytes, deadline: float) -> None:
            with lock:
                calls.append(id(self))
                used_by.setdefault(id(self), set()).add(threading.current_thread().name)
                number = len(calls)
            if number <= 2:  # two in flight: on two threads
                first_two_together.wait()

        def close(self) -> None:
            pass

    def made(settings: Any, given_up: threading.Event) -> Recording:
        return Recording()

    monkeypatch.setattr(_otlp_send, "_nothing_listens", lambda endpoint: False)
    monkeypatch.setattr(_otlp_send, "make_transport", made)
    settings = otlp_settings("http://127.0.0.1:9", environ={})
    report, err, _, _ = send(settings, blog_trace(), batch_size=4)
    assert (report.sent, err) == (9, "")
    assert len(used_by) >= 2, used_by
    assert all(len(threads) == 1 for threads in used_by.values()), used_by


def test_a_transport_that_raises_never_reaches_the_caller() -> None:
    class Raising:
        def send(self, body: bytes, deadline: float) -> None:
            raise RuntimeError("transport bug")

        def close(self) -> None:
            pass

    settings = otlp_settings("http://127.0.0.1:9", environ={})
    report, err, _, _ = send(settings, blog_trace(), transport=Raising())
    assert report.sent == 0
    assert err == (
        "asynctrace: OTLP export to http://127.0.0.1:9 failed: RuntimeError: transport bug;"
        " 9 of 9 spans not sent\n"
    )


# --- OTLP/JSON ------------------------------------------------------------------------------


def test_otlp_json_file_round_trips_through_the_proto(tmp_path: Path) -> None:
    from google.protobuf import json_format
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    trace_id, base = new_trace_id(), new_span_id_base()
    resource = otlp_resource(default_service="gather", environ={})
    path = tmp_path / "trace.otlp.json"
    assert write_otlp_json(status_trace(), path, resource=resource, trace_id=trace_id,
                           span_id_base=base) == 5  # fmt: skip
    text = path.read_text()
    assert text.count("\n") == 1  # one object per line, like the collector's file exporter
    data = json.loads(text)
    spans = data["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert data["resourceSpans"][0]["scopeSpans"][0]["scope"]["name"] == "asynctrace"
    run = next(s for s in spans if s["name"] == "statuses.py")
    fails = next(s for s in spans if s["name"] == "fails")
    assert run["traceId"] == f"{trace_id:032x}"
    assert run["spanId"] == f"{otel_span_id(base, 1):016x}"
    assert "parentSpanId" not in run
    assert fails["parentSpanId"] == run["spanId"]
    assert fails["startTimeUnixNano"] == str(EPOCH_NS)  # uint64 as a string
    assert fails["kind"] == 1  # SPAN_KIND_INTERNAL, as an integer
    assert fails["status"] == {"code": 2, "message": "ValueError: boom"}
    assert {"key": "asynctrace.kind", "value": {"stringValue": "task"}} in fails["attributes"]

    # Back through the protobuf JSON mapping (which wants base64 ids) to the same message; the
    # URL-safe alphabet, which it decodes with (Python 3.15 warns of "+" and "/" there).
    for span in spans:
        for key in ("traceId", "spanId", "parentSpanId"):
            if key in span:
                span[key] = base64.urlsafe_b64encode(bytes.fromhex(span[key])).decode()
    parsed = json_format.ParseDict(data, ExportTraceServiceRequest())
    readable = list(readable_spans(status_trace(), resource=resource, trace_id=trace_id,
                                   span_id_base=base))  # fmt: skip
    assert parsed == encode_spans(readable)
    again = otlp_json_dict(status_trace(), resource=resource, trace_id=trace_id, span_id_base=base)
    assert again["resourceSpans"][0]["resource"]["attributes"][-1] == {
        "key": "service.name", "value": {"stringValue": "gather"}
    }  # fmt: skip


# --- a real Jaeger --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real Jaeger v2 on loopback (binary from .ci/install-jaeger.sh)."""
    import jaeger as jaeger_helper

    yield from jaeger_helper.running(tmp_path_factory.mktemp("jaeger"))


def _jaeger_traces(
    jaeger: Any, service: str, epoch_ns: int, want_spans: int, root: str | None = None
) -> list[Any]:
    """Poll Jaeger's query API until the service's traces hold ``want_spans`` spans and ``root``.

    A run sends its spans batch by batch while it goes, the run span (the root) last, and
    Jaeger shows each batch as soon as it is stored: a wait that stopped at the first spans
    seen found a trace without its root.  Fails the test, saying what was there, after
    ``JAEGER_WAIT`` seconds.
    """
    params = {
        "service": service,
        "start": epoch_ns // 1000 - 60_000_000,
        "end": time.time_ns() // 1000 + 60_000_000,
        "limit": 20,
    }
    deadline = time.monotonic() + JAEGER_WAIT
    while True:
        traces: list[Any] = jaeger.get("/api/traces", **params)["data"] or []
        names = [s["operationName"] for t in traces for s in t["spans"]]
        if len(names) >= want_spans and (root is None or root in names):
            return traces
        if time.monotonic() > deadline:
            missing = "" if root is None or root in names else f", without the root {root!r}"
            pytest.fail(
                f"Jaeger showed {len(names)} of the {want_spans} spans of service {service!r}"
                f"{missing} after {JAEGER_WAIT} s: {sorted(names)[:20]}"
            )
        time.sleep(0.1)


JAEGER_WAIT = 30  # seconds; spans arrive within a second or two of the run's end


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_jaeger_shows_the_blog_trace(jaeger: Any, protocol: str) -> None:
    service = f"gather-{protocol.replace('/', '-')}-{os.getpid()}"
    endpoint = jaeger.otlp_grpc if protocol == "grpc" else jaeger.otlp_http
    epoch = time.time_ns() - 10_000_000_000
    report, err, trace_id, _ = send(
        otlp_settings(endpoint, protocol, service_name=service, environ={}), blog_trace(epoch)
    )
    assert (report.sent, err) == (9, "")
    traces = _jaeger_traces(jaeger, service, epoch, 9)
    assert service in jaeger.get("/api/services")["data"]
    assert len(traces) == 1
    (trace,) = traces
    assert trace["traceID"] == f"{trace_id:032x}"
    assert {p["serviceName"] for p in trace["processes"].values()} == {service}
    spans = {s["operationName"]: s for s in trace["spans"]}
    assert len(spans) == 9

    def parent(name: str) -> str | None:
        refs = spans[name]["references"]
        assert all(r["refType"] == "CHILD_OF" for r in refs)
        return next((n for n, s in spans.items() for r in refs if r["spanID"] == s["spanID"]), None)

    assert parent("gather.py") is None
    assert parent("main") == "gather.py"
    assert parent("gather(task1, task2)") == "main"
    assert parent("task1") == parent("task2") == "gather(task1, task2)"
    assert parent("asyncio.sleep(2)") == "task1"
    assert parent("task3") == "main"
    assert parent("asyncio.sleep(3)") == "task3"
    t1, t2, t3 = spans["task1"], spans["task2"], spans["task3"]
    assert t1["startTime"] == t2["startTime"] == epoch // 1000  # microseconds in Jaeger
    assert t2["startTime"] + t2["duration"] <= t1["startTime"] + t1["duration"]  # overlap
    assert t3["startTime"] == t1["startTime"] + t1["duration"]  # task3 follows
    by_id = jaeger.get(f"/api/traces/{trace_id:032x}")["data"]
    assert len(by_id) == 1 and len(by_id[0]["spans"]) == 9


def test_jaeger_marks_errors_and_cancellations(jaeger: Any) -> None:
    service = f"statuses-{os.getpid()}"
    epoch = time.time_ns() - 10_000_000_000
    report, _, _, _ = send(
        otlp_settings(jaeger.otlp_grpc, "grpc", service_name=service, environ={}),
        status_trace(epoch),
    )
    assert report.sent == 5
    (trace,) = _jaeger_traces(jaeger, service, epoch, 5)
    spans = {s["operationName"]: s for s in trace["spans"]}

    def tags(name: str) -> dict[str, Any]:
        return {t["key"]: t["value"] for t in spans[name]["tags"]}

    assert tags("fails")["error"] is True
    assert tags("fails")["otel.status_description"] == "ValueError: boom"
    log_fields = {f["key"]: f["value"] for f in spans["fails"]["logs"][0]["fields"]}
    assert log_fields["exception.type"] == "ValueError"
    assert tags("asyncio.sleep(10)")["error"] is True
    assert "error" not in tags("waiter")
    assert tags("waiter")["asynctrace.status"] == "cancelled"
    assert tags("Event.wait")["asynctrace.status"] == "unfinished"


def test_jaeger_reads_the_otlp_json_file(jaeger: Any, tmp_path: Path) -> None:
    """Jaeger UI's "JSON File" upload posts an OTLP file to /api/transform: the same here."""
    trace_id, base = new_trace_id(), new_span_id_base()
    path = tmp_path / "gather.otlp.json"
    resource = otlp_resource(default_service="gather", environ={})
    write_otlp_json(blog_trace(), path, resource=resource, trace_id=trace_id, span_id_base=base)
    (trace,) = jaeger.post("/api/transform", path.read_bytes())["data"]
    assert trace["traceID"] == f"{trace_id:032x}"
    assert {p["serviceName"] for p in trace["processes"].values()} == {"gather"}
    spans = {s["operationName"]: s for s in trace["spans"]}
    assert len(spans) == 9
    task1_refs = spans["task1"]["references"]
    assert task1_refs == [
        {
            "refType": "CHILD_OF",
            "traceID": f"{trace_id:032x}",
            "spanID": f"{otel_span_id(base, 3):016x}",
        }
    ]
    assert spans["task3"]["startTime"] == (EPOCH_NS + 2_000_000_000) // 1000


# --- end to end: `asynctrace run --otlp` ---------------------------------------------------

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "asynctrace",
            "run",
            "--virtual-time",
            "--no-json",
            "--no-timeline",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_asynctrace_run_otlp_delivers_the_gather_example(receiver: Any) -> None:
    protocol = "grpc" if isinstance(receiver, otlp_receiver.GrpcReceiver) else "http/protobuf"
    proc = run_cli(
        f"--otlp={receiver.endpoint}", "--otlp-protocol", protocol, str(EXAMPLES / "gather.py")
    )
    assert proc.returncode == 0, proc.stderr
    # one line of ours, as for the JSON timeline: where the spans went (issue 15)
    assert proc.stderr == f"asynctrace: OTLP: 10 spans sent to {receiver.endpoint} ({protocol})\n"
    assert proc.stdout.splitlines()[-1] == "Task 3 complete"
    assert len(receiver.spans) == 10
    spans = {s.name: s for s in receiver.spans if s.attributes["asynctrace.kind"] != "await"}
    spans.update({s.name: s for s in receiver.spans if s.name.startswith("asyncio.sleep")})
    assert spans["main"].parent_id == spans["gather.py"].span_id
    assert spans["task1"].parent_id == spans["gather(task1, task2)"].span_id
    assert spans["asyncio.sleep(3)"].parent_id == spans["task3"].span_id
    assert len({s.trace_id for s in receiver.spans}) == 1


def test_asynctrace_run_otlp_reads_the_standard_variables(receiver: Any) -> None:
    protocol = "grpc" if isinstance(receiver, otlp_receiver.GrpcReceiver) else "http/protobuf"
    base = receiver.endpoint.removesuffix("/v1/traces")  # the general variable takes a base URL
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": base,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_SERVICE_NAME": "from-env",
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20s3cret",
    }
    proc = run_cli("--otlp", str(EXAMPLES / "coroutine.py"), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "s3cret" not in proc.stderr + proc.stdout
    assert receiver.spans, "spans arrived"
    assert any(h.get("authorization") == "Bearer s3cret" for h in receiver.headers)


def test_asynctrace_run_with_a_dead_endpoint_warns_once_and_keeps_the_exit_status(
    tmp_path: Path,
) -> None:
    program = tmp_path / "exits3.py"
    program.write_text(
        "import asyncio, sys\n"
        "async def main():\n    await asyncio.sleep(1)\n    print('done')\n"
        "asyncio.run(main())\nsys.exit(3)\n"
    )
    json_path = tmp_path / "t.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "asynctrace",
            "run",
            "--virtual-time",
            "--no-timeline",
            "--json",
            str(json_path),
            f"--otlp={dead_endpoint()}",
            str(program),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (proc.returncode, proc.stdout) == (3, "done\n")
    warnings = [line for line in proc.stderr.splitlines() if "OTLP" in line]
    assert len(warnings) == 1 and "spans not sent" in warnings[0]
    assert json_path.is_file(), "the JSON timeline is still written"


def test_jaeger_shows_asynctrace_run_of_the_gather_example(jaeger: Any) -> None:
    service = f"gather-run-{os.getpid()}"
    epoch = time.time_ns()
    proc = run_cli(
        f"--otlp={jaeger.otlp_grpc}", "--service-name", service, str(EXAMPLES / "gather.py")
    )
    assert proc.returncode == 0, proc.stderr
    (trace,) = _jaeger_traces(jaeger, service, epoch, 10)
    spans = {s["operationName"]: s for s in trace["spans"]}
    by_id = {s["spanID"]: s["operationName"] for s in trace["spans"]}

    def parent(name: str) -> str | None:
        refs = spans[name]["references"]
        return by_id.get(refs[0]["spanID"]) if refs else None

    assert parent("task1") == parent("task2") == "gather(task1, task2)"
    assert parent("task3") == "main" and parent("main") == "gather.py"
    t1, t2, t3 = spans["task1"], spans["task2"], spans["task3"]
    assert t1["startTime"] == t2["startTime"]  # side by side
    assert t3["startTime"] >= t1["startTime"] + t1["duration"]  # after both
    assert t1["duration"] == 2_000_000 and t3["duration"] == 3_000_000  # exact, virtual time


@pytest.mark.parametrize(
    "example",
    ["async_tasks", "coroutine", "event_loop", "blocking_gather", "sync_tasks"],
)
def test_jaeger_shows_every_blog_example_as_one_tree(
    jaeger: Any, example: str, tmp_path: Path
) -> None:
    service = f"{example}-{os.getpid()}"
    epoch = time.time_ns()
    sent = tmp_path / "sent.otlp.json"  # the same spans, written at exit: how many to wait for
    args = [
        f"--otlp={jaeger.otlp_grpc}",
        f"--otlp-json={sent}",
        "--service-name",
        service,
        str(EXAMPLES / f"{example}.py"),
    ]
    if example in ("blocking_gather", "sync_tasks"):  # blocking is real time: no virtual clock
        proc = subprocess.run(
            [sys.executable, "-m", "asynctrace", "run", "--no-json", "--no-timeline", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
    else:
        proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    expected = len(proc.stdout.splitlines())  # at least one span per printed line's task
    want = sum(
        len(scope["spans"])
        for resource in json.loads(sent.read_text())["resourceSpans"]
        for scope in resource["scopeSpans"]
    )
    (trace,) = _jaeger_traces(jaeger, service, epoch, want, root=f"{example}.py")
    assert service in jaeger.get("/api/services")["data"]  # listed once its spans are stored
    spans = trace["spans"]
    assert len(spans) == want
    ids = {s["spanID"] for s in spans}
    roots = [s for s in spans if not s["references"]]
    assert [r["operationName"] for r in roots] == [f"{example}.py"]
    for span in spans:
        assert all(r["refType"] == "CHILD_OF" and r["spanID"] in ids for r in span["references"])
    kinds = {t["value"] for s in spans for t in s["tags"] if t["key"] == "asynctrace.kind"}
    if example == "sync_tasks":
        assert kinds == {"run"} and expected == 4
    elif example == "blocking_gather":
        assert {"task", "gather", "blocked"} <= kinds
    else:
        assert {"task", "await"} <= kinds
