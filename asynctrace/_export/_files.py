"""Writing an output file whole: a reader, or a kill, never leaves half of it.

A regular file (or a new one) is written aside in its directory and renamed over the target,
so the previous file (such as the stream of the run) stays intact until the new one is
complete, and a failed write leaves nothing behind.  Anything else (``/dev/stdout``, a FIFO,
``/dev/full``) is written in place: renaming over it would replace the device.

:func:`written_by_us` tells our own outputs from other files, so that an output path given by
mistake (``--html scraper.py urls.txt``) never replaces a file asynctrace did not write.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import threading
from collections.abc import Iterable, Iterator
from typing import BinaryIO, Protocol


def write_whole(path: str | os.PathLike[str], *chunks: bytes) -> None:
    """Write ``chunks`` to ``path``, one after the other, whole; raises OSError as
    ``open``/``write`` do.  (Chunks, not their join: a large timeline is not copied again.)

    os.path, not pathlib: every run writes its file, and pathlib's import is 3 ms of it.
    """
    file, aside = _open_whole(path)
    _write_rest(file, aside, path, [list(chunks)])


class ChunkWriter(Protocol):
    """Where an encoder gives its output a chunk at a time (:class:`BackgroundWrite`, or
    :class:`Chunks` in memory), and takes it all back to start again another way."""

    def write(self, chunk: bytes, /) -> None: ...

    def rewind(self) -> None: ...


class Chunks(list[bytes]):
    """A :class:`ChunkWriter` that keeps the chunks, in order."""

    def write(self, chunk: bytes, /) -> None:
        self.append(chunk)

    def rewind(self) -> None:
        self.clear()


class BackgroundWrite:
    """:func:`write_whole` as the chunks come: opened now (so that a file that cannot be made
    says so now), each chunk given to :meth:`write` written by a thread while the caller makes
    the next (the kernel's copy releases the GIL), the file completed once :meth:`close` is
    called; :meth:`join` waits and returns the write's error.

    An encoder writes a 280 MB timeline through it without holding it in memory, and the
    time the kernel takes to copy it overlaps the encoding.  What was written can be taken
    back with :meth:`rewind` (an encoder that gives up half way starts again another way): the
    file aside is emptied; a device or a FIFO, written in place, is given nothing before
    :meth:`close`, since nothing given to it can be taken back.  ``asynctrace run`` draws the
    terminal timeline while the last chunks go out.  The thread is not a daemon, so an
    interpreter that exits first still completes the file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        file, aside = _open_whole(path)
        self.error: Exception | None = None
        self._chunks: queue.SimpleQueue[bytes | _Control] = queue.SimpleQueue()
        self._held: list[bytes] | None = [] if aside is None else None  # in place: at close
        self._ended = False  # close or abort was read by the thread
        self._thread = threading.Thread(
            target=self._write, args=(file, aside, path), name="asynctrace-write"
        )
        self._thread.start()

    def write(self, chunk: bytes) -> None:
        """Write ``chunk`` after the ones before it (in the thread)."""
        if self._held is not None:
            self._held.append(chunk)
        else:
            self._chunks.put(chunk)

    def rewind(self) -> None:
        """Take back every chunk written so far: the file starts again empty."""
        if self._held is not None:
            self._held.clear()
        else:
            self._chunks.put(_REWIND)

    def close(self) -> None:
        """No more chunks: the thread completes the file (see :meth:`join`)."""
        for chunk in self._held or ():
            self._chunks.put(chunk)
        self._chunks.put(_CLOSE)

    def abort(self) -> None:
        """No more chunks, and no file: the caller failed half way (the target is left as it
        was; :meth:`join` returns None)."""
        if self._held is not None:
            self._held.clear()
        self._chunks.put(_ABORT)

    def _write(self, file: BinaryIO, aside: str | None, path: str | os.PathLike[str]) -> None:
        try:
            _write_rest(file, aside, path, self._batches(file))
        except _Aborted:
            pass
        except Exception as exc:  # said by whoever joins, in the order of their messages
            self.error = exc
            while not self._ended:  # the chunks still to come are dropped, not kept
                self._ended = self._chunks.get() in (_CLOSE, _ABORT)

    def _batches(self, file: BinaryIO) -> Iterator[list[bytes]]:
        """The chunks as they come, every one waiting at a time in one batch (written with
        one call: the thread needs the GIL, which an encoder in C gives up only every few
        milliseconds, once per batch instead of once per chunk), until close; a rewind
        empties the file."""
        batch: list[bytes] = []
        while True:
            chunk = self._chunks.get() if not batch else self._waiting()
            if isinstance(chunk, bytes):
                batch.append(chunk)
                continue
            if chunk is _REWIND:
                batch.clear()
                file.seek(0)
                file.truncate()
                continue
            if chunk is _ABORT:
                self._ended = True
                raise _Aborted
            self._ended = chunk is _CLOSE  # read now: a failed write does not wait for it
            if batch:
                yield batch
                batch = []
            if self._ended:
                return

    def _waiting(self) -> bytes | _Control:
        """The next chunk if one is waiting, else _NONE_WAITING."""
        try:
            return self._chunks.get_nowait()
        except queue.Empty:
            return _NONE_WAITING

    def join(self) -> Exception | None:
        """Wait for the write; its error, or None when the file is written."""
        self._thread.join()
        return self.error


class _Control:
    """What :class:`BackgroundWrite`'s methods other than ``write`` put among the chunks."""


_REWIND, _CLOSE, _ABORT, _NONE_WAITING = _Control(), _Control(), _Control(), _Control()


class _Aborted(Exception):
    """The write was aborted: the file aside is removed, the target left as it was."""


def _open_whole(path: str | os.PathLike[str]) -> tuple[BinaryIO, str | None]:
    """The file to write ``path`` through: ``path`` itself when it exists and is not a regular
    file (a device, a FIFO), else a new file aside it, whose name comes second."""
    target = os.fspath(path)
    if os.path.exists(target) and not os.path.isfile(target):
        return open(target, "wb"), None
    directory, name = os.path.split(target.rstrip(os.sep) or target)  # "out/" names "out"
    aside = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    return open(aside, "wb"), aside


def _write_rest(
    file: BinaryIO,
    aside: str | None,
    path: str | os.PathLike[str],
    batches: Iterable[list[bytes]],
) -> None:
    """Write the batches of chunks, close, and rename the file aside (if any) over ``path``."""
    try:
        with file:
            file.flush()  # nothing is buffered: the batches go straight to the file
            for batch in batches:
                _write_all(file.fileno(), batch)
        if aside is not None:
            os.replace(aside, path)
    except BaseException:
        if aside is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(aside)
        raise


_IOV_MAX = 512  # chunks per os.writev call: POSIX guarantees at least 16, Linux takes 1024


def _write_all(fd: int, chunks: list[bytes]) -> None:
    """Every byte of ``chunks`` to ``fd``, in order: os.writev (the GIL released) until the
    kernel has taken them all (it may take fewer bytes than asked)."""
    views = [memoryview(chunk) for chunk in chunks if chunk]
    while views:
        written = os.writev(fd, views[:_IOV_MAX])
        taken = 0
        while taken < len(views) and written >= len(views[taken]):
            written -= len(views[taken])
            taken += 1
        del views[:taken]
        if written:
            views[0] = views[0][written:]


# What every output of ours starts with (read from a small prefix, never the whole file):
# the JSON timeline, whole (``{"traceEvents":[``) or streamed (``[``, possibly cut), opens with
# its process_name event naming the run "asynctrace: ..." (_chrome.py, _chrome_stream.py);
# the OTLP/JSON file's spans are under the "asynctrace" scope, after the resource's attributes
# (_otlp.py); the HTML page carries a generator meta tag in its head (_html.py).
_PREFIX_BYTES = 64 * 1024
_CHROME_HEAD = re.compile(
    rb'\A\s*(?:\{"traceEvents":\[|\[)\s*\{"ph":"M","pid":\d+,"tid":0,'
    rb'"name":"process_name","args":\{"name":"asynctrace'
)
_OTLP_HEAD = b'{"resourceSpans":[{"resource":'
_OTLP_SCOPE = b'"scopeSpans":[{"scope":{"name":"asynctrace"'
_HTML_HEAD = b"<!DOCTYPE html>\n"
_HTML_MARK = b'<meta name="generator" content="asynctrace">'


def written_by_us(path: str | os.PathLike[str]) -> bool:
    """True when the file at ``path`` is empty or one of our outputs (a JSON timeline, whole,
    streamed or cut short; an OTLP/JSON file; an HTML page), judged by its first 64 KiB.

    Raises OSError when it cannot be read.
    """
    with open(path, "rb") as file:
        head = file.read(_PREFIX_BYTES)
    if not head:
        return True
    if _CHROME_HEAD.match(head):
        return True
    if head.startswith(_OTLP_HEAD):
        return _OTLP_SCOPE in head
    return head.startswith(_HTML_HEAD) and _HTML_MARK in head
