"""A JSON timeline read back into a :class:`~asynctrace._model._spans.Trace`.

Problem: ``asynctrace view``, ``asynctrace.load`` and the live view read what ``_chrome``
wrote (whole, streamed, or cut short by a kill) and what a hand or a hostile tool made.

Solution: ``_chrome_load`` reads the file safely (limits, cut files, repairs) into events; each
slice that carries a ``span_id`` in its args becomes a span again (:func:`event_span`, the
inverse of ``_chrome._args``), its parents' file paths filled in, the owners of rows a cut file
never finished added as ``unfinished``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from .._model._spans import KINDS, STATUSES, Span, Trace
from .._model._timeline import _AWAITED, _FUNCTION
from ._chrome import (
    _DEFAULTS,
    _FILE,
    _RESERVED,
    _RESERVED_PREFIX,
    _UNCLAMPED,
    MARKER_CAT,
    ORIGIN_NS,
)
from ._chrome_load import Cut, TraceTooLarge, bad, load_events, read_metadata, unfinished_owners
from ._sanitize import cap

__all__ = ["Cut", "TraceTooLarge", "event_span", "read_chrome_json", "read_chrome_json_repaired"]


def read_chrome_json(path: str | os.PathLike[str]) -> Trace:
    """Rebuild the :class:`Trace` from a file written by ``_chrome.write_chrome_json``.

    Also reads the streaming writer's array format, closed or not, and a file cut short at any
    byte (see :func:`read_chrome_json_repaired`, which says whether it was).

    Raises:
        ValueError: the file is missing, not JSON, not a Chrome trace, or not written by
            asynctrace; the message names the file and the fix.
    """
    return read_chrome_json_repaired(path)[0]


def read_chrome_json_repaired(
    path: str | os.PathLike[str], *, max_bytes: int | None = None
) -> tuple[Trace, Cut | None]:
    """Like :func:`read_chrome_json`, and say whether the file was cut short, and where.

    A file cut short (a streamed run still going, or killed) loses its incomplete last event;
    the tracks it announced whose owner span was never written (the run, tasks still running)
    get an ``unfinished`` owner span from the first to the last time seen on them.  Parents
    that form a cycle (a hand-made or hostile file) are cut as :class:`Trace` cuts them: the
    span that lost its parent keeps the id in its ``asynctrace.cut_parent_id`` attribute.

    Args:
        path: the JSON timeline.
        max_bytes: refuse a bigger file with :class:`TraceTooLarge` (None: no limit).

    Returns:
        The trace, and None when the file was complete or a :class:`Cut` when it was not.

    Raises:
        TraceTooLarge: the file is bigger than ``max_bytes``.
        ValueError: as :func:`read_chrome_json`.
    """
    p = Path(path)
    events, other, array, dropped = load_events(p, max_bytes)
    other = dict(other)
    no_other = array or dropped is not None
    tracks, labels = read_metadata(events, other, no_other)
    try:
        origin = float(other.get("origin_us", ORIGIN_NS // 1000 if no_other else 0))
        clock = str(other.get("clock", "monotonic"))
        epoch_ns = int(other.get("epoch_ns", 0))
        lost = int(other.get("dropped", 0))
        if not math.isfinite(origin):
            raise ValueError(origin)
    except (TypeError, ValueError, OverflowError) as exc:
        raise bad(p, f"has a malformed otherData ({cap(repr(exc), 200)})") from None
    spans: list[Span] = []
    foreign = 0
    for i, ev in enumerate(events):
        if not isinstance(ev, dict) or ev.get("ph") != "X":
            continue
        args = ev.get("args")
        if not isinstance(args, dict) or "span_id" not in args:
            foreign += ev.get("cat") != MARKER_CAT
            continue
        try:
            spans.append(event_span(ev, args, tracks, origin))
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise bad(p, f"has a malformed span in event {i} ({cap(repr(exc), 200)})") from None
        events[i] = None  # the event's dicts go as its span comes: peak memory is one of them
    by_id = {span.span_id: span for span in spans}
    for span in sorted(spans, key=lambda s: (s.start, s.start_seq)):  # parents first
        if _FILE in span.attributes:
            if span.attributes[_FILE] is None:
                del span.attributes[_FILE]
            continue
        parent = by_id.get(span.parent_id) if span.parent_id is not None else None
        if parent is not None and _FILE in parent.attributes:
            span.attributes[_FILE] = parent.attributes[_FILE]
    if not spans and (foreign or "asynctrace" not in other):
        if dropped is not None:
            raise bad(p, "was cut short before its first span, or is not an asynctrace timeline")
        raise bad(p, "is a trace, but not one written by asynctrace (no event carries a span_id)")
    real = len(spans)
    if dropped is not None:
        spans.extend(unfinished_owners(spans, labels))
    trace = Trace(spans, clock=clock, epoch_ns=epoch_ns, dropped=lost)
    return trace, None if dropped is None else Cut(dropped, real)


_TEXT_KEYS = (_AWAITED, _FUNCTION, _FILE, "asynctrace.task.name", "asynctrace.thread.name")


def _text_of(value: object) -> str:
    try:
        return str(value)
    except RecursionError:  # a hand-made file nests lists ~1000 deep
        return f"<{type(value).__name__} nested too deeply to show>"


def event_span(
    ev: dict[str, Any], args: dict[str, Any], tracks: dict[object, int], origin: float
) -> Span:
    kind = args.get("kind", ev.get("cat"))
    status = args.get("status", "ok")
    if kind not in KINDS or status not in STATUSES:
        msg = f"kind={kind!r} status={status!r}"
        raise ValueError(msg)
    ts, dur = float(ev["ts"]), float(ev["dur"])
    if not (math.isfinite(ts) and math.isfinite(dur)):
        msg = f"ts={ts} dur={dur}"
        raise ValueError(msg)
    end_us = float(args[_UNCLAMPED]) if _UNCLAMPED in args else ts + dur
    if not math.isfinite(end_us):
        msg = f"{_UNCLAMPED}={end_us}"
        raise ValueError(msg)
    name = args["name"] if "name" in args else _raw_name(_text_of(ev["name"]), kind, status)
    attributes: dict[str, object] = {}
    default = _DEFAULTS.get(kind)
    if default is not None:
        attributes[default] = name  # written only when it differs from the name
    for key, value in args.items():
        if key in _RESERVED or key == _UNCLAMPED:
            continue
        if key.startswith(_RESERVED_PREFIX) and key[len(_RESERVED_PREFIX) :] in _RESERVED:
            key = key[len(_RESERVED_PREFIX) :]
        attributes[key] = value
    if default is not None and attributes[default] is None:
        del attributes[default]
    for key in _TEXT_KEYS:  # names, by the data contract (joins() hashes them)
        value = attributes.get(key)
        if value is not None and value.__class__ is not str:
            attributes[key] = _text_of(value)
    parent_id = args["parent_id"]
    error = args.get("error")
    return Span(
        span_id=int(args["span_id"]),
        parent_id=None if parent_id is None else int(parent_id),
        kind=kind,
        name=_text_of(name),
        start=(ts - origin) / 1e6,
        end=(end_us - origin) / 1e6,
        track=int(args["track"]) if "track" in args else tracks[ev["tid"]],
        status=status,
        error=None if error is None else _text_of(error),
        attributes=attributes,
        start_seq=int(args["start_seq"]),
        end_seq=int(args["end_seq"]),
    )


def _raw_name(display: str, kind: str, status: str) -> str:
    """Undo :func:`display_name` (not for ``blocked``, whose display name carries a duration)."""
    if status != "ok" and display.endswith(f" [{status}]"):
        display = display[: -len(status) - 3]
    if kind == "await" and display.startswith("await "):
        return display[6:]
    if kind in ("task", "coroutine", "thread") and display.endswith("()"):
        return display[:-2]
    return display
