"""Assertions over a recorded trace: overlap, order, concurrency, containment, duration, tree.

Problem: tests that check "these tasks really ran concurrently" compare wall-clock thresholds
that flake, or hand-written interval checks that get ties and half-open ends wrong, and a typo in
a span name silently passes.

Solution: pure functions over a :class:`~asynctrace.Trace`.  Intervals are half-open
``[start, end)``; equal times are ordered by the recorder's ``start_seq``/``end_seq`` (one
counter for starts and ends), never by clock resolution.  A name or glob that matches nothing is
a failure that lists the spans that do exist.  Every failure is a :class:`TraceAssertionError`
whose text states the relation that broke with the exact numbers, then a text timeline of the
spans involved and the clock used.  The pytest ``atrace`` fixture delegates to these functions
and fills :attr:`TraceAssertionError.timeline_path`.  Nothing here imports pytest.  The
outline matcher behind :func:`assert_tree` is in ``_outline.py``.
"""

from __future__ import annotations

import collections
import difflib
import fnmatch
import itertools
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from ._model import _critical
from ._model._spans import KINDS, Span, Trace
from ._model._timeline import row_label
from ._model._waits import WaitProfile
from ._model._waits import wait_profile as _wait_profile
from ._testing._outline import Row, TreeMatcher, outline_size, parse_outline

if TYPE_CHECKING:
    from ._schedules._explore_search import ExploreFailure, explore

__all__ = [
    "ExploreFailure",
    "HasTrace",
    "SpanRef",
    "TraceAssertionError",
    "TraceSource",
    "assert_critical_path",
    "assert_duration",
    "assert_max_concurrency",
    "assert_min_concurrency",
    "assert_no_blocking",
    "assert_no_misuse",
    "assert_order",
    "assert_overlap",
    "assert_sequential",
    "assert_tree",
    "assert_within",
    "critical_path",
    "explore",
    "find_span",
    "find_spans",
    "wait_profile",
]

SpanRef: TypeAlias = str | Span
"""A span given by exact name, by glob (``*``, ``?``, ``[seq]``), or as a :class:`Span`."""


class HasTrace(Protocol):
    """Has a ``trace`` property: the object of ``asynctrace.tracing()``, the ``atrace`` fixture."""

    @property
    def trace(self) -> Trace: ...


TraceSource: TypeAlias = Trace | HasTrace
"""A :class:`Trace`, or an object whose ``trace`` property gives one (read once per assertion)."""

_VIRTUAL_TOLERANCE = 1e-9
_GLOB_CHARS = frozenset("*?[")
_LIST_LIMIT = 12
_TIMELINE_LIMIT = 20
_TIMELINE_WIDTH = 40
_MISSING = object()


class TraceAssertionError(AssertionError):
    """An assertion about a trace failed; the text explains the relation that broke.

    Attributes:
        trace: the trace the assertion looked at.
        spans: the spans involved (may be empty, e.g. for an unknown name).
        message: the explanation without the timeline path.
        timeline_path: path of a JSON timeline written for the failed test, or ``None``; the
            pytest fixture sets it after writing the file and it is appended to ``str(error)``.
    """

    def __init__(self, message: str, trace: Trace | None = None, spans: Sequence[Span] = ()):
        super().__init__(message)
        self.message = message
        self.trace = trace
        self.spans: tuple[Span, ...] = tuple(spans)
        self.timeline_path: str | None = None

    def __str__(self) -> str:
        if self.timeline_path is None:
            return self.message
        return f"{self.message}\nJSON timeline: {self.timeline_path}"


# ---------------------------------------------------------------- selection


def _matches(name: str, pattern: str) -> bool:
    # A name matches itself even when it holds glob characters (`[`), so exact names always work.
    return name == pattern or (
        not _GLOB_CHARS.isdisjoint(pattern) and fnmatch.fnmatchcase(name, pattern)
    )


def _as_trace(source: TraceSource) -> Trace:
    if isinstance(source, Trace):
        return source
    trace = getattr(source, "trace", None)
    if not isinstance(trace, Trace):
        msg = (
            f"trace={source!r} is neither a Trace nor has a .trace property giving one; pass the"
            " Trace, or the object from `with asynctrace.tracing() as t:`"
        )
        raise TypeError(msg)
    return trace


