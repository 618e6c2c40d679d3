"""The programmatic switch: ``instrument()``/``uninstrument()`` and ``with tracing():``.

A :class:`Tracing` owns one recorder from ``start()`` to ``stop()``; at ``stop()`` it builds the
:class:`~asynctrace.Trace` and writes the outputs it was asked for.  While it runs, a
:class:`~_flush.Flusher` streams the spans to the JSON file every ``flush_interval``
seconds (or, without a file, holds memory to ``max_spans``).  An output that fails is reported
once on stderr and skipped: it never raises into the program, and the other outputs are still
written.  One tracing is active per process at a time.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._core import _instrument
from ._core._coro import coro_name, safe_str
from ._core._record import DEFAULT_BLOCKED_THRESHOLD, DEFAULT_MAX_SPANS, Recorder
from ._export._files import BackgroundWrite
from ._model._build import build_trace
from ._model._critical import mark_critical
from ._model._spans import Span, Trace, gc_paused
from ._opentelemetry._otlp import DEFAULT_MAX_TRACE_SPANS, TRACE_PER
from ._stream._flush import DEFAULT_FLUSH_INTERVAL, Flusher

if TYPE_CHECKING:
    from ._opentelemetry._otlp_send import ExportReport
    from ._stream._chrome_stream import ChromeStream

Output = Callable[[Trace], None]

_active: Tracing | None = None


def report(message: str) -> None:
    """One line for the user on stderr, prefixed ``asynctrace:``; never raises."""
    try:
        sys.stderr.write(f"asynctrace: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):  # closed or missing stderr: nowhere to say it
        pass


class Tracing:
    """Records everything asyncio does between :meth:`start` and :meth:`stop`.

    Args:
        name: the run span's name (the script, module or test).
        json: write a Chrome Trace Event JSON timeline (Perfetto) here: streamed while the
            run goes (when it is a regular file), rewritten whole at stop.
        outputs: more callables given the finished Trace at stop (exporters).
        otlp: send the trace over OTLP at stop: an endpoint URL, or ``""`` for the one the
            ``OTEL_EXPORTER_OTLP_*`` variables name (default ``localhost:4317``, gRPC).
        otlp_protocol: ``grpc`` or ``http/protobuf`` (default: the variables', else gRPC).
        otlp_json: write the trace as an OTLP/JSON file here at stop.
        service_name: the OpenTelemetry ``service.name`` (default: ``OTEL_SERVICE_NAME``, else
            the run's name).
        trace_per: with OpenTelemetry, which tasks start a trace of their own: ``"auto"``
            (those started outside any task while the loop runs: a server's connections),
            ``"task"`` (also those a main task starts), ``"run"`` (none); see
            docs/distributed.md.  Spans under a span the program makes current join its trace.
        max_trace_spans: with OpenTelemetry, cut the run's trace into traces of at most this
            many spans (0: never), so that a backend's UI can open each.
        otel: join the program's OpenTelemetry (make recorded spans current for other
            instrumentation, hand the spans to its global TracerProvider): True, False, or
            None for "when OTLP output is asked for or ``opentelemetry`` is imported".
        virtual_time: run event loops created while tracing on the virtual clock.
        seed: run them under the explored schedule of this seed (implies ``virtual_time``;
            see "Exploring schedules" in docs/testing.md); None: the plain virtual clock.
        blocked_threshold: seconds a loop step may run before it is a ``blocked`` span.
        record_awaits: False keeps tasks, coroutines and gathers but no await spans.
        max_spans: keep at most this many spans in memory.  With a ``json`` file, a longer
            run is streamed to it whole and memory holds the last spans only (the file then
            has no arrows between tasks and no tasks counter, and the other outputs get only
            the spans of the last flush); without one, the rest are counted as dropped.
        flush_interval: seconds between flushes to the ``json`` file (a SIGKILL loses at most
            this much); 0 writes it at stop only, and holds no spans in check while running.
    """

    def __init__(
        self,
        *,
        name: str = "asynctrace",
        json: str | None = None,
        outputs: tuple[Output, ...] = (),
        otlp: str | None = None,
        otlp_protocol: str | None = None,
        otlp_json: str | None = None,
        service_name: str | None = None,
        otel: bool | None = None,
        trace_per: str = "auto",
        max_trace_spans: int = DEFAULT_MAX_TRACE_SPANS,
        virtual_time: bool = False,
        seed: int | None = None,
        blocked_threshold: float = DEFAULT_BLOCKED_THRESHOLD,
        record_awaits: bool = True,
        max_spans: int = DEFAULT_MAX_SPANS,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    ) -> None:
        if not 0 <= flush_interval < float("inf"):
            msg = f"flush_interval={flush_interval!r} must be 0 (off) or a number of seconds"
            raise ValueError(msg)
        if trace_per not in TRACE_PER:
            msg = f"trace_per={trace_per!r} must be one of {', '.join(map(repr, TRACE_PER))}"
            raise ValueError(msg)
        if not isinstance(max_trace_spans, int) or max_trace_spans < 0 or max_trace_spans == 1:
            msg = f"max_trace_spans={max_trace_spans!r} must be 0 (never cut) or at least 2"
            raise ValueError(msg)
        self.trace_per = trace_per
        self.max_trace_spans = max_trace_spans
        self.name = name
        self.flush_interval = flush_interval
        self._flusher: Flusher | None = None
        self.json = json
        self.outputs = outputs
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            msg = f"seed={seed!r} is not a schedule's seed; give an integer of 0 or more"
            raise ValueError(msg)
        self.virtual_time = virtual_time or seed is not None
        self.seed = seed
        self.recorder = Recorder(
            name,
            blocked_threshold=blocked_threshold,
            record_awaits=record_awaits,
            max_spans=max_spans,
        )
        self._trace: Trace | None = None
        self._stopped = False  # the final trace, when None, is built on first read
        self._json_error: BaseException | None = None
        self._virtual: Any = None
        self._bridge: Any = None
        self._exports: list[Any] = []
        self._json_write: BackgroundWrite | None = None  # the JSON file, written in a thread
        self._program: Any = None  # (provider, processor) set for the program's own spans
        self.otlp_json = otlp_json
        self.otlp = None
        if otlp is not None:
            from ._opentelemetry._otlp_config import otlp_settings

            self.otlp = otlp_settings(
                endpoint=otlp or None,
                protocol=otlp_protocol,
                service_name=service_name,
                default_service=_service_default(name),
            )
        self.service_name = service_name
        if otel is False and (otlp is not None or otlp_json is not None):
            msg = "otel=False cannot send OTLP output; drop otel=False or the otlp/otlp_json option"
            raise ValueError(msg)
        self.otel = otel

    @property
    def active(self) -> bool:
        """True between start and stop."""
        return _active is self

    def start(self) -> Tracing:
        """Start recording (and patch asyncio, once per process)."""
        global _active
        if _active is not None:
            msg = (
                f"asynctrace is already tracing {_active.name!r}; stop it first "
                "(asynctrace.uninstrument() or leave its tracing() block)"
            )
            raise RuntimeError(msg)
        _instrument.install()
        if self.virtual_time:
            from ._core._virtual import install_virtual_time

            if self.seed is None:
                self._virtual = install_virtual_time(self.recorder)
            else:
                from ._schedules._explore import ExploringLoop, Schedule

                schedule = Schedule(self.seed)
                self._virtual = install_virtual_time(self.recorder, lambda: ExploringLoop(schedule))
        if self.otel or (
            self.otel is None
            and (
                self.otlp is not None
                or self.otlp_json is not None
                or "opentelemetry" in sys.modules
            )
        ):
            self._start_bridge()
        if self.otlp is not None:
            self._program_spans()
        self.recorder.activate()
        _active = self
        self._flusher = Flusher(
            self.recorder,
            self._open_stream() if self.flush_interval > 0 else None,
            interval=self.flush_interval,
            export=self._otlp_batches() if self.otlp is not None else None,
            on_error=self._json_failed,
        )
        if self.flush_interval > 0:
            self._flusher.start()
        return self

    def _open_stream(self) -> ChromeStream | None:
        """The JSON file's stream, if it is a regular file (not ``/dev/stdout``, a FIFO...)."""
        path = self.json
        if path is None or (os.path.exists(path) and not os.path.isfile(path)):
            return None
        from ._stream._chrome_stream import ChromeStream

        stream = ChromeStream(
            path,
            process=f"asynctrace: {self.name}",
            clock="virtual" if self.virtual_time else self.recorder.clock_name,
            epoch_ns=self.recorder.epoch_ns,
            run_track=self.recorder.run_sid,
        )
        if not stream.open():
            self._json_failed(stream.error)
        return stream

    def _json_failed(self, exc: BaseException | None) -> None:
        """Say once that the JSON file cannot be written."""
        if self._json_error is None:
            self._json_error = exc
            reason = getattr(exc, "strerror", None) or exc
            report(f"could not write the JSON timeline {self.json!r}: {reason}")

    @property
    def json_failed(self) -> bool:
        """True when writing the JSON file failed (and was reported)."""
        return self._json_error is not None

    @property
    def streamed(self) -> bool:
        """True when the run outgrew ``max_spans`` and only the JSON file holds all of it."""
        return self._flusher is not None and self._flusher.shedding

    def _start_bridge(self) -> None:
        """Join OpenTelemetry: ids known now, live parents for other spans, delivery at stop."""
        from ._opentelemetry._otel import OtelBridge

        deliver = () if self.otlp_json is None else (self._write_otlp_json,)
        self._bridge = OtelBridge(
            self.recorder,
            deliver,
            trace_per=self.trace_per,
            max_trace_spans=self.max_trace_spans,
        )
        self._bridge.start()

    def _otlp_export(self) -> Any:
        """The run's OTLP export (made on first use): asynctrace's spans and the program's."""
        if not self._exports:
            from ._opentelemetry._otlp_send import OtlpExport

            assert self.otlp is not None
            self._exports.append(OtlpExport(self.otlp))
        return self._exports[0]

    def _program_spans(self) -> None:
        """Export the program's own spans too, when it set no TracerProvider."""
        from ._opentelemetry._otel_program import global_provider_unset, provide

        if global_provider_unset():
            self._program = provide(self._otlp_export())

    def _otlp_batches(self) -> Callable[[list[Span]], None]:
        """Send each batch of spans the flusher builds over OTLP, as the run goes."""
        assert self.otlp is not None and self._bridge is not None
        export = self._otlp_export()
        bridge = self._bridge
        recorder = self.recorder

        def send(spans: list[Span]) -> None:
            batch = Trace(
                spans,
                clock=recorder.clock_name,
                epoch_ns=recorder.epoch_ns,
                dropped=recorder.dropped,
            )
            export.submit(
                batch,
                trace_id=bridge.trace_id,
                span_id_base=bridge.span_id_base,
                parent_context=bridge.parent_context,
                link_all=True,
            )

        return send

    def _write_otlp_json(self, trace: Trace, bridge: Any) -> None:
        from ._opentelemetry._otlp import write_otlp_json
        from ._opentelemetry._otlp_config import otlp_resource

        path = str(self.otlp_json)
        try:
            write_otlp_json(
                trace,
                path,
                resource=otlp_resource(
                    self.service_name, default_service=_service_default(self.name)
                ),
                trace_id=bridge.trace_id,
                span_id_base=bridge.span_id_base,
                parent_context=bridge.parent_context,
            )
        except OSError as exc:
            report(f"could not write the OTLP JSON file {path!r}: {exc.strerror or exc}")

    def stop(self, *, wait: bool = True) -> Trace:
        """Stop recording, build the trace, write the outputs; returns the trace.

        Args:
            wait: wait until the JSON file is written and (bounded by the OTLP timeout) OTLP
                exports are delivered; with False, call :meth:`wait_exports` later.
        """
        self.stop_recording(wait=wait)
        return self.trace

    def stop_recording(self, *, wait: bool = True) -> None:
        """:meth:`stop`, with the trace built only if an output needs it (else on first read
        of :attr:`trace`): ``asynctrace run --no-json --no-timeline`` builds none."""
        global _active
        if _active is self:
            self.recorder.deactivate()
            _active = None
            if self._virtual is not None:
                self._virtual.restore()
                self._virtual = None
            if self._bridge is not None:
                self._bridge.stop()
            self._stopped = True
            with gc_paused():  # every span built is live: a collection would only scan them
                self._trace = self._final_trace()
                if self._bridge is not None:
                    self._bridge.publish(self.trace)
            if self._program is not None:
                from ._opentelemetry._otel_program import withdraw

                provider, processor = self._program
                processor.flush()
                withdraw(provider)
                self._program = None
        if wait:
            self.wait_exports()

    def wait_exports(self) -> list[ExportReport]:
        """Wait for the JSON file's write, then, bounded, for OTLP exports in flight; a failure
        is one line on stderr.

        Returns what each OTLP export delivered (none when there was no OTLP export, or when
        they were waited for already).
        """
        if self._json_write is not None:
            error = self._json_write.join()
            self._json_write = None
            if error is not None:
                self._json_failed(error)
        reports = []
        while self._exports:
            reports.append(self._exports.pop().close())
        return reports

    def _final_trace(self) -> Trace | None:
        """Finish streaming; build the trace and write the outputs.

        A run that outgrew ``max_spans`` was streamed to the JSON file (and OTLP) whole; the
        other outputs then get the spans of the last flush, and a line says so.  None: no
        output needs the trace (it is built when read).
        """
        flusher = self._flusher
        assert flusher is not None
        flusher.stop()
        recorder = self.recorder
        streaming = flusher.streaming
        if streaming and len(recorder.records) > recorder.max_spans:
            flusher.shedding = True
        if streaming and not flusher.spans_streamed and not flusher.shedding:
            # It ended before its first flush: build once, write once, send once.
            trace = build_trace(recorder)
            mark_critical(trace)
            flusher.finish_unstreamed(trace.spans)
            self._write_json(trace)
            self._write_outputs(trace)
            return trace
        if not streaming and self.json is None and not self.outputs and self._bridge is None:
            return None
        last = flusher.finish() if streaming else []
        if flusher.stream is not None and flusher.stream.error is not None:
            self._json_failed(flusher.stream.error)
        if streaming and flusher.shedding:
            trace = Trace(last, clock=recorder.clock_name, epoch_ns=recorder.epoch_ns)
            where = f"{self.json!r}" if self.json is not None and not self.json_failed else "OTLP"
            report(
                f"the run outgrew max_spans={recorder.max_spans}: {where} got all"
                f" {flusher.spans_streamed} spans as it ran; other outputs get the last"
                f" {len(trace.spans)} only, and the file has no arrows or tasks counter"
            )
        else:
            trace = build_trace(recorder)
            mark_critical(trace)
            self._write_json(trace)
        self._write_outputs(trace)
        return trace

    def _write_json(self, trace: Trace) -> None:
        """Encode the JSON file now, written by a thread as it is encoded, and finished while
        the other outputs are made (see :meth:`wait_exports`)."""
        if self.json is not None and self._json_error is None:
            try:
                from ._export._chrome import start_chrome_json

                self._json_write = start_chrome_json(trace, self.json)
            except Exception as exc:  # an output MUST NOT break the program or the others
                self._json_failed(exc)

    def _write_outputs(self, trace: Trace) -> None:
        for output in self.outputs:
            try:
                output(trace)
            except Exception as exc:
                report(f"output {coro_name(output)!r} failed: {safe_str(exc)}")

    @property
    def built(self) -> bool:
        """Whether the final trace is built (see :meth:`stop_recording`)."""
        return self._trace is not None

    @property
    def trace(self) -> Trace:
        """The recorded trace: final after stop, a snapshot with open spans while active."""
        if self._trace is None and self._stopped:
            with gc_paused():
                self._trace = build_trace(self.recorder)
                mark_critical(self._trace)
        if self._trace is not None:
            return self._trace
        return build_trace(self.recorder)

    def spans(
        self, name_glob: str | None = None, kind: str | None = None, **attributes: object
    ) -> list[Span]:
        """Recorded spans matching a name glob, a kind and attribute values."""
        return self.trace.spans_matching(name_glob, kind, **attributes)

    def __enter__(self) -> Tracing:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _service_default(name: str) -> str:
    """The service name for a run named after a script (``gather.py`` -> ``gather``)."""
    return name[:-3] if name.endswith(".py") else name


def tracing(**options: Any) -> Tracing:
    """``with asynctrace.tracing(json="trace.json") as t:`` records the block; ``t.trace`` after.

    Takes the options of :class:`Tracing`.
    """
    return Tracing(**options)


def instrument(**options: Any) -> Tracing:
    """Start tracing everything asyncio does until :func:`uninstrument` (options of Tracing)."""
    return Tracing(**options).start()


def uninstrument() -> Trace | None:
    """Stop the active tracing; returns its trace, or None if nothing was tracing."""
    if _active is None:
        return None
    return _active.stop()
