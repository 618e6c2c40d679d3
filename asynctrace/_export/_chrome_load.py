"""Loading a JSON timeline file that may be hostile, huge, or cut short.

Problem: ``asynctrace view`` is pointed at whatever file the user has: a finished timeline
(one JSON object, ``{"traceEvents": [...], "otherData": {...}}``), the streaming writer's file of
a run still going or killed by SIGKILL (the Chrome *Array Format*: ``[``, then one event per
line ending ``,``, maybe closed by ``]`` or ``{}]``, maybe ending in the middle of a line), or
something that is not a timeline at all: empty, binary, not UTF-8, a directory, a FIFO, a 1 GB
file, ``[[[[...`` nested 100,000 deep.  None of those may end in a traceback, a hang, or
unbounded memory.

Solution: :func:`load_events` checks the path is a regular file no bigger than the caller's
limit before reading it, reads at most that many bytes, and parses with the C JSON decoder:
the whole text first, then, if that fails on an array (or on an object's ``traceEvents`` list),
one event at a time with ``raw_decode``.  An event that fails at the end of the text (the
decoder's error lies within a few characters of the end, or is an unterminated string) is the
cut: it and everything after it is dropped and counted; a failure anywhere else is an error.
Errors are :class:`ValueError` whose message names the file, what is wrong, and the fix.

Nesting is measured on the bytes before any parsing (:func:`nesting_deeper_than`), not left to
the decoder: how deep ``json`` goes before it fails differs by version (3.11 raises
``RecursionError`` near 1000 levels; 3.14 parses 50,000 levels), and a value nested that deep
would break the exporters' own recursive encoders later.  So a file is refused as too deep, in
one message, on every version.
"""

from __future__ import annotations

import codecs
import itertools
import json
import os
import re
import stat
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from .._model._spans import Kind, Span
from ._sanitize import shown

__all__ = [
    "Cut",
    "TraceTooLarge",
    "bad",
    "load_events",
    "nesting_deeper_than",
    "read_metadata",
    "unfinished_owners",
]

_WRITTEN_BY = (
    "pass a JSON timeline written by asynctrace"
    " (`asynctrace run --json trace.json ...` or asynctrace.write_json)"
)
# The longest token a cut can leave unfinished without the decoder reporting the error at the
# end of the text: ``-Infinity`` (9), ``\uXXXX`` (6), ``false`` (5).
_TOKEN_SLACK = 9
_SPACE = re.compile(r"[ \t\n\r]*")
_SPACE_BYTES = re.compile(rb"[ \t\n\r]*")
_OBJECT_HEAD = re.compile(r'\{[ \t\n\r]*"traceEvents"[ \t\n\r]*:[ \t\n\r]*\[')
# A timeline nests 4 levels (document, traceEvents, event, args) plus an attribute's list: 200
# leaves room for hand-made files and stays far below the recursion of every Python's json,
# repr() and the encoders that write the trace again.
MAX_DEPTH = 200
_ESCAPE = re.compile(rb"\\.", re.DOTALL)  # a backslash and the byte it escapes
_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')  # to delete: all but these
_STRING = re.compile(rb'"[^"]*"')  # once escapes are gone and only '"[]{}' is left
_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # as signed bytes: +1, -1
_CHUNK = 1 << 20


class Cut(NamedTuple):
    """How a timeline file was cut short (a run still going, or killed)."""

    dropped_bytes: int
    """Bytes after the last complete event, which were not read (0: cut between events)."""
    spans: int
    """Complete spans read before the cut."""


