"""The JSON timeline's rows as text, in Python: what ``_cjson.place_rows`` writes in C.

Problem: without the C accelerator the timeline was made as a dict per span (and one for its
args) and the whole document encoded by the json module: about 20 us a span, ten times the C
way, when the pure-Python path MUST stay within three times of it.

Solution: :func:`place_rows` places each row as ``_chrome._place`` does and writes each span's
slice as text straight from the span, the same bytes as ``_cjson.place_rows``: the fixed keys
written once in the templates, the text of each (name, kind, status) and of each attribute key
kept for the call, strings escaped by json's own escaper, one join and one encode at the end.
A span it does not write exactly as ``_chrome._args`` would (a long string, a list, a renamed
key, a blocked step, an odd number) gets its event dict from ``fallback``, encoded by
``_json.dumps_strict``.  What that encoder refuses, a time it cannot write as its decimal, and
a lone surrogate (UnicodeEncodeError at the end) raise TypeError or ValueError: the caller then
encodes the whole document the old way, so the file is byte for byte what it was.
"""

from __future__ import annotations

from collections.abc import Callable
from json.encoder import encode_basestring as quote  # '"text"', escaped as json.dumps does
from typing import Any

from ._chrome import (
    _DEFAULTS,
    _FILE,
    _RESERVED,
    _UNCLAMPED,
    MARKER_CAT,
    ORIGIN_NS,
    PID,
    _Item,
    _Layout,
)
from ._json import dumps_strict
from ._sanitize import MAX_CHARS
from ._spans import Span
from ._timeline import display_name

__all__ = ["place_rows"]

# Beyond 64 bits orjson refuses an int; refusing it here too leaves it to the old way.
_INT_LIMIT = 2**63
# ns / 1000 below this is written by repr() without an exponent, as every encoder writes it
_US_LIMIT = 4 * 10**15
_MISSING = object()
_NULL_DEFAULTS = {kind: f",{quote(key)}:null" for kind, key in _DEFAULTS.items()}
_NULL_FILE = f",{quote(_FILE)}:null"
_UNCLAMPED_KEY = f",{quote(_UNCLAMPED)}:"
_MARKER_CAT = quote(MARKER_CAT)

# the texts a (name, kind, status) shares: from ',"name":' to '"span_id":'; with full args, the
# texts around the track; the status (compact args); the key repeating the name, and its null
_Head = tuple[str, "tuple[str, str] | None", str, "str | None", str]
_Fallback = Callable[[Span, int, int, int, "int | None"], dict[str, Any]]


