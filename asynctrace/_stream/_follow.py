"""Following a JSON timeline while the run writes it: the new events, whatever the file does.

Problem: ``asynctrace view --follow`` reads a stream that grows every second, and the file
does what files do: it is cut (a new run truncates it), replaced (a finished run renames its
whole timeline over the stream), deleted, ends in the middle of a line (a flush being written,
or a kill), stops growing (the program died), or holds lines that are not events at all.
None of those may end in a traceback, a hang, or a view that shows spans of two runs at once.

Solution: a :class:`Follower` remembers the file's identity (device and inode), its first
bytes and how far it read.  Each :meth:`Follower.poll` reads only what was appended (at most
:data:`CHUNK` bytes, so that a huge file is caught up over several polls), splits it into whole
lines (the stream is one event a line; an unended line waits for the next poll) and decodes
them, all at once when they all are JSON, else one at a time.  A file that shrank, is another
file, or starts with other bytes (cut, then written past where the last poll stopped) is read
again from its start, and the poll says so (``reset``).  A file in the object form (a run's
timeline written whole) is read whole, through the safe reader.  A line that is not an event
is counted in :attr:`Follower.bad_lines`.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from .._export._chrome_load import MAX_DEPTH, load_events, nesting_deeper_than

_loads: Callable[[bytes], Any]
try:  # the fast decoder when installed (asynctrace[fast]); json gives the same events
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - depends on the environment
    _loads = json.loads

CHUNK = 16 * 2**20
"""Bytes read at most by one poll."""
MAX_LINE = 16 * 2**20
"""A longer line is not an event of ours: it is dropped, not held in memory."""
HEAD = 512
"""The first bytes, compared at each poll: another run's stream differs in them (its epoch)."""
MAX_WHOLE = 128 * 2**20
"""A timeline in the object form is read whole only up to this size."""


class Poll(NamedTuple):
    """What one :meth:`Follower.poll` found."""

    events: list[dict[str, Any]]
    """Events appended since the last poll (after a reset: from the file's start)."""
    reset: bool
    """The file was cut, replaced, or gone and back: forget what earlier polls gave."""


class Follower:
    """Reads a JSON timeline's new events at each :meth:`poll`; any thread, one at a time.

    Attributes:
        problem: why the file cannot be read right now (missing, not a regular file), or None.
        bad_lines: lines skipped since the last reset because they were not events.
        grew_at: ``time.monotonic()`` when the file last grew or was replaced (None: never).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problem: str | None = None
        self.bad_lines = 0
        self.grew_at: float | None = None
        self._identity: tuple[int, int] | None = None
        self._offset = 0
        self._partial = b""
        self._whole = False  # the object form: read whole at each change
        self._head = b""  # the file's first bytes (a run's header, with its epoch) when read

    def poll(self) -> Poll:
        """The events appended since the last poll; never raises for what the file holds."""
        try:
            info = self.path.stat()
        except (OSError, ValueError) as exc:
            gone = isinstance(exc, FileNotFoundError)
            self.problem = "does not exist (yet)" if gone else f"cannot be read ({exc})"
            return self._forget()
        if not stat.S_ISREG(info.st_mode):
            self.problem = "is not a regular file"
            return self._forget()
        self.problem = None
        identity = (info.st_dev, info.st_ino)
        # the object form is rewritten, not appended to: any change is a new file
        changed = self._whole and info.st_size != self._offset
        reset = identity != self._identity or info.st_size < self._offset or changed
        if reset:
            self._start_over(identity)
        elif info.st_size == self._offset:
            return Poll([], False)
        self.grew_at = time.monotonic()
        try:
            with open(self.path, "rb") as f:
                head = f.read(HEAD)
                if head[: len(self._head)] != self._head:  # cut, then grown past where we were
                    self._start_over(identity)
                    reset = True
                self._head = head
                if self._offset == 0 and self._starts_whole(head):
                    return self._read_whole(info.st_size)
                f.seek(self._offset)
                data = f.read(min(CHUNK, max(0, info.st_size - self._offset)))
        except OSError as exc:
            self.problem = f"cannot be read ({exc.strerror or exc})"
            return Poll([], reset)
        self._offset += len(data)
        return Poll(self._lines(data), reset)

    def _forget(self) -> Poll:
        """The file is gone: whatever comes back at the path is read from its start."""
        was = self._identity is not None
        self._start_over(None)
        return Poll([], was)

    def _start_over(self, identity: tuple[int, int] | None) -> None:
        self._identity = identity
        self._offset = 0
        self._partial = b""
        self._whole = False
        self._head = b""
        self.bad_lines = 0

    def _starts_whole(self, head: bytes) -> bool:
        self._whole = head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")
        return self._whole

    def _read_whole(self, size: int) -> Poll:
        self._offset = size
        try:
            events, _other, _array, _cut = load_events(self.path, MAX_WHOLE)
        except ValueError as exc:
            self.problem = str(exc)
            return Poll([], True)
        return Poll([ev for ev in events if isinstance(ev, dict)], True)

    def _lines(self, data: bytes) -> list[dict[str, Any]]:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > MAX_LINE:
            self._partial = b""
            self.bad_lines += 1
        texts = [t for line in lines if (t := _text(line)) not in _NOT_EVENTS]
        if not texts:
            return []
        whole = b"[" + b",".join(texts) + b"]"
        if not nesting_deeper_than(whole, MAX_DEPTH + 1):
            try:
                found = _loads(whole)  # all at once, in C: the common case
            except (ValueError, RecursionError):
                pass  # one of them is not JSON: find which, one at a time
            else:
                events = [event for event in found if isinstance(event, dict)]
                self.bad_lines += len(found) - len(events)
                return events
        events = []
        for text in texts:
            event = _decode(text)
            if event is None:
                self.bad_lines += 1
            else:
                events.append(event)
        return events


_NOT_EVENTS = (b"", b"]", b"{}]", b"{}")


def _text(line: bytes) -> bytes:
    """A line of the stream without its white space, the array's ``[`` and the ``,``."""
    return line.strip(b" \t\r\x00").removeprefix(b"[").rstrip(b",")


def _decode(line: bytes) -> dict[str, Any] | None:
    """The event on one line, or None when it is not a JSON object (or is nested too deep)."""
    if nesting_deeper_than(line, MAX_DEPTH):
        return None
    try:
        event = json.loads(line)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, an integer too long
        return None
    return event if isinstance(event, dict) else None


def is_followable(path: Path) -> str | None:
    """Why ``path`` can never be followed (a directory, a FIFO, a device), or None."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None  # not there yet: it may appear
    if stat.S_ISDIR(info.st_mode):
        return "is a directory, not a file"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file (a FIFO, a device or a socket)"
    return None
