"""Find and run a real Jaeger (v2 ``jaeger`` binary) on loopback for the end-to-end tests.

The binary comes from ``.ci/install-jaeger.sh`` (built from the Go module proxy and cached).
:func:`start` writes a config that binds every port to 127.0.0.1 (free ports, OTLP gRPC and
HTTP receivers, in-memory storage, the query API; no metrics port), waits until the query API
answers and the OTLP port accepts connections, and :meth:`Jaeger.stop` ends the process.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VERSION = "v1.76.0"  # keep in step with .ci/install-jaeger.sh

_CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:{health}
  jaeger_query:
    enable_tracing: false  # else it sends its own spans to localhost:4317, 10 s flush at exit
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query_http}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{otlp_grpc}
      http:
        endpoint: 127.0.0.1:{otlp_http}
processors:
  batch:
    timeout: 50ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""

# Loopback only, and never through a proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def find_binary() -> str | None:
    """``$ASYNCTRACE_JAEGER_BIN``, else the install script's cache, else ``jaeger`` on PATH."""
    explicit = os.environ.get("ASYNCTRACE_JAEGER_BIN")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    default_dir = Path(
        os.environ.get("ASYNCTRACE_JAEGER_DIR") or cache / f"asynctrace/jaeger-{VERSION}"
    )
    candidate = default_dir / "jaeger"
    if os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which("jaeger")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Jaeger:
    """A running Jaeger: where to send OTLP and where to query."""

    process: subprocess.Popen[bytes]
    otlp_grpc: str
    otlp_http: str
    query: str
    log: Path

    def get(self, path: str, **params: object) -> Any:
        """GET a query API path, decoded from JSON."""
        url = self.query + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with _OPENER.open(url, timeout=10) as response:
            return json.load(response)

    def post(self, path: str, body: bytes) -> Any:
        """POST ``body`` (JSON) to a query API path, decoded from JSON."""
        request = urllib.request.Request(
            self.query + path, data=body, headers={"Content-Type": "application/json"}
        )
        with _OPENER.open(request, timeout=10) as response:
            return json.load(response)

    def find_traces(self, service: str, since_ns: int, limit: int = 100) -> list[Any]:
        """The whole traces (every service's spans) holding a span of ``service``.

        Those that started from ``since_ns`` (a :func:`time.time_ns` value) on; a minute more
        on either side, for clocks and slow stores.
        """
        params = {
            "service": service,
            "start": since_ns // 1000 - 60_000_000,
            "end": time.time_ns() // 1000 + 60_000_000,
            "limit": limit,
        }
        traces: list[Any] = self.get("/api/traces", **params)["data"] or []
        return traces

    def stop(self) -> None:
        """End the process (SIGTERM, then SIGKILL after 10 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start(binary: str, workdir: Path, ready_timeout: float = 60.0) -> Jaeger:
    """Start Jaeger with a loopback config in ``workdir`` and wait until it is ready.

    Raises:
        RuntimeError: it exited or was not ready in time; the message has its log's tail.
    """
    health, query_http, query_grpc, otlp_grpc, otlp_http = _free_ports(5)
    config = workdir / "jaeger.yaml"
    config.write_text(
        _CONFIG.format(
            health=health,
            query_http=query_http,
            query_grpc=query_grpc,
            otlp_grpc=otlp_grpc,
            otlp_http=otlp_http,
        )
    )
    log = workdir / "jaeger.log"
    # No OTEL_* variable of ours may reach Jaeger's own OpenTelemetry setup.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_SDK_DISABLED="true", OTEL_TRACES_EXPORTER="none", NO_PROXY="127.0.0.1")
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [binary, "--config", str(config)], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    jaeger = Jaeger(
        process,
        otlp_grpc=f"http://127.0.0.1:{otlp_grpc}",
        otlp_http=f"http://127.0.0.1:{otlp_http}/v1/traces",
        query=f"http://127.0.0.1:{query_http}",
        log=log,
    )
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            jaeger.get("/api/services")
            with socket.create_connection(("127.0.0.1", otlp_grpc), timeout=1):
                return jaeger
        except OSError:
            time.sleep(0.2)
    jaeger.stop()
    tail = log.read_text(errors="replace")[-2000:]
    msg = f"Jaeger at {binary} was not ready within {ready_timeout:g} s; its log ends:\n{tail}"
    raise RuntimeError(msg)


@dataclass(frozen=True)
class JaegerSpan:
    """One span as Jaeger's query API shows it (times in microseconds, as Jaeger gives them)."""

    trace_id: str
    span_id: str
    name: str
    service: str
    parent_id: str | None  # the CHILD_OF reference's span id
    parent_trace_id: str | None  # and its trace id (a parent in another trace is an error)
    start: int
    duration: int
    tags: dict[str, Any]

    @property
    def end(self) -> int:
        return self.start + self.duration

    @property
    def kind(self) -> str | None:
        """``asynctrace.kind`` (run, task, coroutine, await, gather...): None if not ours."""
        kind = self.tags.get("asynctrace.kind")
        return None if kind is None else str(kind)

    @property
    def span_kind(self) -> str:
        """OpenTelemetry's span kind, as Jaeger tags it: internal, client, server..."""
        return str(self.tags.get("span.kind", "internal"))


def spans_of(traces: list[Any]) -> list[JaegerSpan]:
    """The spans of Jaeger traces (as :meth:`Jaeger.find_traces` returns them), each once."""
    seen: dict[tuple[str, str], JaegerSpan] = {}
    for trace in traces:
        processes = trace["processes"]
        for span in trace["spans"]:
            parents = [r for r in span["references"] if r["refType"] == "CHILD_OF"]
            key = (span["traceID"], span["spanID"])
            seen[key] = JaegerSpan(
                trace_id=span["traceID"],
                span_id=span["spanID"],
                name=span["operationName"],
                service=processes[span["processID"]]["serviceName"],
                parent_id=parents[0]["spanID"] if parents else None,
                parent_trace_id=parents[0]["traceID"] if parents else None,
                start=span["startTime"],
                duration=span["duration"],
                tags={t["key"]: t["value"] for t in span["tags"]},
            )
    return list(seen.values())


def running(workdir: Path) -> Iterator[Jaeger]:
    """Generator for a pytest fixture: a started Jaeger, stopped afterwards.

    Without the binary the test fails under ``CI`` (CI installs it: a missing binary is a
    broken CI, not a skip) and is skipped elsewhere.
    """
    import pytest

    binary = find_binary()
    if binary is None:
        msg = "no Jaeger binary: run `bash .ci/install-jaeger.sh` (or set ASYNCTRACE_JAEGER_BIN)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    started = start(binary, workdir)
    try:
        yield started
    finally:
        started.stop()