class TraceTooLarge(ValueError):
    """The file is bigger than the caller's limit; ``size`` and ``limit`` are in bytes."""

    def __init__(self, message: str, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


def bad(path: Path, what: str, fix: str = _WRITTEN_BY) -> ValueError:
    """The error for a file that cannot be shown: the file, what is wrong, the fix."""
    return ValueError(f"{shown(str(path))} {what}; {fix}")


def load_events(
    path: Path, max_bytes: int | None = None
) -> tuple[list[Any], dict[str, Any], bool, int | None]:
    """The file's events, its ``otherData``, whether it is the array format, and the cut.

    Args:
        path: the file.
        max_bytes: refuse a file bigger than this (None: no limit).

    Returns:
        ``(events, other, array_format, dropped_bytes)``; ``dropped_bytes`` is None when the
        file is complete, else how many bytes after the last complete event were dropped.

    Raises:
        TraceTooLarge: the file is bigger than ``max_bytes``.
        ValueError: the file cannot be read or is not a Chrome trace; the message says why.
    """
    raw = _read(path, max_bytes)
    # before decoding, which doubles the memory: a binary file fails here, on its first byte
    at = _SPACE_BYTES.match(raw, len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0)
    start = at.end()  # type: ignore[union-attr]  # matches the empty string
    if start == len(raw):
        raise bad(path, "is empty" if not raw else "holds only white space")
    if raw[start : start + 1] not in (b"{", b"["):
        shown_head = raw[start : start + 12].decode("utf-8", "backslashreplace")
        raise bad(path, f"is not JSON (it starts with {shown_head!r})")
    if nesting_deeper_than(raw, MAX_DEPTH):
        raise _too_deep(path)
    text, held = _decode(path, raw)
    del raw
    start = _SPACE.match(text).end()  # type: ignore[union-attr]  # matches the empty string
    first = text[start]
    try:
        doc = json.loads(text)
    except RecursionError:  # MUST NOT happen after the check above; a caller's deep stack
        raise _too_deep(path) from None
    except ValueError as exc:  # JSONDecodeError, or an integer of more than 4300 digits
        head = _OBJECT_HEAD.match(text, start) if first == "{" else None
        if first == "[":
            body = start + 1
        elif head is not None:
            body = head.end()
        else:
            raise bad(path, f"is not JSON ({exc})") from None
        events, dropped = _events_until_cut(path, text, body, exc, first == "[")
        return events, {}, first == "[", None if dropped is None else dropped + held
    if held:  # only an incomplete UTF-8 character after a complete document: nothing lost
        return (*_unpack(path, doc), 0)
    return (*_unpack(path, doc), None)


def _unpack(path: Path, doc: object) -> tuple[list[Any], dict[str, Any], bool]:
    events = doc.get("traceEvents") if isinstance(doc, dict) else doc
    if not isinstance(events, list):
        raise bad(path, "is JSON but not a Chrome trace (no traceEvents list)")
    other = doc.get("otherData") if isinstance(doc, dict) else None
    return events, other if isinstance(other, dict) else {}, isinstance(doc, list)


def _read(path: Path, max_bytes: int | None) -> bytes:
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise bad(path, "does not exist") from None
    except ValueError:  # a NUL in the path
        raise bad(path, "is not a valid path (it contains a NUL character)") from None
    except OSError as exc:
        raise bad(path, f"cannot be read ({exc.strerror})", _READABLE) from None
    if stat.S_ISDIR(info.st_mode):
        raise bad(path, "is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        # a FIFO or a device could block or never end: only regular files are read
        raise bad(path, "is not a regular file (a FIFO, a device or a socket)")
    if max_bytes is not None and info.st_size > max_bytes:
        raise _too_large(path, info.st_size, max_bytes)
    try:
        with open(path, "rb") as f:
            raw = f.read() if max_bytes is None else _read_at_most(f, max_bytes + 1, info.st_size)
    except OSError as exc:
        raise bad(path, f"cannot be read ({exc.strerror})", _READABLE) from None
    if max_bytes is not None and len(raw) > max_bytes:  # it grew since stat()
        raise _too_large(path, max(len(raw), os.path.getsize(path)), max_bytes)
    return raw


_READABLE = "check the path and its permissions"


def _read_at_most(f: BinaryIO, limit: int, size: int) -> bytes:
    """Up to ``limit`` bytes, allocating for what is there (``read(n)`` allocates ``n``)."""
    data = f.read(min(limit, size + 1))
    if len(data) <= size or len(data) >= limit:
        return data
    parts = [data]  # the file grew since stat(): read on in chunks, up to the limit
    total = len(data)
    while total < limit:
        chunk = f.read(min(limit - total, 1 << 20))
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
    return b"".join(parts)


def _too_large(path: Path, size: int, limit: int) -> TraceTooLarge:
    msg = (
        f"{shown(str(path))} is {size / 2**20:,.1f} MiB, more than the"
        f" {limit / 2**20:,.0f} MiB limit; raise the limit to read it, or open it in"
        " https://ui.perfetto.dev"
    )
    return TraceTooLarge(msg, size, limit)


def _too_deep(path: Path) -> ValueError:
    return bad(
        path,
        f"is nested too deeply to be a timeline (JSON arrays or objects more than {MAX_DEPTH}"
        " levels deep)",
    )


def nesting_deeper_than(raw: bytes, limit: int) -> bool:
    """Whether the JSON text (or its start, cut anywhere) nests arrays and objects deeper
    than ``limit``, brackets inside strings not counted.

    No Python loop runs per byte or per string (a 128 MiB timeline takes a fraction of a
    second): escapes go, then everything but quotes and brackets; the empty strings that are
    nearly all that is left go in one ``replace``, since taking out two adjacent quotes leaves
    every other byte inside or outside a string as it was; the few strings that hold brackets
    go with a regular expression; a quote still left opens a string the cut left unfinished.
    The level after each bracket is then a running sum of +1 and -1, a chunk at a time.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    if b"\\" in raw:
        raw = _ESCAPE.sub(b"", raw)
    kept = raw.translate(None, _STRUCTURE).replace(b'""', b"")
    if b'"' in kept:
        kept = _STRING.sub(b"", kept)
        unfinished = kept.find(b'"')
        if unfinished >= 0:
            kept = kept[:unfinished]
    steps = memoryview(kept.translate(_STEP)).cast("b")  # signed bytes: +1 and -1
    level = 0
    for at in range(0, len(steps), _CHUNK):
        chunk = steps[at : at + _CHUNK]
        if max(itertools.accumulate(chunk, initial=level)) > limit:
            return True
        level += sum(chunk)
    return False


def _decode(path: Path, raw: bytes) -> tuple[str, int]:
    """The text, and how many bytes of an incomplete UTF-8 character at the end were held back.

    A file cut short can end in the middle of a multi-byte character; any other invalid UTF-8
    is an error.
    """
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        text = decoder.decode(raw, final=False)
    except UnicodeDecodeError as exc:
        byte = raw[exc.start]
        raise bad(path, f"is not UTF-8 text (byte 0x{byte:02x} at offset {exc.start})") from None
    return text, len(decoder.getstate()[0])


def _events_until_cut(
    path: Path, text: str, i: int, whole: ValueError, array: bool
) -> tuple[list[Any], int | None]:
    """Events of the list that starts at ``i``, one at a time, up to its end or the cut.

    Returns the events and the bytes dropped at the cut (None: the list was closed, which
    happens with the streaming writer's trailing ``,`` before ``]``).
    """
    decode = json.JSONDecoder().raw_decode
    space = re.compile(r"[^ \t\n\r]|\Z").search  # the next character that is not white space
    # SIGKILL after the file grew but before the data reached the disk leaves zero bytes
    end = len(text.rstrip("\x00")) if text.endswith("\x00") else len(text)
    events: list[Any] = []
    while True:
        i = space(text, i).start()  # type: ignore[union-attr]  # \Z always matches
        if i >= end:
            return events, len(text[i:].encode("utf-8", "surrogatepass"))
        ch = text[i]
        if ch == ",":
            i += 1
            continue
        if ch == "]":
            rest = text[i + 1 : end].strip()
            if not array:  # the object's tail (otherData) failed to parse: treat it as cut
                return events, len(text[i + 1 :].encode("utf-8", "surrogatepass"))
            if rest:
                raise bad(path, f"has data after the end of its JSON array ({rest[:12]!r})")
            return events, None
        try:
            event, i = decode(text, i)
        except RecursionError:
            raise _too_deep(path) from None
        except json.JSONDecodeError as exc:
            if exc.msg.startswith("Unterminated string") or exc.pos >= end - _TOKEN_SLACK:
                return events, len(text[i:].encode("utf-8", "surrogatepass"))
            raise bad(path, f"is not JSON ({whole})") from None
        except ValueError as exc:  # an integer too long to convert
            raise bad(path, f"is not JSON ({exc})") from None
        events.append(event)


def unfinished_owners(spans: list[Span], labels: dict[int, str]) -> list[Span]:
    """Owner spans for the tracks of a cut file whose run or task was still open at the cut.

    The streaming writer announces a track (``thread_name``: ``run NAME`` or ``Task-2
    task1()``) when it begins and writes its owner span only when it ends.
    """
    have = {s.span_id for s in spans}
    on_track: dict[int, list[Span]] = {}
    for s in spans:
        on_track.setdefault(s.track, []).append(s)
    end = max((s.end for s in spans), default=0.0)
    end_seq = max((s.end_seq for s in spans), default=0) + 1
    run = next((t for t, label in labels.items() if label.startswith("run ")), None)
    owners = []
    for track in [*labels, *(t for t in on_track if t not in labels)]:
        if track in have:
            continue
        label = labels.get(track, f"track {track}")
        mine = on_track.get(track, [])
        attributes: dict[str, object] = {}
        if label.startswith("run "):
            kind: Kind = "run"
            name, parent = label[4:], None
        elif label == f"track {track}":  # the writer knew no name for it
            kind, name, parent = "task", label, run if run != track else None
        else:
            head, sep, call = label.partition(" ")
            kind, parent = "task", run if run != track else None
            name = call[:-2] if call.endswith("()") else (call or label)
            if sep:
                attributes["asynctrace.task.name"] = head
        owners.append(
            Span(
                span_id=track,
                parent_id=parent,
                kind=kind,
                name=name,
                start=min((s.start for s in mine), default=end),
                end=end,
                track=track,
                status="unfinished",
                attributes=attributes,
                start_seq=-1 if kind == "run" else min((s.start_seq for s in mine), default=0),
                end_seq=end_seq,
            )
        )
    return owners


def read_metadata(
    events: list[Any], other: dict[str, Any], no_other: bool
) -> tuple[dict[object, int], dict[int, str]]:
    """Rows from ``thread_name`` events: tid -> track span id, and track -> label.

    With ``no_other`` (the streaming writer's file, or one cut before its ``otherData``),
    what the ``process_name`` event's args carry (clock, epoch, origin) is added to ``other``.
    """
    tracks: dict[object, int] = {}
    labels: dict[int, str] = {}
    for ev in events:
        if not isinstance(ev, dict) or ev.get("ph") != "M":
            continue
        meta = ev.get("args")
        if not isinstance(meta, dict):
            continue
        tid = ev.get("tid")
        if ev.get("name") == "thread_name" and isinstance(meta.get("track"), int):
            if isinstance(tid, (int, str)):
                tracks[tid] = meta["track"]
            labels[meta["track"]] = _text(meta.get("name", ""))
        elif ev.get("name") == "process_name" and no_other:
            for key in ("asynctrace", "clock", "epoch_ns", "dropped", "origin_us"):
                if key in meta:
                    other.setdefault(key, meta[key])
            if _text(meta.get("name", "")).startswith("asynctrace"):
                other.setdefault("asynctrace", "stream")
    return tracks, labels


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except RecursionError:  # a list nested ~1000 deep in a hand-made file
        return type(value).__name__
