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
import re
import threading
from typing import BinaryIO


def write_whole(path: str | os.PathLike[str], *chunks: bytes) -> None:
    """Write ``chunks`` to ``path``, one after the other, whole; raises OSError as
    ``open``/``write`` do.  (Chunks, not their join: a large timeline is not copied again.)

    os.path, not pathlib: every run writes its file, and pathlib's import is 3 ms of it.
    """
    file, aside = _open_whole(path)
    _write_rest(file, aside, path, chunks)


class BackgroundWrite:
    """:func:`write_whole`, opened now (so that a file that cannot be made says so now), its
    bytes written in a thread: they go to the kernel (which releases the GIL) while the caller
    goes on; :meth:`join` waits and returns the write's error.

    ``asynctrace run`` draws the terminal timeline meanwhile: a 5 MB file's write is no longer
    added to it.  The thread is not a daemon, so an interpreter that exits first still
    completes the file.
    """

    def __init__(self, path: str | os.PathLike[str], chunks: tuple[bytes, ...]) -> None:
        file, aside = _open_whole(path)
        self.error: Exception | None = None
        self._thread = threading.Thread(
            target=self._write, args=(file, aside, path, chunks), name="asynctrace-write"
        )
        self._thread.start()

    def _write(
        self,
        file: BinaryIO,
        aside: str | None,
        path: str | os.PathLike[str],
        chunks: tuple[bytes, ...],
    ) -> None:
        try:
            _write_rest(file, aside, path, chunks)
        except Exception as exc:  # said by whoever joins, in the order of their messages
            self.error = exc

    def join(self) -> Exception | None:
        """Wait for the write; its error, or None when the file is written."""
        self._thread.join()
        return self.error


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
    file: BinaryIO, aside: str | None, path: str | os.PathLike[str], chunks: tuple[bytes, ...]
) -> None:
    """Write the chunks, close, and rename the file aside (if any) over ``path``."""
    try:
        with file:
            for chunk in chunks:
                file.write(chunk)
        if aside is not None:
            os.replace(aside, path)
    except BaseException:
        if aside is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(aside)
        raise


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
