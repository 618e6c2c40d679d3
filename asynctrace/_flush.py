"""Periodic flush: a long run reaches the disk while it runs, and leaves memory.

Problem: a program traced for hours (a server, a crawler, a worker) must not keep every record
until it ends, and a SIGKILL must not lose the whole run.

Solution: while a run is traced to a JSON file, a daemon thread wakes every ``interval``
seconds, builds the records appended since it last woke into spans (with a
:class:`~asynctrace._build.SpanBuilder`, which remembers what later records name) and appends
them to a :class:`~asynctrace._chrome_stream.ChromeStream`.  So a kill loses at most the last
interval.  While the run fits in the recorder's ``max_spans``, its records also stay in memory,
and at stop the file is rewritten whole, with arrows and the tasks counter.  Once it outgrows
``max_spans``, the flusher *sheds* the records it has written: memory holds at most
``max_spans`` records plus one interval's, and at stop the stream is finished in place.

No lock is held across the program's code: the hot path only appends to the record list, and
the flusher's slice copy and ``del`` of its head are each one atomic operation under the GIL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ._build import SpanBuilder, _fn_attributes, _open_records, open_codes
from ._chrome_stream import ChromeStream
from ._record import Recorder
from ._spans import Span

DEFAULT_FLUSH_INTERVAL = 1.0
# tasks and gathers remembered across batches, for the awaits and gathers that name them
REMEMBER = 10_000


class Flusher:
    """Streams a recorder's records to a :class:`ChromeStream` every ``interval`` seconds.

    Without a stream, it holds the recorder to ``max_spans`` (:meth:`Recorder.trim`) instead.

    Args:
        recorder: the active recorder; its ``max_spans`` decides when records are shed.
        stream: the opened stream, or None.
        interval: seconds between flushes.
        on_error: called (on the flusher's thread) when writing the stream fails.
    """

    def __init__(
        self,
        recorder: Recorder,
        stream: ChromeStream | None,
        *,
        interval: float,
        on_error: Callable[[OSError | None], None] | None = None,
    ) -> None:
        self.recorder = recorder
        recorder.streamed = stream is not None
        self.stream = stream
        self.interval = interval
        self.on_error = on_error
        self.shedding = False
        self.spans_written = 0  # spans written to the stream, the final ones included
        self._builder = SpanBuilder(recorder, remember=REMEMBER)
        self._written = 0  # records[:_written] are in the stream
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

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
            self.flush()

    def flush(self) -> None:
        """Append the records not yet written; shed them once the run outgrows ``max_spans``."""
        recorder = self.recorder
        if self.stream is None or self.stream.error is not None:
            recorder.streamed = False  # nothing to shed into: hold memory to max_spans
            recorder.trim()
            return
        records = recorder.records
        count = len(records)
        batch = records[self._written : count]
        if batch:
            spans = self._builder.build(batch, open_codes(recorder))
            if self.stream.write(spans, open_labels(recorder)):
                self.spans_written += len(spans)
            elif self.on_error is not None:
                self.on_error(self.stream.error)
        self._written = count
        if count > recorder.max_spans:
            self.shedding = True
        if self.shedding:
            del records[:count]
            self._written = 0

    def finish(self) -> list[Span]:
        """After the recorder stopped: write the rest and the spans still open, close the file.

        Returns the spans written now (the run span last).
        """
        assert self.stream is not None, "finish() is for a streamed run"
        recorder = self.recorder
        now = recorder.end if recorder.end is not None else recorder.clock()
        rest = recorder.records[self._written :] + _open_records(recorder, now)
        spans = self._builder.build(rest, open_codes(recorder))
        run = self._builder.build([recorder.run_record()])[0]
        if self.stream.finish(spans, run):
            self.spans_written += len(spans) + 1
        return [*spans, run]


def open_labels(recorder: Recorder) -> dict[int, str]:
    """Row names of the tasks still running, and of the run's row."""
    labels = {recorder.run_sid: f"run {recorder.name}"}
    for root in list(recorder.roots):
        task_name = root._task_name
        if task_name is not None:
            labels[root._sid] = f"{task_name() or 'Task'} {_fn_attributes(root._info)[0]}()"
    return labels
