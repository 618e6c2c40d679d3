"""The recorder: one clock and a list of small tuples.

Problem: spans must be recorded on the event loop thread at a cost far below the program's own,
and from worker threads too, without locks held across user code.

Solution: a :class:`Recorder` owns a list that the hot path (``_coro.py``) appends tuples to
(``list.append`` is atomic under the GIL; a cap on it is enforced off the hot path, see
:meth:`Recorder.trim`), an id counter shared by starts and ends (so ties on
the clock are decided by the order of events) and one injectable clock.  With the C
accelerator the list is a ``_speedups.Records``: the C send keeps await and call records as C
fields (no object per await) and makes them into the same tuples when they are read; its
readers (``_build.py``, ``_flush.py``) use it as the list of tuples it stands for.
Activating a recorder binds these to module globals of ``_coro`` so that each record costs one
lookup.  The recorder imports nothing from OpenTelemetry.
"""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import _coro, _held
from ._coro import K_RUN, Rec, RecordList, RootSet, new_records, new_roots

if TYPE_CHECKING:
    from .._opentelemetry._otel_traces import TraceMap

DEFAULT_BLOCKED_THRESHOLD = 0.1
DEFAULT_MAX_SPANS = 100_000
MAX_TASK_THREADS = 100_000  # tasks started off the main thread whose thread is kept


class Recorder:
    """Collects the records of one traced run.

    Args:
        name: the name of the run span (script, module or test id).
        clock: seconds on a monotonic clock; the virtual-time loop's ``time`` under virtual time.
        blocked_threshold: a loop step longer than this many seconds is a ``blocked`` span.
        record_awaits: False records tasks, coroutines and gathers but no await spans.
        max_spans: records kept in memory at most (past it, see :meth:`trim` and
            ``_flush.py``, which streams a run to its file and sheds what it wrote).
    """

    def __init__(
        self,
        name: str = "asynctrace",
        *,
        clock: Callable[[], float] = time.perf_counter,
        blocked_threshold: float = DEFAULT_BLOCKED_THRESHOLD,
        record_awaits: bool = True,
        max_spans: int = DEFAULT_MAX_SPANS,
    ) -> None:
        if blocked_threshold <= 0:
            msg = f"blocked_threshold={blocked_threshold!r} must be a positive number of seconds"
            raise ValueError(msg)
        if max_spans < 1:
            msg = f"max_spans={max_spans!r} must be at least 1"
            raise ValueError(msg)
        self.name = name
        self.clock = clock
        self.blocked_threshold = blocked_threshold
        self.record_awaits = record_awaits
        self.max_spans = max_spans
        self.records: RecordList = new_records()
        self.dropped = 0
        self.streamed = False  # set by a flusher that streams the records to a file
        self.clock_name = "monotonic"
        self.next_seq = itertools.count(1).__next__
        self.run_sid = self.next_seq()
        self.origin = clock()
        self.epoch_ns = time.time_ns()
        self.end: float | None = None
        # Tasks started while recording, to find the spans still open when the trace is built.
        self.roots: RootSet = new_roots()
        # span id of a task started off the main thread -> its thread's name (see note_thread)
        self.task_threads: dict[int, str] = {}
        # With OpenTelemetry on: the traces of the spans built (see _otel_traces.py).
        self.traces: TraceMap | None = None

    def live_roots(self) -> list[_coro.TaskRoot]:
        """The tasks started while recording that still exist; safe from any thread.

        Iterating a WeakSet itself fails when another thread adds a task meanwhile; copying
        its set of references is one C call, atomic under the GIL (as is ``Roots.live``).
        """
        roots = self.roots
        if not isinstance(roots, weakref.WeakSet):
            return roots.live()
        found = (ref() for ref in list(roots.data))  # type: ignore[attr-defined]
        return [root for root in found if root is not None]

    def trim(self) -> None:
        """Drop the records past ``max_spans`` (the latest), counting them in ``dropped``.

        Called from another thread while the hot path appends: the count and the ``del``
        cover the same records, as appends only add past them.  A streamed recorder is never
        trimmed: its flusher writes every record, then sheds it.
        """
        if self.streamed:
            return
        records = self.records
        extra = len(records) - self.max_spans
        if extra > 0:
            del records[self.max_spans : self.max_spans + extra]
            self.dropped += extra

    def activate(self) -> None:
        """Make this the recorder that the hot path writes to."""
        _held.reset()
        _coro.append = self.records.append
        _coro.clock = self.clock
        _coro.next_id = self.next_seq
        _coro.blocked_threshold = self.blocked_threshold
        _coro.record_awaits = self.record_awaits
        _coro.run_sid = self.run_sid
        _coro.track_root = self.roots.add
        _coro.note_thread = self.note_thread
        _coro.active = True
        _coro.sync_speedups()

    def note_thread(self, root: _coro.TaskRoot) -> None:
        """A task started off the main thread: the name of its thread (its loop's), kept for
        its span (``thread.name``) and its row's name, for the last MAX_TASK_THREADS such
        tasks (an older one's row then shows no thread)."""
        threads = self.task_threads
        if len(threads) >= MAX_TASK_THREADS:
            del threads[next(iter(threads))]
        threads[root._sid] = threading.current_thread().name

    def is_empty(self) -> bool:
        """Nothing recorded yet: no record, no task being traced."""
        return not self.records and not self.roots

    def use_clock(self, clock: Callable[[], float], name: str) -> None:
        """Switch to another clock (the virtual loop's), which MUST continue from ``self.clock()``.

        Called on the loop thread when a virtual-time loop starts.  When nothing was recorded
        yet, the trace starts here, so that virtual times read from 0.0.
        """
        if self.is_empty():
            self.origin = clock()
        self.clock = clock
        self.clock_name = name
        _coro.clock = clock
        _coro.sync_speedups()

    def deactivate(self) -> None:
        """Stop recording: the hot path writes nowhere until another recorder is activated."""
        if self.end is None:
            self.end = self.clock()
        _coro.append = _coro._unbound_append
        _coro.active = False
        _coro.sync_speedups()

    def run_record(self) -> Rec:
        """The record of the run span, from activation to now (or to deactivation)."""
        end = self.end if self.end is not None else self.clock()
        return (
            K_RUN,
            self.run_sid,
            None,
            self.run_sid,
            self.origin,
            end,
            self.next_seq(),
            self.name,
            None,
            0,
            None,
            None,
        )
