"""Periodic flush: a long run reaches the disk while it runs, and leaves memory.

Problem: a program traced for hours (a server, a crawler, a worker) must not keep every record
until it ends, and a SIGKILL must not lose the whole run.

Solution: a daemon thread wakes every ``interval`` seconds, builds the records appended since
it last woke into spans (with a :class:`~asynctrace._model._build.SpanBuilder`, which remembers what
later records name) and appends them to a :class:`~_chrome_stream.ChromeStream` and
hands them to the OTLP exporter.  So a kill loses at most the last interval.  While the run
fits in the recorder's ``max_spans``, its records also stay in memory, and at stop the file is
rewritten whole, with arrows and the tasks counter.  Once it outgrows
``max_spans``, the flusher *sheds* the records it has streamed: memory holds at most
``max_spans`` records plus one interval's, and at stop the stream is finished in place.
OTLP gets every span once, batch by batch, whether the run is shed or not.  After its spans,
every flush writes what is in flight to the stream (:func:`in_flight`): the open spans of the
tasks waiting longest when they changed (other tasks, or other awaits), else only the time at
which they still were, for ``asynctrace view --follow``.

No lock is held across the program's code: the hot path only appends to the record list, and
the flusher's slice copy and ``del`` of its head are each one atomic operation under the GIL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .._core._coro import _NOT_STARTED, TaskRoot, copy_records
from .._core._record import Recorder
from .._model._build import SpanBuilder, _fn_attributes, _open_records, open_codes
from .._model._spans import Span
from .._model._timeline import task_row
from ._chrome_stream import ChromeStream

DEFAULT_FLUSH_INTERVAL = 1.0
# tasks and gathers remembered across batches, for the awaits and gathers that name them
REMEMBER = 10_000
# records built and written at a time: what a flush holds at its peak, whatever the rate
CHUNK = 2_000
# tasks whose open spans a flush writes for the live view: the longest waiting, a screenful
OPEN_TASKS = 40
_OFF = object()  # the in-flight events failed once: no more of them


class Flusher:
    """Streams a recorder's spans every ``interval`` seconds: to the JSON file, and to ``export``.

    Without either, it holds the recorder to ``max_spans`` (:meth:`Recorder.trim`) instead.

    Args:
        recorder: the active recorder; its ``max_spans`` decides when records are shed.
        stream: the opened JSON stream, or None.
        interval: seconds between flushes (used by :meth:`start`).
        export: given every batch of spans as it is built (OTLP), the last one at
            :meth:`finish`; or None.
        on_error: called (on the flusher's thread) when writing the stream fails.
    """

    def __init__(
        self,
        recorder: Recorder,
        stream: ChromeStream | None,
        *,
        interval: float,
        export: Callable[[list[Span]], None] | None = None,
        on_error: Callable[[OSError | None], None] | None = None,
    ) -> None:
        self.recorder = recorder
        self.stream = stream
        self.interval = interval
        self.export = export
        self.on_error = on_error
        self.shedding = False
        self.spans_streamed = 0  # spans built and streamed, the final ones included
        self._builder = SpanBuilder(recorder, remember=REMEMBER)
        self._written = 0  # records[:_written] are streamed
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed = False
        self._in_flight: object = None  # what the stream last said was in flight
        recorder.streamed = self.streaming

    @property
    def streaming(self) -> bool:
        """True while every record reaches a file or an exporter (so memory may shed it)."""
        return (self.stream is not None and self.stream.error is None) or self.export is not None

    def start(self) -> None:
        """Flush every ``interval`` seconds on a daemon thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, name="asynctrace-flush", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, after the flush it may be in."""
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None

    def _run(self) -> None:
        while not self._wake.wait(min(self.interval, threading.TIMEOUT_MAX)):
            try:
                self.flush()
            except Exception as exc:  # a bug of ours: say it once, never kill the thread
                if not self._failed:
                    self._failed = True
                    from .._tracing import report

                    report(f"could not stream the trace (a bug, please report it): {exc!r}")

    def flush(self) -> None:
        """Stream the records not streamed yet; shed them once the run outgrows ``max_spans``."""
        recorder = self.recorder
        if not self.streaming:
            recorder.streamed = False  # nothing to shed into: hold memory to max_spans
            recorder.trim()
            return
        records = recorder.records
        count = len(records)
        if count > self._written:
            codes = open_codes(recorder)
            for start in range(self._written, count, CHUNK):
                batch = copy_records(records, start, min(start + CHUNK, count))
                self._deliver(self._builder.build(batch, codes, final=False))
        self._written = count
        if count > recorder.max_spans:
            self.shedding = True
        if self.shedding:
            del records[:count]
            self._written = 0
        stream = self.stream
        if stream is not None and stream.error is None and self._in_flight is not _OFF:
            try:
                self._write_in_flight(stream)
            except Exception as exc:  # a bug of ours: the spans stream on without it
                self._in_flight = _OFF
                from .._tracing import report

                report(f"could not write what is in flight (a bug, please report it): {exc!r}")

    def _deliver(self, spans: list[Span]) -> None:
        self.spans_streamed += len(spans)
        stream = self.stream
        written = (
            stream is None
            or stream.error is not None
            or stream.write(spans, open_labels(self.recorder))
        )
        if not written and self.on_error is not None:
            self.on_error(stream.error if stream is not None else None)
        if self.export is not None:
            self.export(spans)

    def _write_in_flight(self, stream: ChromeStream) -> None:
        now = self.recorder.clock()
        roots, total, key = in_flight(self.recorder, now)
        spans = None  # unchanged: only the time it was still so
        if key != self._in_flight:
            self._in_flight = key
            builder = SpanBuilder(self.recorder, place=False)
            records = _open_records(self.recorder, now, roots)
            spans = builder.build(records, open_codes(self.recorder))
        if (
            not stream.write_open(now - self.recorder.origin, spans, total)
            and self.on_error is not None
        ):
            self.on_error(stream.error)

    def finish(self) -> list[Span]:
        """After the recorder stopped: stream the rest and the spans still open.

        The JSON stream is finished in place when shedding, else only closed (the file is
        then rewritten whole).  Returns the spans streamed now, the run span last.
        """
        self.flush()
        recorder = self.recorder
        now = recorder.end if recorder.end is not None else recorder.clock()
        spans = self._builder.build(_open_records(recorder, now), open_codes(recorder))
        spans.append(self._builder.build([recorder.run_record()])[0])
        self.spans_streamed += len(spans)
        stream = self.stream
        if stream is not None and stream.error is None:
            if not self.shedding:
                stream.close()
            elif not stream.finish(spans[:-1], spans[-1]) and self.on_error is not None:
                self.on_error(stream.error)
        if self.export is not None:
            self.export(spans)
        return spans

    def finish_unstreamed(self, spans: list[Span]) -> None:
        """After a run that ended before its first flush: close the stream (the file is then
        written whole, once) and send the run's ``spans``, built once, as one batch."""
        self.spans_streamed += len(spans)
        if self.stream is not None:
            self.stream.close()
        if self.export is not None:
            self.export(spans)


def in_flight(recorder: Recorder, now: float) -> tuple[list[TaskRoot], int, object]:
    """The :data:`OPEN_TASKS` tasks in an await the longest, how many tasks run, and a key
    that changes when they or their awaits do.

    Read on the flusher's thread while the loop runs: a root's await slots can change under
    it, which at worst shows an await one step old.
    """
    running = [root for root in recorder.live_roots() if root._task_name is not None]

    def since(root: TaskRoot) -> float:
        t = root._aw_t
        return t if t is not None and t != _NOT_STARTED else now

    chosen = sorted(running, key=since)[:OPEN_TASKS]
    return (
        chosen,
        len(running),
        (len(running), [(r._sid, getattr(r, "_aw_sid", 0)) for r in chosen]),
    )


def open_labels(recorder: Recorder) -> dict[int, str]:
    """Row names of the tasks still running, and of the run's row."""
    labels = {recorder.run_sid: f"run {recorder.name}"}
    for root in recorder.live_roots():
        task_name = root._task_name
        if task_name is not None:
            function = _fn_attributes(root._info)[0]
            thread = recorder.task_threads.get(root._sid)
            labels[root._sid] = task_row(task_name() or "Task", function, thread)
    return labels
