"""The program's own OpenTelemetry spans, exported beside asynctrace's when it set no provider.

Problem: under ``asynctrace run --otlp`` a program that only installs instrumentations (an HTTP
server's, an HTTP client's) and sets no SDK ``TracerProvider`` has its spans go to the no-op
provider: the backend gets asynctrace's spans without the server and client spans they nest
under.  ``opentelemetry-instrument`` would set one; a provider set here must not stop the
program from setting its own later (``set_tracer_provider`` allows one call per process).

Solution: :func:`provide` puts an SDK ``TracerProvider`` (the run's resource) in the API's slot
for the global provider without using up that one call, so ``get_tracer_provider()`` and the
tracers already handed out resolve to it, and a provider the program sets later replaces it.
Its :class:`ProgramSpans` processor hands ended spans, in batches, to the run's OTLP export
(the same endpoint, the same bounded queue and worker thread, the same one line on failure);
:meth:`ProgramSpans.flush` at stop hands over the rest.
"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from ._otlp_send import OtlpExport

BATCH = 512


class ProgramSpans(SpanProcessor):
    """Hands the program's ended spans to an :class:`OtlpExport`, ``BATCH`` at a time."""

    def __init__(self, export: OtlpExport) -> None:
        self._export = export
        self._lock = threading.Lock()
        self._ended: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            self._ended.append(span)
            if len(self._ended) < BATCH:
                return
            batch, self._ended = self._ended, []
        self._export.submit_spans(batch)

    def flush(self) -> None:
        """Hand over the spans ended since the last batch."""
        with self._lock:
            batch, self._ended = self._ended, []
        if batch:
            self._export.submit_spans(batch)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.flush()
        return True

    def shutdown(self) -> None:
        self.flush()


def global_provider_unset() -> bool:
    """True while the program has set no TracerProvider (nor named one in the environment)."""
    return otel_trace._TRACER_PROVIDER is None and not _provider_named_in_environment()


def _provider_named_in_environment() -> bool:
    import os

    from opentelemetry.environment_variables import OTEL_PYTHON_TRACER_PROVIDER

    return bool(os.environ.get(OTEL_PYTHON_TRACER_PROVIDER))


def provide(export: OtlpExport) -> tuple[TracerProvider, ProgramSpans]:
    """Make an SDK provider exporting to ``export`` the global one, until the program sets one."""
    provider = TracerProvider(resource=export.settings.resource())
    processor = ProgramSpans(export)
    provider.add_span_processor(processor)
    otel_trace._TRACER_PROVIDER = provider
    return provider, processor


def withdraw(provider: Any) -> None:
    """Empty the global provider's slot again, if it still holds ``provider``."""
    if otel_trace._TRACER_PROVIDER is provider:
        otel_trace._TRACER_PROVIDER = None