def us_text(ns: int) -> str:
    """Whole nanoseconds as ``_chrome._us``'s microseconds are written (the decimal repr()
    writes): ``12`` or ``12.345``, the digits moved rather than divided, which costs less."""
    if 1000 <= ns < _US_LIMIT:
        text = str(ns)
        part = text[-3:]
        if part == "000":
            return text[:-3]
        return f"{text[:-3]}.{part}".rstrip("0")
    if ns % 1000 == 0:
        return str(ns // 1000)
    if not -_US_LIMIT < ns < _US_LIMIT:
        msg = f"ns={ns} is past the times written as decimals here; the json module writes it"
        raise ValueError(msg)
    return repr(ns / 1000)


def _number_text(value: int | float) -> str:
    """An int, or a float written with repr() (the same in every encoder, unless exponent)."""
    if value.__class__ is int:
        return str(value)
    text = float.__repr__(value)
    if "e" in text or "n" in text:  # 1e-06 (orjson: 1e-6), nan, inf
        msg = f"value={text} is written differently by each encoder; the json module writes it"
        raise ValueError(msg)
    return text


def _value_text(value: object) -> str | None:
    """An attribute value's JSON text, when every encoder writes it alike; None otherwise."""
    cls = value.__class__
    if cls is str:
        return quote(value) if len(value) <= MAX_CHARS else None  # type: ignore[arg-type]
    if cls is int:
        return str(value) if -_INT_LIMIT <= value < _INT_LIMIT else None  # type: ignore[operator]
    if value is None:
        return "null"
    if cls is bool:
        return "true" if value else "false"
    if cls is float:
        text = float.__repr__(value)
        return None if "e" in text or "n" in text else text
    return None


def _key_text(key: object) -> str | None:
    """``,"key":`` for an attribute key that ``_args`` keeps as it is; None otherwise."""
    if key.__class__ is not str or len(key) > MAX_CHARS:
        return None
    if key in _RESERVED or key == _UNCLAMPED:
        return None
    return f",{quote(key)}:"


def _flow_text(flow: tuple[str, int, int | float, int, str, bool]) -> str:
    """A flow event, as ``_chrome._flow_event`` makes its dict."""
    ph, tid, ts, flow_id, cat, enclosing = flow
    bound = ',"bp":"e"' if enclosing else ""
    return (
        f'{{"ph":{quote(ph)},"pid":{PID},"tid":{tid},"ts":{_number_text(ts)},'
        f'"id":{flow_id},"cat":{quote(cat)}{bound}}}'
    )


class _Writer:
    """The slices of one call: its mode, the texts it keeps, the parent last looked up."""

    def __init__(self, full: bool, fallback: _Fallback) -> None:
        self.full = full
        self.fallback = fallback
        # (name, kind, status) -> its _Head, or None: the span is not taken
        self.heads: dict[tuple[str, str, str], _Head | None] = {}
        self.keys: dict[object, str | None] = {}  # attribute key -> ',"key":' or None
        self.parent: Span | None = None
        self.parent_file: object = _MISSING

    def head(self, span: Span) -> _Head | None:
        kind, name, status = span.kind, span.name, span.status
        if (
            kind == "blocked"  # its name carries its duration, formatted in Python
            or kind.__class__ is not str
            or name.__class__ is not str
            or status.__class__ is not str
            or len(name) > MAX_CHARS
        ):
            return None
        head = f',"name":{quote(display_name(span))},"cat":{quote(kind)},"args":{{"span_id":'
        if self.full:
            # the track comes between kind and status
            named = (
                f',"kind":{quote(kind)},"track":',
                f',"status":{quote(status)},"name":{quote(name)}',
            )
        else:
            named = None
        status_text = "" if self.full or status == "ok" else f',"status":{quote(status)}'
        return (head, named, status_text, _DEFAULTS.get(kind), _NULL_DEFAULTS.get(kind, ""))

    def event(self, span: Span, tid: int, start: int, end: int, unclamped: int | None) -> str:
        """The slice of a span :meth:`text` does not take, from its event dict."""
        return dumps_strict(self.fallback(span, tid, start, end, unclamped)).decode()

    def text(self, span: Span, row: str, start: int, end: int, unclamped: int | None) -> str | None:
        """The slice of ``span`` at ``[start, end)`` ns, after the ``row``'s text up to its
        tid; None when ``_args`` would write it otherwise."""
        name = span.name
        texts = (name, span.kind, span.status)
        head = self.heads.get(texts)
        if head is None:
            if texts in self.heads:
                return None
            head = self.heads[texts] = self.head(span)
            if head is None:
                return None
        prefix, named, status_text, default, null_default = head
        span_id, parent_id = span.span_id, span.parent_id
        start_seq, end_seq = span.start_seq, span.end_seq
        error = span.error
        attributes = span.attributes
        parent_text: object = parent_id
        if parent_id is None:
            parent_text = "null"
            parent_id = 0
        if not (
            span_id.__class__ is int
            and start_seq.__class__ is int
            and end_seq.__class__ is int
            and parent_id.__class__ is int
            # each in [0, 2**63): a negative one, rare, is left to the event dict
            and not (span_id | start_seq | end_seq | parent_id) >> 63
            and attributes.__class__ is dict
        ):
            return None
        if error is not None and (error.__class__ is not str or len(error) > MAX_CHARS):
            return None
        text = f'{row}{prefix}{span_id},"parent_id":{parent_text}'
        if named is not None:
            track = span.track
            if track.__class__ is not int or not -_INT_LIMIT <= track < _INT_LIMIT:
                return None
            text += f"{named[0]}{track}{named[1]}"
        text += f',"start_seq":{start_seq},"end_seq":{end_seq}{status_text}'
        if error is not None:
            text += f',"error":{quote(error)}'
        parent = span.parent
        parent_file = _MISSING
        if parent is not None:
            if parent is not self.parent:
                self.parent = parent
                self.parent_file = parent.attributes.get(_FILE, _MISSING)
            parent_file = self.parent_file
        has_default = has_file = False
        keys = self.keys
        full = self.full
        for key, value in attributes.items():
            if key == default:
                has_default = True
                if not full and value == name:
                    continue  # it repeats the name
            elif key == _FILE and parent_file is not _MISSING:
                has_file = True
                if not full and value == parent_file:
                    continue  # the parent's file: said once per row
            key_text = keys.get(key)
            if key_text is None:
                key_text = keys[key] = _key_text(key)
                if key_text is None:
                    return None
            cls = value.__class__
            if cls is str:
                if len(value) > MAX_CHARS:  # type: ignore[arg-type]
                    return None
                text += key_text + quote(value)  # type: ignore[arg-type]
            elif cls is int:
                if not -_INT_LIMIT <= value < _INT_LIMIT:  # type: ignore[operator]
                    return None
                text += f"{key_text}{value}"
            elif cls is bool:
                text += key_text + ("true" if value else "false")
            else:
                value_text = _value_text(value)
                if value_text is None:
                    return None
                text += key_text + value_text
        if default is not None and not has_default:
            text += null_default
        if parent_file is not _MISSING and not has_file:
            text += _NULL_FILE
        if unclamped is not None:
            text += _UNCLAMPED_KEY + us_text(unclamped)
        dur = end - start
        if start >= 1000 and dur >= 1000 and end < _US_LIMIT:  # us_text, inlined: twice a slice
            ts_ns, dur_ns = str(start), str(dur)
            ts_part, dur_part = ts_ns[-3:], dur_ns[-3:]
            ts = ts_ns[:-3] if ts_part == "000" else f"{ts_ns[:-3]}.{ts_part}".rstrip("0")
            us = dur_ns[:-3] if dur_part == "000" else f"{dur_ns[:-3]}.{dur_part}".rstrip("0")
            return f'{text}}},"ts":{ts},"dur":{us}}}'
        return f'{text}}},"ts":{us_text(start)},"dur":{us_text(dur)}}}'


def row_names(layout: _Layout) -> bytes:
    """``,`` and the rows' metadata events, as ``_chrome._row_events`` makes their dicts
    (nothing without rows)."""
    names: list[str] = []
    for tid, (track, label) in enumerate(zip(layout.track_ids, layout.labels, strict=True), 1):
        if label.__class__ is not str or track.__class__ is not int:
            msg = f"track={track!r}, label={label!r}: not an int and a str; json writes the row"
            raise TypeError(msg)
        if not -_INT_LIMIT <= track < _INT_LIMIT:
            msg = f"track={track} is past 64 bits; json writes the row"
            raise ValueError(msg)
        names.append(
            f'{{"ph":"M","pid":{PID},"tid":{tid},"name":"thread_name","args":{{"name":'
            f'{quote(label)},"track":{track}}}}},{{"ph":"M","pid":{PID},"tid":{tid},'
            f'"name":"thread_sort_index","args":{{"sort_index":{tid}}}}}'
        )
    return "".join("," + name for name in names).encode()


def place_rows(
    rows: list[tuple[int, list[Span], list[_Item]]],
    after: dict[int, list[Any]],
    full: bool,
    fallback: _Fallback,
) -> bytes:
    """The rows of a whole JSON timeline, each placed as ``_chrome._place`` places it and
    written, joined by ",": ``_cjson.place_rows``'s arguments and bytes."""
    writer = _Writer(full, fallback)
    text = writer.text
    out: list[str] = []
    for tid, spans, markers in rows:
        if tid.__class__ is not int:
            msg = f"tid={tid!r} is not an int; the json module writes the row"
            raise TypeError(msg)
        row = f'{{"ph":"X","pid":{PID},"tid":{tid}'
        n_spans = len(spans)
        # _Item.key, flat: (start, -end, seq, sub), then the order they came in
        entries: list[tuple[int, int, int, int, int, Span | _Item]] = []
        for index, span in enumerate(spans):
            start = round(span.start * 1e9) + ORIGIN_NS
            end = round(span.end * 1e9) + ORIGIN_NS
            entries.append((start, -max(end, start), span.start_seq, 0, index, span))
        index = n_spans
        for marker in markers:
            seq, sub = marker.key[2]
            entries.append((marker.start, -marker.end, seq, sub, index, marker))
            index += 1
        entries.sort()
        ends: list[int] = []  # the ends of the slices open, innermost last
        for start, negative_end, _, _, index, entry in entries:
            end = -negative_end
            while ends and ends[-1] <= start:  # half-open: [a, b) is over at b
                ends.pop()
            unclamped = None
            if ends and end > ends[-1]:
                unclamped = end
                end = ends[-1]
            ends.append(end)
            flows: list[Any] | None
            if index < n_spans:
                span = entry  # type: ignore[assignment]
                slice_text = text(span, row, start, end, unclamped)
                if slice_text is None:
                    slice_text = writer.event(span, tid, start, end, unclamped)
                out.append(slice_text)
                flows = after.get(span.span_id) if after else None
            else:
                marker = entry  # type: ignore[assignment]
                event = marker.event
                assert event is not None  # a marker always has its event
                out.append(
                    f'{{"ph":"X","pid":{PID},"tid":{event["tid"]},"name":{quote(event["name"])},'
                    f'"cat":{_MARKER_CAT},"args":{{}},"ts":{us_text(start)},'
                    f'"dur":{us_text(end - start)}}}'
                )
                flows = marker.after
            if flows:
                out.extend(map(_flow_text, flows))
    return ",".join(out).encode()
