"""Real OTLP trace receivers for the tests: gRPC (grpcio + opentelemetry-proto) and HTTP/protobuf.

Each binds 127.0.0.1 on a free port, decodes every ``ExportTraceServiceRequest`` it gets, keeps
the requests and the headers they came with, and answers as told: ``"ok"``, an error
(``"unavailable"`` / HTTP ``500`` or ``503``), ``"stall"`` (holds the request until the
receiver stops or ``stall_for`` seconds pass), or ``"together"`` (holds each request until a
second one has arrived: the client sends two at once, or its first gets no answer).
"""

from __future__ import annotations

import gzip
import ssl
import threading
import zlib
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

ExportTraceServiceRequest = trace_service_pb2.ExportTraceServiceRequest


@dataclass
class ReceivedSpan:
    """One decoded span with the resource and scope it came under."""

    span: trace_pb2.Span
    resource: dict[str, Any]
    scope: str

    @property
    def name(self) -> str:
        return self.span.name

    @property
    def span_id(self) -> int:
        return int.from_bytes(self.span.span_id, "big")

    @property
    def parent_id(self) -> int | None:
        return int.from_bytes(self.span.parent_span_id, "big") if self.span.parent_span_id else None

    @property
    def trace_id(self) -> int:
        return int.from_bytes(self.span.trace_id, "big")

    @property
    def attributes(self) -> dict[str, Any]:
        return {kv.key: any_value(kv.value) for kv in self.span.attributes}


def any_value(value: Any) -> Any:
    """An OTLP ``AnyValue`` as a Python value."""
    which = value.WhichOneof("value")
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which) if which else None


def flatten(requests: list[Any]) -> list[ReceivedSpan]:
    """All spans of the requests, in arrival order."""
    out: list[ReceivedSpan] = []
    for request in requests:
        for rs in request.resource_spans:
            resource = {kv.key: any_value(kv.value) for kv in rs.resource.attributes}
            for ss in rs.scope_spans:
                out.extend(ReceivedSpan(s, resource, ss.scope.name) for s in ss.spans)
    return out


class _Receiver:
    protocol = ""

    def __init__(self, mode: str = "ok", stall_for: float = 30.0) -> None:
        self.mode = mode
        self.stall_for = stall_for
        self.requests: list[Any] = []
        self.headers: list[dict[str, str]] = []
        self.attempts = 0
        self._stop = threading.Event()
        self._second = threading.Event()  # a second request has arrived
        self._lock = threading.Lock()
        self.port = 0

    @property
    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return flatten(list(self.requests))

    def _record(self, request: Any, headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(request)
            self.headers.append(headers)

    def response(self) -> Any:
        """The answer to a request taken: in mode "partial", 2 of its spans rejected."""
        if self.mode != "partial":
            return trace_service_pb2.ExportTraceServiceResponse()
        partial = trace_service_pb2.ExportTracePartialSuccess(
            rejected_spans=2, error_message="span too old"
        )
        return trace_service_pb2.ExportTraceServiceResponse(partial_success=partial)

    def _count_attempt(self) -> int:
        """Count a request as it arrives; its number."""
        with self._lock:
            self.attempts += 1
            if self.attempts >= 2:
                self._second.set()
            return self.attempts

    def _hold(self) -> None:
        """In mode "stall", until the receiver stops; in "together" and "500 then 503", until
        a second request has come."""
        if self.mode == "stall":
            self._stop.wait(self.stall_for)
        elif self.mode in ("together", "500 then 503"):
            self._second.wait(self.stall_for)

    def stop(self) -> None:
        self._stop.set()


@dataclass(frozen=True)
class Tls:
    """A certificate and its key, PEM files: a receiver that serves TLS with them."""

    certificate: str
    key: str

    def read(self) -> tuple[bytes, bytes]:
        with open(self.key, "rb") as key, open(self.certificate, "rb") as certificate:
            return key.read(), certificate.read()


class GrpcReceiver(_Receiver):
    """An OTLP/gRPC ``TraceService`` on 127.0.0.1.  Modes: ok, partial, unavailable, stall,
    together."""

    protocol = "grpc"

    def __init__(self, mode: str = "ok", stall_for: float = 30.0, tls: Tls | None = None) -> None:
        super().__init__(mode, stall_for)
        self.scheme = "https" if tls else "http"
        receiver = self

        class Service(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                receiver._count_attempt()
                receiver._hold()
                if receiver.mode == "unavailable":
                    context.abort(grpc.StatusCode.UNAVAILABLE, "receiver told to refuse")
                receiver._record(request, dict(context.invocation_metadata()))
                return receiver.response()

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), self._server)
        if tls is None:
            self.port = self._server.add_insecure_port("127.0.0.1:0")
        else:
            credentials = grpc.ssl_server_credentials([tls.read()])
            self.port = self._server.add_secure_port("127.0.0.1:0", credentials)
        self._server.start()

    @property
    def endpoint(self) -> str:
        host = "localhost" if self.scheme == "https" else "127.0.0.1"  # the certificate's name
        return f"{self.scheme}://{host}:{self.port}"

    def stop(self) -> None:
        super().stop()
        self._server.stop(grace=None).wait(5)


class HttpReceiver(_Receiver):
    """OTLP/HTTP protobuf at ``POST /v1/traces`` on 127.0.0.1.  Modes: ok, partial, 500, 503,
    "500 then 503" (the first request 500 once a second has come, the others 503), stall,
    together."""

    protocol = "http/protobuf"

    def __init__(self, mode: str = "ok", stall_for: float = 30.0, tls: Tls | None = None) -> None:
        super().__init__(mode, stall_for)
        self.scheme = "https" if tls else "http"
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                attempt = receiver._count_attempt()
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                if self.path != "/v1/traces":
                    self._answer(404, b"not found")
                    return
                receiver._hold()
                if receiver.mode in ("500", "503"):
                    self._answer(int(receiver.mode), b"receiver told to fail")
                    return
                if receiver.mode == "500 then 503":
                    self._answer(500 if attempt == 1 else 503, b"receiver told to fail")
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver._record(request, headers)
                reply = receiver.response().SerializeToString()
                self._answer(200, reply, "application/x-protobuf")

            def _answer(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (stall tests)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server, self._thread = serve_http(Handler, tls)
        self.port = self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        host = "localhost" if self.scheme == "https" else "127.0.0.1"  # the certificate's name
        return f"{self.scheme}://{host}:{self.port}/v1/traces"

    def stop(self) -> None:
        super().stop()
        stop_http(self._server, self._thread)


def serve_http(
    handler: type[BaseHTTPRequestHandler], tls: Tls | None = None
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Serve ``handler`` on 127.0.0.1, a free port, from a daemon thread (HTTPS with ``tls``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.certificate, tls.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    return server, thread


def stop_http(server: ThreadingHTTPServer, thread: threading.Thread) -> None:
    """Stop what :func:`serve_http` started."""
    server.shutdown()
    server.server_close()
    thread.join(5)


def receiver(protocol: str, mode: str = "ok") -> GrpcReceiver | HttpReceiver:
    """A started receiver for ``grpc`` or ``http/protobuf``."""
    return GrpcReceiver(mode) if protocol == "grpc" else HttpReceiver(mode)


def running(protocol: str, mode: str = "ok") -> Iterator[GrpcReceiver | HttpReceiver]:
    """Generator for a pytest fixture: yields a started receiver, stops it afterwards."""
    r = receiver(protocol, mode)
    try:
        yield r
    finally:
        r.stop()
