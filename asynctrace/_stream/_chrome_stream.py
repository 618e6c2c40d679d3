"""The JSON timeline written while the program runs: Chrome JSON Array Format, an event a line.

Problem: a program that runs for hours, or dies of SIGKILL, must leave a timeline on disk that
Perfetto and ``asynctrace view`` open, without asynctrace keeping the whole run in memory.

Solution: the Chrome Trace Event Format's *array* form, whose closing ``]`` is optional so that
a trace cut short still loads.  The file starts with ``[`` and a ``process_name`` event whose
args carry what the object form keeps in ``otherData`` (clock, epoch, origin); then every batch
of spans is appended as one ``os.write`` of whole lines, one event per line, each ending in
``,``.  A kill can cut only the last line, which the reader drops.  A row (``tid``) is the
track's span id; it is named (``thread_name``) when its first span is written, from its task if
that task is in the same batch, else from the task still running.  Slices carry the full args
(:func:`~asynctrace._export._chrome._args` with ``full=True``), so the file reads back into the same
spans without the rest of the run.  :meth:`ChromeStream.finish` writes the last spans and the
run span without a comma, then ``]``: a finished stream is plain JSON.  Arrows between tasks and
the ``tasks`` counter need the whole run and are not streamed.

What is in flight (the tasks still running and the await each is in) is not a slice yet: each
flush appends it as one ``asynctrace_open`` metadata event (see
:meth:`ChromeStream.write_open`), which ``asynctrace view --follow`` draws and every other
reader (Perfetto, ``asynctrace view``) skips as a metadata event of a name it does not know.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

from .. import __version__
from .._export._chrome import ORIGIN_NS, PID, _Item, _Placed, _slice, encode_events
from .._export._json import dumps
from .._model._spans import Span
from .._model._timeline import row_label

TRACK_KINDS = ("run", "task", "thread")
OPEN_EVENT = "asynctrace_open"


class ChromeStream:
    """Appends spans to a Chrome JSON array file; the first failure stops it and is kept.

    Args:
        path: the file; created or truncated by :meth:`open`.
        process: the process row's name (``asynctrace: gather.py``).
        clock: the clock's name (``monotonic``, ``virtual``) written in the header.
        epoch_ns: wall-clock time of the trace's time 0, written in the header.
        run_track: the run span's id: its row is named in the header, so that a file cut
            before the run span still says which program it traced.
    """

    def __init__(
        self, path: str, *, process: str, clock: str, epoch_ns: int, run_track: int
    ) -> None:
        self.path = path
        self.error: OSError | None = None
        self._header = {
            "ph": "M",
            "pid": PID,
            "tid": 0,
            "name": "process_name",
            "args": {
                "name": process,
                "asynctrace": __version__,
                "clock": clock,
                "epoch_ns": epoch_ns,
                "origin_us": ORIGIN_NS // 1000,
            },
        }
        self._run_row = _row(run_track, f"run {process.removeprefix('asynctrace: ')}")
        self._fd: int | None = None
        self._named: set[int] = {run_track}  # tracks named and not yet ended

    def open(self) -> bool:
        """Create the file with its header; False (and :attr:`error` set) if it cannot be."""
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        except OSError as exc:
            self.error = exc
            return False
        return self._write(b"[\n" + _lines([self._header, *self._run_row]) + b",\n")

    def write(self, spans: Iterable[Span], labels: Mapping[int, str]) -> bool:
        """Append ``spans``; ``labels`` names the rows of tasks still running.  False on failure."""
        events = self._events(list(spans), labels)
        return self._write(_lines(events) + b",\n") if events else True

    def write_open(self, now: float, spans: Iterable[Span] | None, tasks: int) -> bool:
        """Append what is in flight at trace time ``now``: ``tasks`` tasks still running, and
        ``spans``, the open spans of some of them (``unfinished``, ending at ``now``), or None
        when they are those of the last call (still in flight at ``now``).

        One ``asynctrace_open`` metadata event: ``args`` holds ``ts`` (``now`` in the slices'
        microseconds), ``wall_ns`` (the wall clock at ``now``), ``tasks`` and, unless None,
        ``spans``: the open spans as slices with full args.  False on failure.
        """
        args: dict[str, Any] = {"ts": _ns(now) / 1000, "wall_ns": time.time_ns(), "tasks": tasks}
        if spans is not None:
            args["spans"] = [_slice(_item(span), True) for span in spans]
        event = {"ph": "M", "pid": PID, "tid": 0, "name": OPEN_EVENT, "args": args}
        return self._write(dumps(event) + b",\n")

    def finish(self, spans: Iterable[Span], run: Span) -> bool:
        """Append the last ``spans`` and then the ``run`` span, close the array and the file."""
        events = self._events([*spans, run], {})
        ok = self._write(_lines(events) + b"\n]\n")
        self.close()
        return ok

    def close(self) -> None:
        """Close the file (an unfinished stream stays readable: the ``]`` is optional)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _events(self, spans: list[Span], labels: Mapping[int, str]) -> list[_Placed]:
        """Row names as they are first needed, and each span's slice (an item, written with
        full args by :func:`~asynctrace._export._chrome.encode_events`; ``tid`` is the track)."""
        owners = {s.span_id: s for s in spans if s.kind in TRACK_KINDS}
        events: list[_Placed] = []
        for span in spans:
            track = span.track
            if track not in self._named:
                owner = owners.get(track)
                label = row_label(owner) if owner is not None else labels.get(track)
                events.extend(_row(track, label or f"track {track}"))
                self._named.add(track)
            events.append(_item(span))
        self._named.difference_update(owners)  # a row's owner is its last span
        return events

    def _write(self, data: bytes) -> bool:
        if self._fd is None or self.error is not None:
            return False
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            self.error = exc
            self.close()
            return False
        return True


def _ns(seconds: float) -> int:
    return round(seconds * 1e9) + ORIGIN_NS


def _item(span: Span) -> _Item:
    """A span's slice on its track's row."""
    return _Item(_ns(span.start), _ns(span.end), (span.start_seq, 0), None, span, span.track)


def _lines(events: list[_Placed]) -> bytes:
    """One event a line, the last without its comma; slices with full args."""
    return encode_events(events, True, b",\n")


def _row(track: int, label: str) -> list[dict[str, Any]]:
    meta = {"name": label, "track": track}
    sort = {"sort_index": track}
    return [
        {"ph": "M", "pid": PID, "tid": track, "name": "thread_name", "args": meta},
        {"ph": "M", "pid": PID, "tid": track, "name": "thread_sort_index", "args": sort},
    ]
