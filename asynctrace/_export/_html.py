"""The self-contained HTML timeline.

Problem: many users run no trace viewer; they want to open one file and *see* which tasks ran at
the same time and what each await waited on.  The page must work offline, stay responsive with
tens of thousands of spans, and span names come from user code, so they are hostile input.

Solution: :func:`render_html` writes one HTML page with the CSS and JavaScript of
``_html_assets/`` inlined and the trace embedded as JSON in a ``<script type="application/json">``
block.  Everything that is cheap to do once is done here, in Python, at export time: the lanes
(one per task, thread job or run, in creation order), each span's sub-row inside its lane, the
"tasks in flight" series and the summary.  The page script only lays out what is on screen.

Security: the JSON is made HTML-inert (``<``, ``>``, ``&`` and every non-ASCII character,
U+2028/2029 included, are ``\\uXXXX`` escapes), the page reads it with ``JSON.parse`` and puts it
into the DOM only through ``textContent`` and ``setAttribute``.  A Content-Security-Policy allows
exactly the inlined script and style (by hash) and no network request at all.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import os
from collections import defaultdict
from functools import cache
from importlib import resources

from .._model._spans import KINDS, STATUSES, Span, Trace
from .._model._timeline import idle_waits
from .._model._waits import WaitGroup, wait_profile
from ._sanitize import cap, no_bidi, visible

__all__ = ["render_html", "write_html"]

DEFAULT_MAX_LANES = 200
"""Lanes drawn one by one; the tracks after them are summed into one row."""

_OWNER_KINDS = ("task", "thread")
"""Kinds counted as "in flight" in the concurrency row and the summary."""

_DATA_ID = "asynctrace-data"


def render_html(trace: Trace, *, title: str, max_lanes: int = DEFAULT_MAX_LANES) -> str:
    """Render ``trace`` as one self-contained HTML page.

    Args:
        trace: the spans to draw; not modified.
        title: the page title (the script's name, say); plain text, escaped here.
        max_lanes: how many lanes (tasks, thread jobs, the run) are drawn one by one, in
            creation order; the tracks after them are summed into a single row that shows how
            many of them were in flight, and the page says so.

    Returns:
        The HTML text; it loads nothing from the network.

    Raises:
        ValueError: ``max_lanes`` is smaller than 1.
    """
    if max_lanes < 1:
        msg = f"max_lanes={max_lanes!r} must be at least 1; pass the number of lanes to draw"
        raise ValueError(msg)
    css, js = _assets()
    title = visible(cap(title or "asynctrace"))  # a tab title: no control character at all
    data = _json_for_html(_payload(trace, title=title, max_lanes=max_lanes))
    csp = (
        "default-src 'none'; "
        f"script-src '{_sha256(js)}'; style-src '{_sha256(css)}'; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    return _PAGE.format(
        csp=csp,  # hashes and keywords only: nothing to escape inside content="..."
        title=html.escape(title, quote=False),
        css=css,
        data_id=_DATA_ID,
        data=data,
        js=js,
    )


def write_html(
    trace: Trace,
    path: str | os.PathLike[str],
    *,
    title: str,
    max_lanes: int = DEFAULT_MAX_LANES,
) -> None:
    """Write :func:`render_html` of ``trace`` to ``path`` (UTF-8), replacing the file.

    Raises:
        OSError: the file cannot be written; the message names the path.
        ValueError: as :func:`render_html`.
    """
    text = render_html(trace, title=title, max_lanes=max_lanes)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="asynctrace">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<noscript>This timeline is drawn by JavaScript; enable it to see the trace.</noscript>
<script type="application/json" id="{data_id}">{data}</script>
<script>{js}</script>
</body>
</html>
"""


@cache
def _assets() -> tuple[str, str]:
    root = resources.files("asynctrace._export") / "_html_assets"
    css = (root / "timeline.css").read_text(encoding="utf-8")
    js = (root / "timeline.js").read_text(encoding="utf-8")
    # MUST NOT appear inside the inlined text: it would end the <style>/<script> element early.
    for name, text in (("timeline.css", css), ("timeline.js", js)):
        if "</" in text:
            msg = f"_html_assets/{name} contains '</'; write '<\\/' so the page can inline it"
            raise RuntimeError(msg)
    return css, js


def _sha256(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


def _json_for_html(obj: object) -> str:
    """JSON that is inert inside an HTML ``<script>`` element.

    ``ensure_ascii`` turns every non-ASCII character (U+2028/2029 and lone surrogates too) into
    a ``\\uXXXX`` escape; ``<``, ``>`` and ``&`` are escaped so no ``</script>`` or ``<!--`` can
    form.  ``JSON.parse`` reads the escapes back as the same characters.
    """
    text = json.dumps(obj, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _num(x: float) -> float:
    """A finite float, rounded to the nanosecond to keep the page small."""
    return round(x, 9) if math.isfinite(x) else 0.0


def _text(text: str) -> str:
    """Text from the traced program as the page shows it: at most ``MAX_CHARS`` characters,
    bidi overrides as visible escapes (``\\u202e``).  Other control characters and lone
    surrogates are kept: ``_json_for_html`` escapes them and ``textContent`` shows them inert."""
    return no_bidi(cap(text))


def _clean(value: object) -> object:
    """An attribute value as JSON: scalars kept, sequences of scalars kept, the rest as text."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return [_clean(v) if not isinstance(v, (list, tuple, dict)) else _str(v) for v in value]
    return _str(value)


def _str(value: object) -> str:
    """``str(value)`` made safe; a value too deeply nested to print is named by its type."""
    try:
        return _text(str(value))
    except RecursionError:
        return f"<{type(value).__name__} nested too deeply to show>"


def _label(owner: Span | None, track: int) -> str:
    """The lane label: ``Task-2 task1()``, ``worker-0 fetch()``, or the run's name."""
    if owner is None:
        return f"track {track}"
    name = _text(owner.name)
    if owner.kind == "run":
        return name
    call = name if name.endswith(")") else name + "()"
    key = "asynctrace.task.name" if owner.kind == "task" else "asynctrace.thread.name"
    prefix = owner.attributes.get(key)
    return f"{_text(str(prefix))} {call}" if prefix else call


def _lanes(trace: Trace) -> list[tuple[int, Span | None]]:
    """Every track, in creation order; tracks whose owner span is missing come last."""
    owned = [(s.span_id, s) for s in trace.tracks]
    seen = {t for t, _ in owned}
    orphans = sorted({s.track for s in trace.spans} - seen)
    return [*owned, *((t, None) for t in orphans)]


def _pack(spans: list[Span]) -> tuple[dict[int, int], int]:
    """Sub-row (depth) of each span of one lane, and the number of rows.

    A span goes below its parent when the parent is in the same lane, on the first row from
    there that is free at its start.  Well-formed traces nest strictly, so this is the nesting
    depth; malformed ones (overlapping siblings) still never draw two bars on top of each other.
    """
    depth: dict[int, int] = {}
    row_end: list[float] = []
    for s in spans:  # in (start, start_seq) order, parents before children
        parent = s.parent_id
        d = depth[parent] + 1 if parent is not None and parent in depth else 0
        while d < len(row_end) and row_end[d] > s.start:
            d += 1
        if d == len(row_end):
            row_end.append(s.end)
        else:
            row_end[d] = s.end
        depth[s.span_id] = d
    return depth, max(len(row_end), 1)


def _first(event: tuple[float, int, int]) -> float:
    return event[0]


def _merge(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _in_flight(
    owners: list[Span], waits: dict[int, list[tuple[float, float]]]
) -> dict[str, object]:
    """The step series of how many ``owners`` were in flight and how many of those waited.

    A task is in flight from its start to its end, and waits while it awaits another task or
    a lock, semaphore, queue, event, condition or future (``waits`` by track: the terminal's
    :func:`~_timeline.idle_waits`); it runs otherwise, a sleep or a socket included.  The
    overlap is the time with two or more running: a ``main`` that gathers two tasks that never
    overlap does not make them concurrent, nor do twenty tasks queued on ``Semaphore(1)``.
    """
    events: list[tuple[float, int, int]] = []
    for s in owners:
        events.append((s.start, 1, 0))
        events.append((s.end, -1, 0))
        for start, end in _merge(waits.get(s.span_id, [])):
            events.append((max(start, s.start), 0, 1))
            events.append((min(end, s.end), 0, -1))
    events.sort(key=_first)
    times: list[float] = []
    flying: list[int] = []
    waiting: list[int] = []
    n = w = top = 0
    overlap = 0.0
    running = 0  # in flight and not waiting, after the last step
    for t, dn, dw in events:
        if times and t != times[-1]:
            if running >= 2:
                overlap += t - times[-1]
            times.append(t)
            flying.append(n)
            waiting.append(w)
        elif not times:
            times.append(t)
            flying.append(n)
            waiting.append(w)
        n += dn
        w += dw
        flying[-1] = n  # every change at the same time is one step
        waiting[-1] = w
        running = n - w
        top = max(top, n)
    waiting = [min(max(x, 0), y) for x, y in zip(waiting, flying, strict=True)]
    return {
        "t": [_num(t) for t in times],
        "n": flying,
        "w": waiting,
        "overlap": _num(overlap),
        "max": top,
    }


def _payload(trace: Trace, *, title: str, max_lanes: int) -> dict[str, object]:
    """Everything the page script reads, in compact column form."""
    lanes = _lanes(trace)
    shown, hidden = lanes[:max_lanes], lanes[max_lanes:]
    lane_index = {track: i for i, (track, _) in enumerate(shown)}
    by_lane: dict[int, list[Span]] = defaultdict(list)
    for s in trace.spans:
        if s.track in lane_index:
            by_lane[s.track].append(s)

    rows: list[list[object]] = []
    lane_rows = []
    for track, owner in shown:
        depth, n_rows = _pack(by_lane[track])
        lane_rows.append({"track": track, "label": _label(owner, track), "rows": n_rows})
        for s in by_lane[track]:
            rows.append(
                [
                    s.span_id,
                    s.parent_id,
                    KINDS.index(s.kind) if s.kind in KINDS else KINDS.index("coroutine"),
                    _text(s.name),
                    _num(s.start),
                    _num(max(s.end, s.start)),
                    lane_index[track],
                    depth[s.span_id],
                    STATUSES.index(s.status) if s.status in STATUSES else 0,
                    None if s.error is None else _text(s.error),
                    {_text(str(k)): _clean(v) for k, v in s.attributes.items()} or None,
                ]
            )

    waits: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for s in idle_waits(trace):
        waits[s.track].append((s.start, s.end))
    owners = [s for s in trace.spans if s.kind in _OWNER_KINDS]
    hidden_owners = [o for _, o in hidden if o is not None]
    start = min((s.start for s in trace.spans), default=0.0)
    # where the page opens: the program's first span (the run's start before it is its
    # imports), as the terminal's axis does
    program = min((s.start for s in trace.spans if s.kind != "run"), default=start)
    return {
        "title": title,
        "clock": trace.clock,
        "kinds": list(KINDS),
        "statuses": list(STATUSES),
        "start": _num(start),
        "end": _num(max(trace.end, start)),
        "program": _num(program),
        "lanes": lane_rows,
        "spans": rows,
        "concurrency": _in_flight(owners, waits),
        "hidden": {
            "lanes": len(hidden),
            "spans": sum(1 for s in trace.spans if s.track not in lane_index),
            "series": _in_flight(hidden_owners, waits) if hidden_owners else None,
        },
        "waits": _waits_payload(trace),
        "summary": {
            "spans": len(trace.spans),
            "tasks": sum(1 for s in trace.spans if s.kind == "task"),
            "threads": sum(1 for s in trace.spans if s.kind == "thread"),
            "lanes": len(lanes),
            "dropped": trace.dropped,
        },
    }


_WAIT_ROWS = 10  # wait profile rows on the page


def _waits_payload(trace: Trace) -> dict[str, object]:
    """Where the waiting went (see _waits.py): the costliest places, and the loop's times."""
    profile = wait_profile(trace)
    return {
        "groups": [_wait_row(g) for g in profile.groups[:_WAIT_ROWS]],
        "places": len(profile.groups),
        "blocked": _num(profile.blocked),
        "idle": _num(profile.idle),
    }


def _wait_row(group: WaitGroup) -> list[object]:
    """One row of the page's wait table: what, where, count, total, mean, p50, p99, max."""
    times = [_num(t) for t in (group.total, group.mean, group.p50, group.p99, group.max)]
    return [_text(group.what), _text(group.where), group.count, *times]