def _check_kind(kind: str | None) -> None:
    if kind is not None and kind not in KINDS:
        msg = f"kind={kind!r} is not a span kind; use one of {', '.join(KINDS)}"
        raise ValueError(msg)


def find_spans(
    trace: TraceSource, name_glob: str | None = None, kind: str | None = None, **attributes: object
) -> list[Span]:
    """The spans whose name equals or matches ``name_glob``, of ``kind``, with these attributes.

    A query, not an assertion: no match gives an empty list.  Spans come in start order.

    Raises:
        ValueError: ``kind`` is not one of the span kinds.
    """
    _check_kind(kind)
    trace = _as_trace(trace)
    return [
        s
        for s in trace.spans
        if (name_glob is None or _matches(s.name, name_glob))
        and (kind is None or s.kind == kind)
        and all(s.attributes.get(k, _MISSING) == v for k, v in attributes.items())
    ]


def find_span(trace: TraceSource, name: str, kind: str | None = None) -> Span:
    """The one span whose name equals or matches ``name`` (and of ``kind``, if given).

    Without ``kind``, when the name matches several spans of which exactly one is not an
    ``await`` span, that one is returned (awaits are named after what they wait on).

    Raises:
        TraceAssertionError: no span or several spans match; the message lists what exists.
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not this one
    trace = _as_trace(trace)
    found = find_spans(trace, name, kind)
    if len(found) > 1 and kind is None:
        # An await span is named after what it waits on: `gather(task1, task2)` is both the
        # gather and main's await of it.  The one span that is not an await is the one meant.
        not_awaits = [s for s in found if s.kind != "await"]
        found = not_awaits if len(not_awaits) == 1 else found
    if len(found) == 1:
        return found[0]
    if not found:
        raise _unknown(trace, name, kind)
    raise _ambiguous(trace, name, kind, found)


def _resolve_one(trace: Trace, ref: SpanRef) -> Span:
    if isinstance(ref, Span):
        return ref
    if not isinstance(ref, str):
        msg = f"span {ref!r} is a {type(ref).__name__}; pass a name, a glob or a Span"
        raise TypeError(msg)
    return find_span(trace, ref)


def _resolve_set(trace: Trace, refs: Sequence[SpanRef], kind: str | None) -> list[Span]:
    _check_kind(kind)
    if not refs:
        msg = "pattern=[] selects no spans; pass a name, a glob, a Span, or a list of them"
        raise ValueError(msg)
    seen: dict[int, Span] = {}
    for ref in refs:
        if isinstance(ref, Span):
            seen.setdefault(id(ref), ref)
            continue
        found = find_spans(trace, ref, kind)
        if not found:
            raise _unknown(trace, ref, kind)
        for span in found:
            seen.setdefault(id(span), span)
    return sorted(seen.values(), key=lambda s: (s.start, s.start_seq))


def _name_list(spans: Iterable[Span], limit: int = _LIST_LIMIT) -> str:
    """Names in first-seen order, deduplicated with a count, truncated after ``limit``."""
    counts: dict[str, int] = {}
    for s in spans:
        counts[s.name] = counts.get(s.name, 0) + 1
    shown = [n if c == 1 else f"{n} (x{c})" for n, c in list(counts.items())[:limit]]
    more = len(counts) - len(shown)
    return ", ".join(shown) + (f", ... ({more} more)" if more else "")


def _unknown(trace: Trace, pattern: str, kind: str | None) -> TraceAssertionError:
    what = (
        f"no span matches {pattern!r}"
        if kind is None
        else (f"no span of kind {kind!r} matches {pattern!r}")
    )
    if not trace.spans:
        return TraceAssertionError(f"{what}: the trace has no spans", trace)
    other_kinds = dict.fromkeys(s.kind for s in trace.spans if _matches(s.name, pattern))
    close = difflib.get_close_matches(pattern, sorted({s.name for s in trace.spans}), n=3)
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    if other_kinds:
        hint = f" (it matches spans of kind {', '.join(other_kinds)})"
    lines = [f"{what}{hint}; the trace has {len(trace.spans)} spans:"]
    for k in KINDS:
        of_kind = [s for s in trace.spans if s.kind == k]
        if of_kind:
            lines.append(f"  {k}: {_name_list(of_kind)}")
    return TraceAssertionError("\n".join(lines), trace)


def _ambiguous(
    trace: Trace, pattern: str, kind: str | None, found: Sequence[Span]
) -> TraceAssertionError:
    of_kind = "" if kind is None else f" of kind {kind!r}"
    lines = [
        f"{pattern!r} matches {len(found)} spans{of_kind}; pass one of them as a Span"
        " (from find_spans) or a narrower glob:"
    ]
    lines += [f"  {s.name} ({s.kind}) {_interval(s, 3)}" for s in found[:_LIST_LIMIT]]
    if len(found) > _LIST_LIMIT:
        lines.append(f"  ... ({len(found) - _LIST_LIMIT} more)")
    return TraceAssertionError("\n".join(lines), trace, found)


# ---------------------------------------------------------------- time and text


def _before(t1: float, q1: int, t2: float, q2: int) -> bool:
    """Whether event (t1, q1) happened strictly before (t2, q2): time first, then sequence."""
    return t1 < t2 or (t1 == t2 and q1 < q2)


def _nonempty(span: Span) -> bool:
    return _before(span.start, span.start_seq, span.end, span.end_seq)


def _precision(*values: float) -> int:
    """Digits after the point so that values that differ also print differently (3, 6 or 9)."""
    for digits in (3, 6, 9):
        shown: dict[str, float] = {}
        if all(shown.setdefault(f"{v:.{digits}f}", v) == v for v in values):
            return digits
    return 12


def _t(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"


def _interval(span: Span, digits: int) -> str:
    return f"[{_t(span.start, digits)}, {_t(span.end, digits)})"


def _tie(
    first: tuple[float, int, str], second: tuple[float, int, str], *, touch_note: str = ""
) -> str:
    """Explain how the recorder ordered two events at exactly the same time ('' if times differ)."""
    (t1, q1, e1), (t2, q2, e2) = first, second
    if t1 != t2:
        return ""
    if q1 == q2:
        return f"; equal times and equal seq {q1}{touch_note}"
    if q2 < q1:
        (q1, e1), (q2, e2) = (q2, e2), (q1, e1)
    return f"; equal times, the recorder saw {e1} (seq {q1}) before {e2} (seq {q2})"


def _labels(spans: Sequence[Span]) -> list[str]:
    names = [s.name if len(s.name) <= 32 else s.name[:29] + "..." for s in spans]
    dup = {n for n, c in collections.Counter(names).items() if c > 1}
    return [f"{n} #{s.span_id}" if n in dup else n for n, s in zip(names, spans, strict=True)]


def _render_involved(trace: Trace, spans: Sequence[Span], mark: float | None = None) -> str:
    """A compact text timeline: one line per span, an ASCII bar on an axis shared by the spans."""
    unique = list({id(s): s for s in spans}.values())
    if not unique:
        return f"clock: {trace.clock}"
    lo = min(s.start for s in unique)
    hi = max(s.end for s in unique)
    if mark is not None:
        lo, hi = min(lo, mark), max(hi, mark)
    scale = (hi - lo) / _TIMELINE_WIDTH or 1.0
    digits = _precision(lo, hi)
    shown = unique[:_TIMELINE_LIMIT]
    labels = _labels(shown)
    # one precision for the whole table, so that its columns line up
    table_digits = _precision(lo, hi, *(t for s in shown for t in (s.start, s.end)))
    intervals = [_interval(s, table_digits) for s in shown]
    lw, iw = max(map(len, labels)), max(map(len, intervals))
    lines = [
        f"timeline ({trace.clock} clock, {_t(lo, digits)} s to {_t(hi, digits)} s,"
        f" one column = {scale:.3g} s):"
    ]
    for span, label, iv in zip(shown, labels, intervals, strict=True):
        c0 = min(_TIMELINE_WIDTH - 1, max(0, math.floor((span.start - lo) / scale + 1e-9)))
        c1 = min(_TIMELINE_WIDTH, max(c0 + 1, math.ceil((span.end - lo) / scale - 1e-9)))
        bar = "." * c0 + "#" * (c1 - c0) + "." * (_TIMELINE_WIDTH - c1)
        status = "" if span.status == "ok" else f" {span.status}"
        lines.append(f"  {label:<{lw}}  {iv:<{iw}}  |{bar}|{status}")
    if len(unique) > len(shown):
        lines.append(f"  ... ({len(unique) - len(shown)} more spans)")
    if mark is not None:
        col = min(_TIMELINE_WIDTH - 1, max(0, math.floor((mark - lo) / scale + 1e-9)))
        lines.append(f"  {'':<{lw}}  {'':<{iw}}   {' ' * col}^ {_t(mark, _precision(mark))} s")
    return "\n".join(lines)


def _fail(
    trace: Trace, relations: Sequence[str], spans: Sequence[Span], mark: float | None = None
) -> TraceAssertionError:
    parts = ["\n".join(relations), "", _render_involved(trace, spans, mark)]
    if trace.dropped:
        parts.append(f"note: the recorder dropped {trace.dropped} spans; the trace is incomplete")
    return TraceAssertionError("\n".join(parts), trace, spans)


def _pair_text(a: Span, ev_a: str, b: Span, ev_b: str, verdict: str, tie: str) -> str:
    ta = a.end if ev_a == "ends" else a.start
    tb = b.end if ev_b == "ends" else b.start
    d = _precision(a.start, a.end, b.start, b.end)
    return (
        f"{a.name} {ev_a} at {_t(ta, d)} s, {b.name} {ev_b} at {_t(tb, d)} s: {verdict}"
        f" ({a.name} {_interval(a, d)} and {b.name} {_interval(b, d)}){tie}"
    )


def _spans_word(n: int) -> str:
    return f"{n} span" if n == 1 else f"{n} spans"


def _need(spans: Sequence[object], count: int, func: str) -> None:
    if len(spans) < count:
        msg = f"{func}() got {len(spans)} spans; pass at least {count} names, globs or Spans"
        raise TypeError(msg)


# ---------------------------------------------------------------- pairwise relations


def assert_overlap(trace: TraceSource, *spans: SpanRef) -> None:
    """Assert that every pair of the spans overlaps in time (each name/glob: exactly one span).

    ``a`` and ``b`` overlap when ``a`` starts before ``b`` ends and ``b`` starts before ``a``
    ends; at equal times the recorder's sequence decides, and intervals that only touch
    (``a.end == b.start`` with ``a`` ending first) do not overlap.
    """
    __tracebackhide__ = True
    trace = _as_trace(trace)
    _need(spans, 2, "assert_overlap")
    resolved = [_resolve_one(trace, ref) for ref in spans]
    broken = []
    for i, x in enumerate(resolved):
        for y in resolved[i + 1 :]:
            # Explain from the one that starts first.
            a, b = (y, x) if _before(y.start, y.start_seq, x.start, x.start_seq) else (x, y)
            if not _before(b.start, b.start_seq, a.end, a.end_seq):
                tie = _tie(
                    (a.end, a.end_seq, f"{a.name} end"),
                    (b.start, b.start_seq, f"{b.name} start"),
                    touch_note=": half-open intervals that touch do not overlap",
                )
                broken.append(_pair_text(a, "ends", b, "starts", "no overlap", tie))
            elif not (_nonempty(a) and _nonempty(b)):
                empty = a if not _nonempty(a) else b
                d = _precision(empty.start, empty.end)
                broken.append(
                    f"{empty.name} is empty {_interval(empty, d)}: an empty span overlaps nothing"
                )
    if broken:
        raise _fail(trace, broken, resolved)


def assert_sequential(trace: TraceSource, *spans: SpanRef) -> None:
    """Assert that each span ends before, or exactly when, the next one starts, in this order.

    Each name/glob must match exactly one span.  At equal times the recorder's sequence decides:
    the earlier one must have ended before the next one started.
    """
    __tracebackhide__ = True
    trace = _as_trace(trace)
    _need(spans, 2, "assert_sequential")
    resolved = [_resolve_one(trace, ref) for ref in spans]
    broken = []
    for a, b in itertools.pairwise(resolved):
        if _before(b.start, b.start_seq, a.end, a.end_seq):
            tie = _tie(
                (a.end, a.end_seq, f"{a.name} end"), (b.start, b.start_seq, f"{b.name} start")
            )
            verdict = f"not sequential, {b.name} starts before {a.name} ends"
            broken.append(_pair_text(a, "ends", b, "starts", verdict, tie))
    if broken:
        raise _fail(trace, broken, resolved)


def assert_order(trace: TraceSource, *spans: SpanRef, by: str = "start") -> None:
    """Assert that the spans start (``by="start"``) or end (``by="end"``) in the given order.

    Each name/glob must match exactly one span; equal times are ordered by the recorder's
    sequence; equal times with equal sequence numbers count as in order.
    """
    __tracebackhide__ = True
    trace = _as_trace(trace)
    if by not in ("start", "end"):
        msg = f"by={by!r} is not a span event; use by='start' or by='end'"
        raise ValueError(msg)
    _need(spans, 2, "assert_order")
    resolved = [_resolve_one(trace, ref) for ref in spans]
    ev = "starts" if by == "start" else "ends"
    broken = []
    for a, b in itertools.pairwise(resolved):
        ka = (a.start, a.start_seq) if by == "start" else (a.end, a.end_seq)
        kb = (b.start, b.start_seq) if by == "start" else (b.end, b.end_seq)
        if _before(kb[0], kb[1], ka[0], ka[1]):
            tie = _tie((*ka, f"{a.name} {by}"), (*kb, f"{b.name} {by}"))
            verdict = f"out of order by {by}, {b.name} {ev} first"
            broken.append(_pair_text(a, ev, b, ev, verdict, tie))
    if broken:
        raise _fail(trace, broken, resolved)


def assert_within(trace: TraceSource, child: SpanRef, parent: SpanRef) -> None:
    """Assert that ``child``'s interval lies inside ``parent``'s (time, not tree, containment).

    ``child`` must not start before ``parent`` starts nor end after ``parent`` ends; equal times
    are ordered by the recorder's sequence.
    """
    __tracebackhide__ = True
    trace = _as_trace(trace)
    c, p = _resolve_one(trace, child), _resolve_one(trace, parent)
    broken = []
    if _before(c.start, c.start_seq, p.start, p.start_seq):
        tie = _tie(
            (c.start, c.start_seq, f"{c.name} start"), (p.start, p.start_seq, f"{p.name} start")
        )
        verdict = f"not within, {c.name} starts before {p.name}"
        broken.append(_pair_text(c, "starts", p, "starts", verdict, tie))
    if _before(p.end, p.end_seq, c.end, c.end_seq):
        tie = _tie((p.end, p.end_seq, f"{p.name} end"), (c.end, c.end_seq, f"{c.name} end"))
        verdict = f"not within, {c.name} ends after {p.name}"
        broken.append(_pair_text(c, "ends", p, "ends", verdict, tie))
    if broken:
        raise _fail(trace, broken, [p, c])


def assert_duration(
    trace: TraceSource, span: SpanRef, seconds: float, tolerance: float | None = None
) -> None:
    """Assert that the span lasted ``seconds``, give or take ``tolerance`` seconds.

    The default tolerance is 1e-9 s under the virtual clock (loop time is exact) and
    ``0.05 + 0.1 * seconds`` otherwise (scheduler jitter on a busy CI machine).
    """
    __tracebackhide__ = True
    trace = _as_trace(trace)
    if seconds < 0:
        msg = f"seconds={seconds!r} is negative; pass the expected duration in seconds, >= 0"
        raise ValueError(msg)
    if tolerance is None:
        tolerance = _VIRTUAL_TOLERANCE if trace.clock == "virtual" else 0.05 + 0.1 * seconds
    elif tolerance < 0:
        msg = f"tolerance={tolerance!r} is negative; pass seconds >= 0, or None for the default"
        raise ValueError(msg)
    s = _resolve_one(trace, span)
    off = s.duration - seconds
    if abs(off) <= tolerance:
        return
    d = _precision(s.start, s.end, s.duration, seconds)
    status = f"; the span is {s.status}" if s.status != "ok" else ""
    text = (
        f"{s.name} lasted {_t(s.duration, d)} s {_interval(s, d)}, expected {_t(seconds, d)} s"
        f" +- {tolerance:g} s ({trace.clock} clock): off by {off:+.{d}f} s{status}"
    )
    raise _fail(trace, [text], [s])


# ---------------------------------------------------------------- concurrency


def _refs(pattern: SpanRef | Iterable[SpanRef]) -> list[SpanRef]:
    return [pattern] if isinstance(pattern, (str, Span)) else list(pattern)


def _describe(refs: Sequence[SpanRef], kind: str | None) -> str:
    text = ", ".join(repr(r if isinstance(r, str) else r.name) for r in refs)
    return text if kind is None else f"{text} (kind {kind})"


def _sweep(
    spans: Sequence[Span], until: int | None = None
) -> tuple[list[tuple[float, Span, int]], list[Span]]:
    """Each moment a span starts: (time, that span, how many are alive just after it started).

    With ``until`` (an index into those moments) it stops there and also returns the spans alive
    at that moment; counting first and listing once keeps big traces linear.
    """
    events = []
    for s in spans:
        if _nonempty(s):
            # At equal (time, seq), which only hand-built traces have, ends go first: half-open.
            events.append((s.start, s.start_seq, 1, s))
            events.append((s.end, s.end_seq, 0, s))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    alive: dict[int, Span] = {}
    moments = []
    for time, _seq, is_start, span in events:
        if not is_start:
            del alive[id(span)]
            continue
        alive[id(span)] = span
        moments.append((time, span, len(alive)))
        if until is not None and len(moments) > until:
            return moments, list(alive.values())
    return moments, []


def _alive_text(alive: Sequence[Span]) -> str:
    shown = alive[:_LIST_LIMIT]
    text = ", ".join(f"{lb} {_interval(s, 3)}" for lb, s in zip(_labels(shown), shown, strict=True))
    return text + (f", ... ({len(alive) - len(shown)} more)" if len(alive) > len(shown) else "")


def _check_n(n: int, lowest: int, func: str) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < lowest:
        msg = f"{func}() got n={n!r}; pass a whole number of spans >= {lowest}"
        raise ValueError(msg)


def assert_max_concurrency(
    trace: TraceSource, pattern: SpanRef | Iterable[SpanRef], n: int, *, kind: str | None = None
) -> None:
    """Assert that at no moment more than ``n`` of the matching spans are alive at once.

    ``pattern`` (a name, a glob, a Span, or an iterable of them) is a set: all its matches
    count; matching nothing is a failure.  Spans are alive on ``[start, end)``; at equal times
    the recorder's sequence decides.  The failure names the first moment the limit was exceeded
    and the spans alive then.
    """
    __tracebackhide__ = True
    trace = _as_trace(trace)
    _check_n(n, 0, "assert_max_concurrency")
    refs = _refs(pattern)
    spans = _resolve_set(trace, refs, kind)
    moments, _ = _sweep(spans)
    over = next((i for i, m in enumerate(moments) if m[2] > n), None)
    if over is None:
        return
    time, started, count = moments[over]
    alive = _sweep(spans, over)[1]
    peak_time, _, peak = max(moments, key=lambda m: m[2])
    text = (
        f"at most {_spans_word(n)} matching {_describe(refs, kind)} may be alive at once, but"
        f" {count} were at {_t(time, _precision(time))} s, when {started.name} started:"
        f" {_alive_text(alive)}; peak {peak} at {_t(peak_time, _precision(peak_time))} s"
    )
    raise _fail(trace, [text], spans, mark=time)


def assert_min_concurrency(
    trace: TraceSource, pattern: SpanRef | Iterable[SpanRef], n: int, *, kind: str | None = None
) -> None:
    """Assert that at some moment at least ``n`` of the matching spans are alive at once.

    Same selection and interval rules as :func:`assert_max_concurrency`; the failure names the
    peak that was reached, when it was first reached, and the spans alive then.
    """
    __tracebackhide__ = True
    trace = _as_trace(trace)
    _check_n(n, 1, "assert_min_concurrency")
    refs = _refs(pattern)
    spans = _resolve_set(trace, refs, kind)
    moments, _ = _sweep(spans)
    if any(m[2] >= n for m in moments):
        return
    head = f"at least {_spans_word(n)} matching {_describe(refs, kind)} should be alive"
    if not moments:
        text = f"{head} at once, but the {len(spans)} matching spans are all empty"
        raise _fail(trace, [text], spans)
    peak = max(range(len(moments)), key=lambda i: moments[i][2])
    time, _, count = moments[peak]
    text = (
        f"{head} at once, but the peak was {count}, first reached at"
        f" {_t(time, _precision(time))} s: {_alive_text(_sweep(spans, peak)[1])}"
    )
    raise _fail(trace, [text], spans, mark=time)


# ---------------------------------------------------------------- critical path


def critical_path(trace: TraceSource, span: SpanRef | None = None) -> list[Span]:
    """The spans whose ends set the end of ``span`` (default: the run), in time order.

    The fork-join critical path: through gathers, TaskGroups, awaited tasks, nested coroutines
    and thread jobs (see docs/analysis.md).  The list starts with ``span`` itself.
    """
    trace = _as_trace(trace)
    return _critical.critical_path(trace, None if span is None else _resolve_one(trace, span))


def path_text(trace: Trace, path: Sequence[Span]) -> list[str]:
    """The critical path as lines: each step's kind, name, time and share of the first's."""
    if not path:
        return ["critical path: none (no spans)"]
    total = path[0].duration
    digits = _precision(*(s.duration for s in path))
    lines = [f"critical path of {path[0].name} ({_t(total, digits)} s, {trace.clock} clock):"]
    depth = {id(path[0]): 0}
    for step in path[1:]:
        parent = step.parent
        level = depth.get(id(parent), 0) + 1 if parent is not None else 1
        depth[id(step)] = level
        share = f"{100 * step.duration / total:.0f}%" if total > 0 else "-"
        lines.append(
            f"  {'  ' * (level - 1)}{step.kind} {step.name}  {_t(step.duration, digits)} s  {share}"
        )
    return lines


def assert_critical_path(trace: TraceSource, *spans: SpanRef) -> None:
    """Assert that the spans are on the run's critical path, in this order.

    A name or glob is on it when a span it matches is; each must come after the one before.
    """
    __tracebackhide__ = True
    trace = _as_trace(trace)
    if not spans:
        msg = "assert_critical_path() got no spans; pass the names, globs or Spans expected on it"
        raise TypeError(msg)
    path = _critical.critical_path(trace)
    position = -1
    previous = ""
    for ref in spans:
        if isinstance(ref, Span):
            matching = [ref]
        else:
            if not isinstance(ref, str):
                msg = f"span {ref!r} is a {type(ref).__name__}; pass a name, a glob or a Span"
                raise TypeError(msg)
            matching = find_spans(trace, ref)
            if not matching:
                raise _unknown(trace, ref, None)
        label = ref.name if isinstance(ref, Span) else ref
        on_path = [i for i, step in enumerate(path) if any(step is m for m in matching)]
        if not on_path:
            relation = f"{label!r} is not on the critical path"
        elif on_path[-1] <= position:
            relation = (
                f"{label!r} is on the critical path, but before {previous!r}: the spans are"
                " not on it in that order"
            )
        else:
            position = min(i for i in on_path if i > position)
            previous = label
            continue
        raise TraceAssertionError("\n".join([relation, "", *path_text(trace, path)]), trace, path)


# ---------------------------------------------------------------- misuse and blocking


def assert_no_misuse(trace: TraceSource) -> None:
    """Assert that asyncio reported no misuse while recording: no task destroyed while
    pending, no task exception never retrieved (``misuse`` spans, see docs/analysis.md)."""
    __tracebackhide__ = True
    trace = _as_trace(trace)
    found = [s for s in trace.spans if s.kind == "misuse"]
    if found:
        lines = [f"asyncio reported {_spans_word(len(found)).replace('span', 'misuse')}:"]
        for span in found[:_LIST_LIMIT]:
            task = span.parent
            where = "" if task is None else f" in {row_label(task)}"
            if task is not None and task.kind == "task" and task.parent is not None:
                where += f" (made in {task.parent.name})"
            detail = span.attributes.get("asynctrace.misuse.detail")
            lines.append(
                f"  {span.name}{where}{f': {detail}' if detail else ''} at {_t(span.start, 3)} s"
            )
        raise _fail(trace, lines, [s.parent or s for s in found])


def assert_no_blocking(trace: TraceSource, threshold: float | None = None) -> None:
    """Assert that no step held the event loop (longer than ``threshold`` seconds, if given;
    else longer than the recording's blocked threshold: any ``blocked`` span)."""
    __tracebackhide__ = True
    trace = _as_trace(trace)
    found = [
        s
        for s in trace.spans
        if s.kind == "blocked" and (threshold is None or s.duration > threshold)
    ]
    if found:
        limit = "" if threshold is None else f" longer than {threshold:g} s"
        lines = [f"{_spans_word(len(found)).replace('span', 'step')} held the loop{limit}:"]
        for span in found[:_LIST_LIMIT]:
            owner = span.parent.name if span.parent is not None else "?"
            where = span.attributes.get("code.file.path")
            line = span.attributes.get("code.line.number")
            at = f" at {where}:{line}" if where else ""
            lines.append(f"  {_t(span.duration, 3)} s in {owner}{at}, from {_t(span.start, 3)} s")
        raise _fail(trace, lines, found)


# ---------------------------------------------------------------- waits


def wait_profile(trace: TraceSource) -> WaitProfile:
    """Where the waiting went: the awaits grouped by what they waited on and where.

    ``profile.groups`` are ``WaitGroup`` s (``what``, ``where``,
    ``count``, ``total``, ``mean``, ``p50``, ``p99``, ``max``), the costliest first;
    ``profile.blocked`` is the time blocking steps held the loop, ``profile.idle`` the time no
    task could run, of ``profile.wall``.
    """
    return _wait_profile(_as_trace(trace))


# ---------------------------------------------------------------- tree


def assert_tree(trace: TraceSource, outline: str, *, exact: bool = False) -> None:
    """Assert that the span tree contains the indented outline of names.

    Each line is a name or glob; a line indented under another names a direct child of the span
    matched by that line; listed siblings must appear in start order.  Top-level lines may match
    any span (the outline is a subtree, anchored anywhere).  With ``exact=False`` spans that are
    not listed are allowed; with ``exact=True`` the children of every listed span must all be
    listed.

    Raises:
        ValueError: the outline is empty or its indentation is inconsistent.
        TraceAssertionError: the outline does not match; the message is a diff of the outline
            (``-`` listed but not found, ``+`` found but not listed).
    """
    __tracebackhide__ = True
    trace = _as_trace(trace)
    roots = parse_outline(outline)
    matcher = TreeMatcher(trace, exact, _matches, _name_list)
    rows: list[Row] = []
    matched, extras, total = 0, 0, sum(outline_size(r) for r in roots)
    for root in roots:
        candidates = [s for s in trace.spans if _matches(s.name, root.pattern)]
        if not candidates:
            rows += matcher.missing(root, None, 0)
            continue
        results = [matcher.match(root, s, 0) for s in candidates]
        score, best_rows = max(results, key=lambda r: r[0])
        matched, extras = matched + score[0], extras - score[1]
        rows += best_rows
    if matched == total and extras == 0:
        return
    summary = f"{total - matched} of {total} outline lines not found"
    if extras:
        summary += f", {_spans_word(extras)} not listed (exact=True)"
    lines = [f"the span tree does not match the outline: {summary}"]
    lines += [
        f"{r.mark} {'  ' * r.depth}{r.text}" + (f"  <- {r.note}" if r.note else "") for r in rows
    ]
    spans = [r.span for r in rows if r.span is not None]
    raise _fail(trace, lines, spans)


def __getattr__(name: str) -> Any:
    """``explore`` and ``ExploreFailure``, imported when first used: they bring in asyncio and
    the recorder, which the assertions alone do not need."""
    if name in ("ExploreFailure", "explore"):
        from ._schedules import _explore_search

        value = getattr(_explore_search, name)
        globals()[name] = value
        return value
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
