"""The ways a workload is run: untraced, asynctrace's modes, and the peers.

Each :class:`Mode` builds the workload's coroutine function once (``build``), then per round
``start()`` switches its tracer on, the runner times ``run_until_complete``, and ``finish()``
switches it off, exports what it recorded and returns its measurements (``stop_s``, the time
to stop and build; ``export_s``; ``spans``; ``file_bytes``; ...).  asyncio is left exactly as it
was between modes: asynctrace's patches are uninstalled after each asynctrace round, so the
untraced mode and the peers run on plain asyncio.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
import tempfile
import threading
import time
from typing import Any

from bench.workloads import Main, Workload

Metrics = dict[str, Any]


def _same(fn: Any) -> Any:
    return fn


_scratch: tempfile.TemporaryDirectory[str] | None = None


def scratch_path(name: str) -> str:
    """A path in this process's scratch directory, which is removed when the process exits
    (a mode that is made but never closed, as in the memory subprocesses, leaves nothing)."""
    global _scratch
    if _scratch is None:
        _scratch = tempfile.TemporaryDirectory(prefix="asynctrace-bench-")
    return os.path.join(_scratch.name, name)


class Mode:
    """Untraced: the workload as written."""

    key = "untraced"
    title = "untraced"
    scale = True  # also run on the scale workload

    def available(self) -> str | None:
        """None when this mode can run here, else why not."""
        return None

    def build(self, workload: Workload) -> Main:
        return workload.build(_same, _same)

    def preload(self) -> None:
        """Import what ``start`` and ``finish`` will need (before a memory baseline)."""

    def start(self, workload: Workload) -> None:
        pass

    def finish(self) -> Metrics:
        return {}

    def close(self) -> None:
        """Release what the mode holds (files, receivers) at the end of the bench."""


class Decorators(Mode):
    """asynctrace with only the top coroutine decorated and no await spans."""

    key = "decorators"
    title = "asynctrace decorators only"
    record_awaits = False
    max_spans: int | None = None

    def __init__(self) -> None:
        self.tracing: Any = None

    def build(self, workload: Workload) -> Main:
        import asynctrace

        return workload.build(_same, asynctrace.trace)

    def start(self, workload: Workload) -> None:
        import asynctrace

        options: dict[str, Any] = {
            "name": workload.name,
            "record_awaits": self.record_awaits,
            # The workloads do not use OpenTelemetry; the bench process imports it for the
            # peers, which would switch the OpenTelemetry bridge on by default.
            "otel": False,
        }
        options.update(self.options())
        if self.max_spans is not None:
            options["max_spans"] = self.max_spans
        self.tracing = asynctrace.Tracing(**options).start()

    def finish(self) -> Metrics:
        from asynctrace._core import _instrument

        t0 = time.perf_counter()
        trace = self.tracing.stop()
        stop_s = time.perf_counter() - t0
        _instrument.uninstall()
        records = self.tracing.recorder.records
        metrics: Metrics = {
            "stop_s": stop_s,
            "spans": len(trace.spans),
            "dropped": trace.dropped,
            "records": len(records),
        }
        if self.measure_bytes:
            metrics["record_bytes"] = record_bytes(records)
            self.measure_bytes = False
        metrics.update(self.export(trace))
        # Keep nothing: a trace held across rounds would slow the garbage collector in later ones.
        self.tracing = None
        return metrics

    measure_bytes = False  # set by the runner: measure the records' size once

    def options(self) -> dict[str, Any]:
        """More ``Tracing`` options for this mode."""
        return {}

    def export(self, trace: Any) -> Metrics:
        return {}


def record_bytes(records: Any) -> int:
    """The memory the recorder's records hold: the list's slots, each record and the floats and
    large ints it owns (code objects, names and small ints are shared and not counted).

    The C ``Records`` (``asynctrace/_records.c``) says it itself: its entries (an await's
    fields in C) and the tuples of the other records, without their floats (a few bytes a span).
    """
    if not isinstance(records, list):
        return sys.getsizeof(records)
    total = sys.getsizeof(records)
    for record in records:
        total += sys.getsizeof(record)
        for field in record:
            if (
                field.__class__ is float
                or (field.__class__ is int and not -5 <= field <= 256)
                or field.__class__ is tuple
            ):
                total += sys.getsizeof(field)
    return total


class Auto(Decorators):
    """asynctrace as ``asynctrace run`` does it: every coroutine function traced (compiled by
    the import hook's transformation), every await."""

    key = "auto"
    title = "asynctrace auto + every await"
    record_awaits = True

    def build(self, workload: Workload) -> Main:
        return workload.traced()


class AutoCapped(Auto):
    """Auto, with the recorder capped at ``max_spans`` (the scale workload's memory bound)."""

    key = "auto-cap"
    title = "asynctrace auto + max_spans cap"

    def start(self, workload: Workload) -> None:
        self.max_spans = workload.cap
        super().start(workload)


class AutoJson(Auto):
    """Auto, then the Chrome Trace Event JSON timeline written (timed as ``export_s``)."""

    key = "json"
    title = "asynctrace auto + JSON export"
    scale = False

    def __init__(self) -> None:
        super().__init__()
        self.path = scratch_path("asynctrace.json")

    def preload(self) -> None:
        import asynctrace._export._chrome  # noqa: F401

    def export(self, trace: Any) -> Metrics:
        from asynctrace._export._chrome import write_chrome_json

        t0 = time.perf_counter()
        write_chrome_json(trace, self.path)
        return {"export_s": time.perf_counter() - t0, "file_bytes": os.path.getsize(self.path)}

    def close(self) -> None:
        if os.path.exists(self.path):
            os.unlink(self.path)


class AutoOtlp(Auto):
    """Auto, with ``Tracing(otlp=...)`` sending to a local OTLP/HTTP receiver.

    This is what a user gets with ``--otlp``: the OpenTelemetry bridge is on while recording
    (recorded spans made current for other instrumentation), and at stop the spans are handed
    to a worker thread.  ``stop_s`` is the loop thread's time in ``stop(wait=False)`` (build and
    hand-over); ``deliver_s`` the wait in ``wait_exports()`` until the receiver confirmed the
    spans, which a program pays only at exit.  ``on_loop_thread`` says whether a request was
    ever sent (``_otlp_transport``'s HTTP ``send()``) from the thread that runs the event loop.
    """

    key = "otlp"
    title = "asynctrace auto + OTLP export"
    scale = False

    def __init__(self) -> None:
        super().__init__()
        self.receiver: Any = None
        self.threads: set[int] = set()
        self._restore: Any = None

    def available(self) -> str | None:
        try:
            import opentelemetry.proto.collector.trace.v1.trace_service_pb2  # noqa: F401
            import requests  # noqa: F401

            from asynctrace._opentelemetry import _otlp, _otlp_transport  # noqa: F401
        except ImportError as exc:
            return f"OTLP export not importable: {exc}"
        if "otlp" not in inspect.signature(asynctrace_tracing()).parameters:
            return "this asynctrace has no Tracing(otlp=...)"
        return None

    def preload(self) -> None:
        from asynctrace._opentelemetry import _otlp_transport
        from bench.receiver import Receiver

        if self.receiver is None:
            self.receiver = Receiver()
        if self._restore is None:
            # Note the threads the real transport's send() runs on (restored at close).
            cls = _otlp_transport._Http
            original = cls.send
            threads = self.threads

            def send(transport: Any, body: bytes, deadline: float) -> None:
                threads.add(threading.get_ident())
                original(transport, body, deadline)

            cls.send = send  # type: ignore[method-assign]
            self._restore = (cls, original)

    def options(self) -> dict[str, Any]:
        self.preload()
        self.receiver.reset()
        # 22,000 spans take seconds to encode and send on a loaded 2-core machine: more than
        # the default 5 s for a whole export.
        os.environ["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"] = "60000"
        return {"otlp": self.receiver.endpoint, "otlp_protocol": "http/protobuf", "otel": None}

    def finish(self) -> Metrics:
        from asynctrace._core import _instrument

        self.threads.clear()
        t0 = time.perf_counter()
        trace = self.tracing.stop(wait=False)
        stop_s = time.perf_counter() - t0
        _instrument.uninstall()
        self.tracing.wait_exports()
        deliver_s = time.perf_counter() - t0
        os.environ.pop("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", None)
        self.tracing = None
        return {
            "stop_s": stop_s,
            "deliver_s": deliver_s,
            "spans": len(trace.spans),
            "otlp_received": self.receiver.spans,
            "otlp_bytes": self.receiver.bytes,
            "on_loop_thread": threading.get_ident() in self.threads,
            "export_threads": len(self.threads),
        }

    def close(self) -> None:
        if self.receiver is not None:
            self.receiver.stop()
            self.receiver = None
        if self._restore is not None:
            cls, original = self._restore
            cls.export = original
            self._restore = None


def asynctrace_tracing() -> Any:
    import asynctrace

    return asynctrace.Tracing


class OtelAsyncio(Mode):
    """opentelemetry-instrumentation-asyncio tracing the workload's coroutines by name.

    The SDK's TracerProvider with a SimpleSpanProcessor into an InMemorySpanExporter; its
    metrics go to the no-op global meter (the cheaper setting for it).
    """

    key = "otel-asyncio"
    title = "opentelemetry-instrumentation-asyncio"
    scale = False

    def __init__(self) -> None:
        self._setup: Any = None

    def available(self) -> str | None:
        if importlib.util.find_spec("opentelemetry.instrumentation.asyncio") is None:
            return "not installed (pip install 'asynctrace[bench]')"
        return None

    def start(self, workload: Workload) -> None:
        from opentelemetry.instrumentation.asyncio import AsyncioInstrumentor

        if self._setup is None:
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
                InMemorySpanExporter,
            )

            exporter = InMemorySpanExporter()
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            self._setup = (provider, exporter, AsyncioInstrumentor())
        provider, _, instrumentor = self._setup
        os.environ["OTEL_PYTHON_ASYNCIO_COROUTINE_NAMES_TO_TRACE"] = ",".join(
            workload.coroutine_names
        )
        instrumentor.instrument(tracer_provider=provider)

    def finish(self) -> Metrics:
        _, exporter, instrumentor = self._setup
        instrumentor.uninstrument()
        spans = len(exporter.get_finished_spans())
        exporter.clear()
        return {"spans": spans}


