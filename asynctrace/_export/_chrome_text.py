"""The JSON timeline's rows as text, in Python: what ``_cjson.place_rows`` writes in C.

Problem: without the C accelerator the timeline was made as a dict per span (and one for its
args) and the whole document encoded by the json module: about 20 us a span, ten times the C
way, when the pure-Python path MUST stay within three times of it.

Solution: :func:`place_rows` places each row as ``_chrome._place`` does and writes each span's
slice as text straight from the span, the same bytes as ``_cjson.place_rows``: the fixed keys
written once in the templates, the text of each (name, kind, status) and of each attribute key
kept for the call, strings escaped by json's own escaper, the events joined and encoded in
chunks.  It costs a third less than writing every piece each time because what repeats is
written once: a row's spans come in the order of their starts (sorted only when they do not),
and the spans of one call site have the same attributes, so the text of the last span's
attributes is reused when they are the same (same keys in the same order, equal values of the
same classes, the same parent's file).
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

from .._model._spans import Span
from .._model._timeline import display_name
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

__all__ = ["place_rows"]

# Beyond 64 bits orjson refuses an int; refusing it here too leaves it to the old way.
_INT_LIMIT = 2**63
# ns / 1000 below this is written by repr() without an exponent, as every encoder writes it
_US_LIMIT = 4 * 10**15
_MISSING = object()
# the text of n % 1000 ns after the whole microseconds: "", ".001", ..., ".01", ..., ".999"
_FRACTIONS = ["", *(f".{part:03}".rstrip("0") for part in range(1, 1000))]
# Events encoded together: a text with one non-ASCII character is encoded character by
# character (an ASCII text is copied), and the events' strings are freed (and their memory
# reused) as they go; a chunk is about 1 MB.
_CHUNK_EVENTS = 4096
_NULL_DEFAULTS = {kind: f",{quote(key)}:null" for kind, key in _DEFAULTS.items()}
_NULL_FILE = f",{quote(_FILE)}:null"
_UNCLAMPED_KEY = f",{quote(_UNCLAMPED)}:"
_MARKER_CAT = quote(MARKER_CAT)
_NEVER = float("inf")  # the end of a slice that never ends, under a row's slices

_Fallback = Callable[[Span, int, int, int, "int | None"], dict[str, Any]]


def us_text(ns: int) -> str:
    """Whole nanoseconds as ``_chrome._us``'s microseconds are written (the decimal repr()
    writes): ``12`` or ``12.345``, the digits after the point from a table, which costs less
    than dividing."""
    if 0 <= ns < _US_LIMIT:
        whole, part = divmod(ns, 1000)
        return f"{whole}{_FRACTIONS[part]}"
    if ns % 1000 == 0:
        return str(ns // 1000)
    if ns <= -_US_LIMIT:
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


class _Head:
    """What the slices of one (name, kind, status) share: the text from ``,"name":`` to
    ``"span_id":``; with full args, the texts around the track; the status (compact args); the
    key that repeats the name, and its null.  And the attributes last written with it, for
    the next span whose attributes are the same (spans of one call site have the same)."""

    __slots__ = (
        "after_seq",
        "attributes",
        "default",
        "named",
        "null_default",
        "parent_file",
        "prefix",
        "shape",
        "status_text",
    )

    def __init__(
        self,
        prefix: str,
        named: tuple[str, str] | None,
        status_text: str,
        default: str | None,
        null_default: str,
    ) -> None:
        self.prefix = prefix
        self.named = named
        self.status_text = status_text
        self.default = default
        self.null_default = null_default
        self.attributes: dict[Any, Any] | None = None
        self.parent_file: object = _MISSING
        self.shape: tuple[Any, ...] = ()  # the attributes' keys, then their values' classes
        self.after_seq = ""


class _Writer:
    """The slices of one call: its mode, the texts it keeps, the parent last looked up."""

    def __init__(self, full: bool, fallback: _Fallback) -> None:
        self.full = full
        self.fallback = fallback
        # (name, kind, status) -> its _Head, or None: the span is not taken
        self.heads: dict[tuple[str, str, str], _Head | None] = {}
        self.keys: dict[object, str | None] = {}  # attribute key -> ',"key":' or None
        self.parent: Span | None = None  # the parent last looked up, and its file
        self.parent_file: object = _MISSING
        self.parent_id: object = _MISSING  # the parent id last written, and its text
        self.parent_text = ""

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
        prefix = f',"name":{quote(display_name(span))},"cat":{quote(kind)},"args":{{"span_id":'
        if self.full:
            # the track comes between kind and status
            named = (
                f',"kind":{quote(kind)},"track":',
                f',"status":{quote(status)},"name":{quote(name)}',
            )
        else:
            named = None
        status_text = "" if self.full or status == "ok" else f',"status":{quote(status)}'
        return _Head(prefix, named, status_text, _DEFAULTS.get(kind), _NULL_DEFAULTS.get(kind, ""))

    def event(self, span: Span, tid: int, start: int, end: int, unclamped: int | None) -> str:
        """The slice of a span :meth:`text` does not take, from its event dict."""
        return dumps_strict(self.fallback(span, tid, start, end, unclamped)).decode()

    def place_spans(
        self, out: list[str], row: tuple[int, str], spans: list[Span], after: dict[int, list[Any]]
    ) -> bool:
        """:meth:`place` for a row of spans alone while their starts rise, the common case, in
        fewer steps a slice; False at the first start that does not rise (nothing is taken
        back: the caller sorts the row)."""
        tid, row_text = row
        text = self.text
        append = out.append
        ends: list[float] = [_NEVER]  # the ends of the slices open, innermost last
        pop, push = ends.pop, ends.append
        top = _NEVER  # ends[-1]
        flows_of = after.get if after else None
        last = -_NEVER
        for span in spans:
            start = round(span.start * 1e9) + ORIGIN_NS
            if start <= last:
                return False
            last = start
            end = round(span.end * 1e9) + ORIGIN_NS
            if end < start:
                end = start
            while top <= start:  # half-open: [a, b) is over at b
                pop()
                top = ends[-1]
            unclamped = None
            if end > top:
                unclamped = end
                end = top  # type: ignore[assignment]
            push(end)
            top = end
            slice_text = text(span, row_text, start, end, unclamped)
            if slice_text is None:
                slice_text = self.event(span, tid, start, end, unclamped)
            append(slice_text)
            if flows_of is not None:
                flows = flows_of(span.span_id)
                if flows:
                    out.extend(map(_flow_text, flows))
        return True

    def place(
        self,
        out: list[str],
        row: tuple[int, str],
        entries: list[Span | _Item],
        after: dict[int, list[Any]],
    ) -> None:
        """Place a row's spans and markers, in ``_Item.key``'s order, and write their slices
        and the flow events after them to ``out``."""
        tid, row_text = row
        text = self.text
        ends: list[float] = [_NEVER]  # the ends of the slices open, innermost last
        for entry in entries:
            is_marker = entry.__class__ is _Item
            if is_marker:
                marker: _Item = entry  # type: ignore[assignment]
                start, end = marker.start, marker.end
            else:
                span: Span = entry  # type: ignore[assignment]
                start = round(span.start * 1e9) + ORIGIN_NS
                end = round(span.end * 1e9) + ORIGIN_NS
                if end < start:
                    end = start
            top = ends[-1]
            while top <= start:  # half-open: [a, b) is over at b
                ends.pop()
                top = ends[-1]
            unclamped = None
            if end > top:
                unclamped = end
                end = top  # type: ignore[assignment]
            ends.append(end)
            flows: list[Any] | None
            if is_marker:
                event = marker.event
                assert event is not None  # a marker always has its event
                out.append(
                    f'{{"ph":"X","pid":{PID},"tid":{event["tid"]},"name":{quote(event["name"])},'
                    f'"cat":{_MARKER_CAT},"args":{{}},"ts":{us_text(start)},'
                    f'"dur":{us_text(end - start)}}}'
                )
                flows = marker.after
            else:
                slice_text = text(span, row_text, start, end, unclamped)
                if slice_text is None:
                    slice_text = self.event(span, tid, start, end, unclamped)
                out.append(slice_text)
                flows = after.get(span.span_id) if after else None
            if flows:
                out.extend(map(_flow_text, flows))

    def text(self, span: Span, row: str, start: int, end: int, unclamped: int | None) -> str | None:
        """The slice of ``span`` at ``[start, end)`` ns, after the ``row``'s text up to its
        tid; None when ``_args`` would write it otherwise."""
        texts = (span.name, span.kind, span.status)
        head = self.heads.get(texts)
        if head is None:
            if texts in self.heads:
                return None
            head = self.heads[texts] = self.head(span)
            if head is None:
                return None
        span_id, parent_id = span.span_id, span.parent_id
        start_seq, end_seq = span.start_seq, span.end_seq
        parent_text = self.parent_text
        if parent_id is not self.parent_id:
            if parent_id is None:
                parent_text = "null"
            elif parent_id.__class__ is not int or not 0 <= parent_id < _INT_LIMIT:
                return None
            else:
                parent_text = f"{parent_id}"
            self.parent_id, self.parent_text = parent_id, parent_text
        if not (
            span_id.__class__ is int
            and start_seq.__class__ is int
            and end_seq.__class__ is int
            # each in [0, 2**63): a negative one, rare, is left to the event dict
            and not (span_id | start_seq | end_seq) >> 63
        ):
            return None
        named = head.named
        if named is None:
            track_text = ""
        else:
            track = span.track
            if track.__class__ is not int or not -_INT_LIMIT <= track < _INT_LIMIT:
                return None
            track_text = f"{named[0]}{track}{named[1]}"
        parent = span.parent
        parent_file = _MISSING
        if parent is not None:
            if parent is not self.parent:
                self.parent = parent
                self.parent_file = parent.attributes.get(_FILE, _MISSING)
            parent_file = self.parent_file
        attributes = span.attributes
        if attributes.__class__ is not dict:
            return None
        error = span.error
        # what follows end_seq: the status, the error, the attributes; the same for the next
        # span of this head whose attributes are the same, unless it has an error.  Equal
        # dicts may differ in their order and in their values' classes (True == 1 == 1.0).
        if (
            error is None
            and attributes == head.attributes
            and parent_file is head.parent_file
            and (*attributes, *map(type, attributes.values())) == head.shape
        ):
            after_seq = head.after_seq
        else:
            written = self.attributes_text(attributes, texts[0], head, parent_file)
            if written is None:
                return None
            if error is None:
                after_seq = head.status_text + written
                shape = (*attributes, *map(type, attributes.values()))
                if float not in shape:  # 0.0 == -0.0: a float's text is not kept
                    head.attributes, head.parent_file, head.shape = attributes, parent_file, shape
                    head.after_seq = after_seq
            elif error.__class__ is not str or len(error) > MAX_CHARS:
                return None
            else:
                after_seq = f'{head.status_text},"error":{quote(error)}{written}'
        if unclamped is not None:
            after_seq += _UNCLAMPED_KEY + us_text(unclamped)
        # the recorder numbers a span by its start: one text for both
        id_text = f"{span_id}"
        start_text = id_text if start_seq == span_id else f"{start_seq}"
        dur = end - start
        if start < 0 or end >= _US_LIMIT:
            times = f'"ts":{us_text(start)},"dur":{us_text(dur)}}}'
            return (
                f'{row}{head.prefix}{id_text},"parent_id":{parent_text}{track_text},'
                f'"start_seq":{start_text},"end_seq":{end_seq}{after_seq}}},{times}'
            )
        # us_text, inlined: twice a slice
        return (
            f'{row}{head.prefix}{id_text},"parent_id":{parent_text}{track_text},'
            f'"start_seq":{start_text},"end_seq":{end_seq}{after_seq}}},'
            f'"ts":{start // 1000}{_FRACTIONS[start % 1000]},'
            f'"dur":{dur // 1000}{_FRACTIONS[dur % 1000]}}}'
        )

    def attributes_text(
        self, attributes: dict[Any, Any], name: str, head: _Head, parent_file: object
    ) -> str | None:
        """The args after the span's own, with the nulls that say an attribute is absent, as
        ``_args`` writes them; None when it writes them otherwise."""
        default = head.default
        has_default = has_file = False
        keys = self.keys
        full = self.full
        text = ""
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
            value_text = _value_text(value)
            if value_text is None:
                return None
            text += key_text + value_text
        if default is not None and not has_default:
            text += head.null_default
        if parent_file is not _MISSING and not has_file:
            text += _NULL_FILE
        return text


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


def tail_text(events: list[Any]) -> bytes:
    """The events after every slice (``_Layout.tail``), joined by ",": a flow event written
    as text, an event dict (the counter's) encoded."""
    texts: list[str] = []
    for event in events:
        if event.__class__ is tuple:
            texts.append(_flow_text(event))
        elif event.__class__ is dict:
            texts.append(dumps_strict(event).decode())
        else:
            msg = f"event={event!r} is neither a flow nor an event dict; json writes the file"
            raise TypeError(msg)
    return ",".join(texts).encode()


def place_rows(
    rows: list[tuple[int, list[Span], list[_Item]]],
    after: dict[int, list[Any]],
    full: bool,
    fallback: _Fallback,
    sink: Callable[[bytes], None] | None,
) -> bytes:
    """The rows of a whole JSON timeline, each placed as ``_chrome._place`` places it and
    written, joined by ",": ``_cjson.place_rows``'s arguments and bytes (with a ``sink``, the
    bytes it was not given)."""
    writer = _Writer(full, fallback)
    chunks: list[bytes] = []
    give = chunks.append if sink is None else sink
    out: list[str] = []  # the events not yet in a chunk
    for tid, spans, markers in rows:
        if tid.__class__ is not int:
            msg = f"tid={tid!r} is not an int; the json module writes the row"
            raise TypeError(msg)
        row = (tid, f'{{"ph":"X","pid":{PID},"tid":{tid}')
        written = len(out)
        # a row's spans come in the order of their starts, unless hand-made or in a tie
        if markers or not writer.place_spans(out, row, spans, after):
            del out[written:]
            writer.place(out, row, _in_order(spans, markers), after)
        if len(out) >= _CHUNK_EVENTS:
            give(",".join(out).encode())
            out[:] = [""]  # the next chunk starts with the comma after this one's last event
    chunks.append(",".join(out).encode())
    return b"".join(chunks)


def _in_order(spans: list[Span], markers: list[_Item]) -> list[Span | _Item]:
    """A row's spans and markers in ``_Item.key``'s order: (start, -end, seq, sub), then the
    order they came in."""
    entries: list[tuple[int, int, int, int, int, Span | _Item]] = []
    for index, span in enumerate(spans):
        start = round(span.start * 1e9) + ORIGIN_NS
        end = round(span.end * 1e9) + ORIGIN_NS
        entries.append((start, -max(end, start), span.start_seq, 0, index, span))
    index = len(spans)
    for marker in markers:
        seq, sub = marker.key[2]
        entries.append((marker.start, -marker.end, seq, sub, index, marker))
        index += 1
    entries.sort()
    return [entry for _, _, _, _, _, entry in entries]
