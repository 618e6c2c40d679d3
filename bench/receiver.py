"""A minimal OTLP/HTTP protobuf receiver on 127.0.0.1 for the "+ OTLP" mode.

It answers ``POST /v1/traces`` with an empty ``ExportTraceServiceResponse`` and counts the spans
and bytes it received; it runs in a daemon thread and stops with :meth:`Receiver.stop`.
"""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """Counts the spans of every OTLP/HTTP export it gets; ``endpoint`` is its URL."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        request_type = trace_service_pb2.ExportTraceServiceRequest
        answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        receiver = self
        self.spans = 0
        self.bytes = 0
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request = request_type()
                request.ParseFromString(body)
                count = sum(
                    len(scope.spans)
                    for resource in request.resource_spans
                    for scope in resource.scope_spans
                )
                with receiver._lock:
                    receiver.spans += count
                    receiver.bytes += len(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        # Loopback MUST NOT go through a proxy set in the environment.
        for name in ("NO_PROXY", "no_proxy"):
            os.environ[name] = ",".join(filter(None, [os.environ.get(name), "127.0.0.1"]))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="bench-otlp-receiver", daemon=True
        )
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def reset(self) -> None:
        with self._lock:
            self.spans = 0
            self.bytes = 0

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