class Viz(Mode):
    """VizTracer with ``log_async=True``, saved to a JSON file (timed as ``export_s``)."""

    key = "viztracer"
    title = "VizTracer log_async"
    scale = False

    def __init__(self) -> None:
        self._tracer: Any = None
        self.path = scratch_path("viztracer.json")

    def available(self) -> str | None:
        if importlib.util.find_spec("viztracer") is None:
            return "not installed (pip install 'asynctrace[bench]')"
        return None

    def start(self, workload: Workload) -> None:
        if self._tracer is None:
            from viztracer import VizTracer  # type: ignore[import-untyped]

            self._tracer = VizTracer(log_async=True, verbose=0, output_file=self.path)
        self._tracer.start()

    def finish(self) -> Metrics:
        t0 = time.perf_counter()
        self._tracer.stop()
        stop_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        self._tracer.save(self.path, verbose=0)
        export_s = time.perf_counter() - t0
        self._tracer.clear()
        return {"stop_s": stop_s, "export_s": export_s, "file_bytes": os.path.getsize(self.path)}

    def close(self) -> None:
        if os.path.exists(self.path):
            os.unlink(self.path)


MODES: tuple[type[Mode], ...] = (Mode, Decorators, Auto, AutoJson, AutoOtlp, OtelAsyncio, Viz)
SCALE_MODES: tuple[type[Mode], ...] = (Mode, Decorators, Auto, AutoCapped)


def make_modes(scale: bool = False) -> list[Mode]:
    """Fresh instances of the modes, in table order."""
    return [cls() for cls in (SCALE_MODES if scale else MODES)]


def stderr_note(text: str) -> None:
    sys.stderr.write(f"bench: {text}\n")
