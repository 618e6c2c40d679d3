"""Load a saved trace, and write a trace as a JSON timeline, an HTML page or terminal text.

Problem: a trace outlives its run (a test's timeline, a server's stream, a file from a
colleague), and code that wants to look at it again, or draw it its own way, had only
private modules to call, which may change in any release.

Solution: four functions over the exporters that ``asynctrace run`` and ``asynctrace view``
use, one way to do each thing: :func:`load` (through the safe reader, with a size limit),
:func:`write_json`, :func:`write_html` and :func:`format_timeline`.  They run on the caller's
thread, never on an event loop of the traced program, and import their exporter when called.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._model._spans import Trace
    from .testing import TraceSource

__all__ = ["DEFAULT_MAX_BYTES", "format_timeline", "load", "write_html", "write_json"]

DEFAULT_MAX_BYTES = 128 * 2**20
"""What :func:`load` reads at most by default (as ``asynctrace view``); reading a JSON
timeline takes about seven times its size in memory."""


def load(path: str | os.PathLike[str], *, max_bytes: int | None = DEFAULT_MAX_BYTES) -> Trace:
    """Read a JSON timeline written by asynctrace back into a :class:`~asynctrace.Trace`.

    Reads what ``asynctrace run --json``, ``tracing(json=...)``, the pytest plugin and
    :func:`write_json` write, also while it is still being streamed or after a kill cut it
    short: then the spans up to the last complete event are loaded, and the tasks whose own
    span was never written are ``unfinished``.

    Args:
        path: the JSON file.
        max_bytes: refuse a bigger file (default 128 MiB); None reads any size.

    Raises:
        ValueError: the file is missing, a directory or a FIFO, empty, not JSON, nested too
            deeply, not a Chrome trace written by asynctrace, or bigger than ``max_bytes``;
            the message names the file, what is wrong and the fix.
    """
    from ._export._chrome_load import TraceTooLarge
    from ._export._chrome_read import read_chrome_json_repaired

    if max_bytes is not None and (isinstance(max_bytes, bool) or max_bytes < 1):
        msg = f"max_bytes={max_bytes!r} must be a positive number of bytes, or None for no limit"
        raise ValueError(msg)
    try:
        trace, _cut = read_chrome_json_repaired(path, max_bytes=max_bytes)
    except TraceTooLarge as exc:
        msg = (
            f"{os.fspath(path)!r} is {exc.size:,} bytes, more than max_bytes={exc.limit:,}; "
            "pass a bigger max_bytes (or None) to load it, or open it in https://ui.perfetto.dev"
        )
        raise ValueError(msg) from None
    return trace


def write_json(
    trace: TraceSource, path: str | os.PathLike[str], *, full_args: bool = False
) -> None:
    """Write the trace as a JSON timeline (Chrome Trace Event Format) that Perfetto opens.

    The file is replaced whole (written aside, then renamed).  :func:`load` reads it back.

    Args:
        trace: a :class:`~asynctrace.Trace`, or anything whose ``trace`` property gives one
            (the object of ``with asynctrace.tracing() as t:``).
        path: the file to write.
        full_args: repeat every field in every slice's args (about 30% bigger).

    Raises:
        OSError: the file cannot be written.
    """
    from ._export._chrome import write_chrome_json
    from .testing import _as_trace

    write_chrome_json(_as_trace(trace), path, full_args=full_args)


def write_html(
    trace: TraceSource,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    max_lanes: int = 200,
) -> None:
    """Write the trace as one self-contained HTML page, which opens offline in any browser.

    Args:
        trace: a :class:`~asynctrace.Trace`, or anything whose ``trace`` property gives one.
        path: the file to write (UTF-8), replaced if it exists.
        title: the page title; default the run span's name.
        max_lanes: lanes (tasks, thread jobs, the run) drawn one by one; the rest are summed
            in one row, and the page says so.

    Raises:
        ValueError: ``max_lanes`` is smaller than 1.
        OSError: the file cannot be written.
    """
    from ._export._html import write_html as _write_html
    from .testing import _as_trace

    found = _as_trace(trace)
    if title is None:
        run = next((s for s in found.spans if s.kind == "run"), None)
        title = run.name if run is not None else "asynctrace"
    _write_html(found, path, title=title, max_lanes=max_lanes)


def format_timeline(
    trace: TraceSource,
    *,
    width: int = 100,
    color: bool = False,
    max_rows: int = 40,
    filter: str | None = None,
    internals: bool = False,
    window: tuple[float | None, float | None] | None = None,
    depth: int | None = None,
    summary: bool = False,
) -> str:
    """The trace as the text timeline that ``asynctrace run`` prints on stderr.

    Span names come from the traced program, so control characters in them are shown
    escaped; no line is wider than ``width`` columns.

    Args:
        trace: a :class:`~asynctrace.Trace`, or anything whose ``trace`` property gives one.
        width: the most columns a line may take (at least 24).
        color: colour rows by status with ANSI escapes, for a terminal.
        max_rows: rows drawn before the rest are folded into a summary (at least 1).
        filter: draw only the spans whose name matches this glob (``fetch*``; a substring
            when it has no ``*?[``), with their ancestors and descendants (``--filter``).
        internals: also draw asyncio's own tasks and calls (``--internals``).
        window: ``(start, end)`` in seconds of trace time; ``None`` for an open edge
            (``--window START:END``).
        depth: draw calls at most this deep under their task; 0 is one row per task
            (``--depth``).
        summary: add, after the axis, what ``asynctrace run`` prints there: the run's
            critical path (each step that set its end, on its row, with its time and share)
            and where the waiting went (the costliest awaits by what and where).

    The filters change what is drawn, never the trace or the header's counts.

    Returns:
        The lines, each ending in a newline.

    Raises:
        ValueError: ``width`` or ``max_rows`` is too small, ``depth`` is negative or
            ``window`` is empty.
    """
    from ._export._terminal import render_timeline
    from .testing import _as_trace

    return render_timeline(
        _as_trace(trace),
        width=width,
        color=color,
        max_rows=max_rows,
        filter=filter,
        internals=internals,
        window=window,
        depth=depth,
        summary=summary,
    )
