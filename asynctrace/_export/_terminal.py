"""The timeline printed on stderr when ``asynctrace run`` ends.

Problem: after a run the user wants to see, without opening a viewer, which tasks overlapped,
how long each took and where they waited, in a terminal of any width, and a name chosen by the
traced program (a task name, a coroutine's ``__qualname__``) MUST NOT be able to move the cursor
or recolour the terminal.

Solution: one row per task (and per coroutine or gather call, indented under its task), a bar on
one shared time axis: ``█`` alive, ``░`` waiting in an await, ``▓`` blocked loop.  Every cell of
the bar is decided by the time it covers; rows past ``max_rows`` fold into a one-line summary.
Names are sanitized and measured in display columns (wide CJK characters count twice) so that
no line is ever wider than ``width``.
"""

from __future__ import annotations

import math
import operator
import os
import unicodedata
from collections import Counter
from collections.abc import Iterable
from itertools import compress

from .._model._critical import critical_path, path_steps
from .._model._spans import NEVER_AWAITED, STATUSES, Span, Trace
from .._model._timeline import activity, display_name, row_label, spans_of_kind
from .._model._waits import wait_profile
from ._bars import paint_rows, row_bounds
from ._sanitize import cap
from ._terminal_rows import Row, Selection, View, fold_rows, select_rows

__all__ = ["render_timeline"]

RUN, WAIT, BLOCK = "█", "░", "▓"
OPEN = "→"  # the last cell of a span still open when the trace ended
_COLORS = {"error": "31", "cancelled": "33", "timeout": "33", "unfinished": "35"}
_MIN_WIDTH = 24
_NUMBERS = 18  # two right-aligned numbers of 8 columns, each after a space


def sanitize(text: str) -> str:
    """Replace control and format characters (ESC, newline, bidi overrides) by visible escapes.

    Lone surrogates are escaped too (``\\udc80``), and the text is first cut to
    :data:`~_sanitize.MAX_CHARS` characters, so a 1 MB name costs no more than that.
    """
    text = cap(text)
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable() or ch == " ":
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    return "".join(out)


def _char_width(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def text_width(text: str) -> int:
    """Terminal columns that ``text`` (already sanitized, no escape codes) takes."""
    return len(text) if text.isascii() else sum(_char_width(ch) for ch in text)


def fit(text: str, cols: int) -> str:
    """``text`` cut to ``cols`` display columns (ending in ``…`` if cut) and padded to them."""
    if text_width(text) <= cols:
        return text + " " * (cols - text_width(text))
    out, used = [], 0
    for ch in text:
        w = _char_width(ch)
        if used + w > cols - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…" + " " * (cols - 1 - used)


_UNITS = ((1.0, 1.0, "s"), (1e-3, 1e3, "ms"), (1e-6, 1e6, "µs"), (0.0, 1e9, "ns"))


def _unit(seconds: float) -> tuple[float, str]:
    """The scale and unit that show ``seconds`` with one to four digits before the point."""
    return next((scale, unit) for least, scale, unit in _UNITS if seconds >= least)


def _num(seconds: float, scale: float) -> str:
    """A number for an 8-column cell: 3 decimals, fewer for big values, never an exponent."""
    value = seconds * scale
    for decimals, below in ((3, 1e4), (1, 1e6), (0, 1e8)):
        if abs(value) < below:
            return f"{value:.{decimals}f}"
    return f"{value:.2e}"


_START = operator.attrgetter("start")
_END = operator.attrgetter("end")
_STATUS = operator.attrgetter("status")
_CHARS = (" ", WAIT, RUN, BLOCK)  # by level: empty, waiting, running, blocked


def wants_color(stream: object) -> bool:
    """Whether the timeline written to ``stream`` is coloured: never with ``NO_COLOR`` set
    (https://no-color.org), always with ``FORCE_COLOR`` set (https://force-color.org; a CI
    log that shows colour), else when ``stream`` is a terminal.  Set means set and not empty."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


def _bar(levels: bytes, unfinished: bool) -> str:
    """One row's bar from its cells' levels (see ``_bars.py``); a group's shows, in each cell,
    its busiest task.

    An ``unfinished`` row (a span still open when the trace ended) ends in ``→``: it did not
    end there.
    """
    chars = [_CHARS[level] for level in levels]
    if unfinished:
        last = max((i for i, ch in enumerate(chars) if ch != " "), default=-1)
        if last >= 0:
            chars[last] = OPEN
    return "".join(chars)


def _ticks(t0: float, t1: float, cols: int) -> tuple[list[float], float]:
    """Round tick times between ``t0`` and ``t1`` about 7 columns or more apart, and the step."""
    raw = (t1 - t0) / max(1, cols // 7)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-9))
    first = math.ceil(t0 / step - 1e-9) * step
    count = int((t1 - first) / step + 1e-9) + 1
    return [first + k * step for k in range(count)], step


def _decimals(step: float) -> int:
    """The fewest decimals that write every multiple of ``step`` (1, 2, 2.5 or 5 times a power
    of ten) exactly: 0.25 -> 2, 0.5 -> 1, 2.5 -> 1, 25 -> 0."""
    return next((d for d in range(12) if abs(round(step, d) - step) <= 1e-9 * step), 12)


def _axis(
    t0: float, t1: float, cols: int, room: int, scale: float, unit: str, *, zero: bool = False
) -> tuple[str, str]:
    """The axis under the bars, and its labels (which may run ``room`` columns wide).

    Labels are trace times in ``unit``, with as many decimals as the tick step needs.
    """
    step = (t1 - t0) / cols
    line = ["─"] * cols
    labels = [" "] * room
    ticks, every = ([t0], 1.0) if zero else _ticks(t0, t1, cols)
    decimals = _decimals(every * scale)
    free = 0
    for t in ticks:
        col = min(cols - 1, round((t - t0) / step))
        line[col] = "┴"
        text = f"{t * scale:.{decimals}f}"
        if text.lstrip("-").strip("0.") == "":
            text = "0"
        if col >= free and col + len(text) <= room:
            labels[col : col + len(text)] = text
            free = col + len(text) + 1
    label = "".join(labels).rstrip()
    if len(label) + len(unit) + 1 <= room:
        label += " " + unit
    return "".join(line), label


def render_timeline(
    trace: Trace,
    *,
    width: int = 80,
    color: bool = False,
    max_rows: int = 40,
    filter: str | None = None,
    internals: bool = False,
    window: tuple[float | None, float | None] | None = None,
    depth: int | None = None,
    summary: bool = False,
) -> str:
    """The trace as text: a header, one bar per row on a shared time axis, and the axis.

    The axis runs from the first drawn row's start to the last one's end (the program's
    first span, not the process start), or over ``window``.  The filters change only what
    is drawn, never the trace.

    Args:
        trace: the trace to draw.
        width: the most columns any line may take (at least 24).
        color: colour rows by status with ANSI escapes (error red, cancelled/timeout yellow,
            unfinished magenta); without colour, the label says the status (``[error]``).
        max_rows: rows to draw before grouping and folding the rest (at least 1).
        filter: draw only spans whose name matches this glob (a substring when it has no
            ``*?[``), with their ancestors and descendants.
        internals: also draw tasks and calls whose code is asyncio's or the stdlib's.
        window: ``(start, end)`` seconds of trace time to draw; ``None``: that edge's default.
        depth: draw call rows at most this deep under their task (0: one row per task).
        summary: add the run's critical path (each step that set its end, with its share)
            and where the waiting went (the awaits that cost most, grouped by what and where).

    Raises:
        ValueError: ``width``, ``max_rows`` or ``depth`` too small, or an empty ``window``.
    """
    if width < _MIN_WIDTH:
        msg = f"width={width} is too narrow for a timeline; pass width >= {_MIN_WIDTH}"
        raise ValueError(msg)
    if max_rows < 1:
        msg = f"max_rows={max_rows} leaves no room for rows; pass max_rows >= 1"
        raise ValueError(msg)
    if depth is not None and depth < 0:
        msg = f"depth={depth} is negative; pass 0 for task rows only, or more"
        raise ValueError(msg)
    lo, hi = window or (None, None)
    if lo is not None and hi is not None and not lo < hi:
        msg = f"window={window!r} is empty; pass (start, end) with start < end, in seconds"
        raise ValueError(msg)
    run = next((s for s in trace.spans if s.kind == "run"), None)
    title = f"asynctrace · {sanitize(run.name) if run else 'trace'} · {sanitize(trace.clock)} clock"
    lines = [fit(title, width).rstrip()]
    if not trace.spans:
        lines.append(fit("no spans recorded", width).rstrip())
        return "\n".join(lines) + "\n"
    view = View(filter, internals, window, depth)
    sel = select_rows(trace, view)
    rows, folded = fold_rows(sel.units, max_rows)
    lines.extend(_wrap(_summary(trace), " · ", width))

    drawn = [r.spans for r in rows]
    first = trace.start
    first_start, last_end, bounds = row_bounds(drawn)
    t0 = lo if lo is not None else first if first_start is None else first_start
    t1 = hi if hi is not None else trace.end if last_end is None else last_end
    # Every span at one instant (a deadlock at t=0 under virtual time), or a range finer than
    # the float spacing at t0 (a hostile file's huge times): drawn as one instant.
    zero = not t1 - t0 > abs(t0) * 1e-12
    if zero:
        t1 = t0 + max(1.0, abs(t0) * 1e-9)
    scale, unit = _unit(t1 - t0)
    notes = _notes(sel, view, t0, t1, first, zero, scale, unit)
    lines.extend(_wrap(notes, " · ", width))
    if not rows:
        return "\n".join(lines) + "\n"

    # each row's statuses and how many of each, in the order first seen
    row_statuses = [Counter(map(_STATUS, spans)) for spans in drawn]
    labels = [_label(r, counts) for r, counts in zip(rows, row_statuses, strict=True)]
    numbers = width >= 50
    widest = max(text_width(sanitize(text)) + text_width(mark) for text, mark in labels)
    label_cols = max(8, min(widest, max(8, min(_MAX_LABEL, width * 2 // 5))))
    bar_cols = width - label_cols - 1 - (_NUMBERS if numbers else 0)
    step = (t1 - t0) / bar_cols
    if numbers:
        head = " " * (label_cols + 1 + bar_cols) + f" {'start ' + unit:>8} {'dur ' + unit:>8}"
        lines.append(head[:width].rstrip())

    awaits, blocked = spans_of_kind(trace, "await"), spans_of_kind(trace, "blocked")
    bars = paint_rows(drawn, awaits, blocked, t0, step, bar_cols)
    statuses: set[str] = set()
    rows_drawn = zip(labels, bars, row_statuses, bounds, strict=True)
    for (text, mark), levels, counts, (start, end) in rows_drawn:
        statuses.update(counts)
        text = sanitize(text)
        if mark and label_cols >= text_width(mark) + 4:
            label = fit(text, label_cols - text_width(mark)).rstrip() + mark
        else:
            label = text + mark
        line = fit(label, label_cols) + " " + _bar(levels, "unfinished" in counts)
        if numbers:
            line += f" {_num(start, scale):>8} {_num(end - start, scale):>8}"
        line = line.rstrip()
        code = _COLORS.get(_worst(counts)) if color else None
        lines.append(f"\x1b[{code}m{line}\x1b[0m" if code else line)
    if folded or any(r.members for r in rows):
        lines.extend(_fold(folded, trace, scale, unit, width))
    axis, ticks = _axis(t0, t1, bar_cols, width - label_cols - 1, scale, unit, zero=zero)
    pad = " " * (label_cols + 1)
    lines.append(pad + axis)
    lines.append((pad + ticks).rstrip())
    legend = [_LEGEND[s] for s in STATUSES if s in statuses and s in _LEGEND]
    if legend:
        lines.extend(_wrap(legend, " · ", width))
    if summary:
        lines.extend(_critical_lines(trace, width, scale, unit))
        lines.extend(_wait_lines(trace, width, scale, unit))
        lines.extend(_misuse_lines(trace, width))
    return "\n".join(lines) + "\n"


_PATH_STEPS = 12  # critical path steps shown (the longest); the rest are counted
_WAIT_GROUPS = 5  # wait profile lines shown


def _misuse_lines(trace: Trace, width: int) -> list[str]:
    """asyncio misuse noted while recording: how many of each, and the first few tasks."""
    found = spans_of_kind(trace, "misuse")
    by_what = Counter(s.name for s in found)
    lines = []
    for what, count in by_what.items():
        # a coroutine never awaited: its name and place; a task's misuse: the task
        places = []
        for span in found:
            if span.name != what:
                continue
            if what == NEVER_AWAITED:
                places.append(str(span.attributes.get("asynctrace.misuse.detail")))
            elif span.parent is not None:
                places.append(row_label(span.parent))
        more = f", ... ({len(places) - 3} more)" if len(places) > 3 else ""
        shown = ", ".join(places[:3]) + more
        plural = what.replace("task ", "tasks ", 1).replace("coroutine ", "coroutines ", 1)
        plural = plural if count > 1 else what
        lines.append(fit(sanitize(f"asyncio misuse: {count} {plural}: {shown}"), width).rstrip())
    return lines


def _wait_lines(trace: Trace, width: int, scale: float, unit: str) -> list[str]:
    """The awaits that cost most, grouped by what they waited on and where."""
    profile = wait_profile(trace)
    if not profile.groups:
        return []
    shown = profile.groups[:_WAIT_GROUPS]
    parts = [
        f"waiting: {_num(profile.awaited, scale)} {unit} awaited at"
        f" {len(profile.groups):,} place{'' if len(profile.groups) == 1 else 's'}"
        f" (top {len(shown)})",
        f"loop blocked {_num(profile.blocked, scale)} {unit}",
        f"no task running {_num(profile.idle, scale)} of {_num(profile.wall, scale)} {unit}",
    ]
    lines = _wrap([fit(sanitize(part), width).rstrip() for part in parts], " · ", width)
    numbers = [
        f"{g.count:>7,}× {_num(g.total, scale):>9} {_num(g.mean, scale):>8}"
        f" {_num(g.p50, scale):>8} {_num(g.p99, scale):>8} {_num(g.max, scale):>8}"
        for g in shown
    ]
    title = f"{'count':>8} {'total':>9} {'mean':>8} {'p50':>8} {'p99':>8} {'max':>8}"
    text_cols = max(8, width - 2 - len(numbers[0]) - 1)
    lines.append((" " * (2 + text_cols + 1) + title)[:width].rstrip())
    for group, number in zip(shown, numbers, strict=True):
        text = f"{group.what} at {group.where}" if group.where else group.what
        lines.append(("  " + fit(sanitize(text), text_cols) + " " + number)[:width].rstrip())
    return lines


def _critical_lines(trace: Trace, width: int, scale: float, unit: str) -> list[str]:
    """The run's critical path: each step where its time went, on its row, with its share."""
    path = critical_path(trace)
    steps = path_steps(path)
    if not steps:
        return []
    total = path[0].duration
    by_id = trace.by_id
    head = f"critical path {_num(total, scale)} {unit} (what set the end of {path[0].name}):"
    lines = [fit(sanitize(head), width).rstrip()]
    # the steps that took longest, in time order (a run of 20,000 tiny calls has no few); each
    # step's duration computed once, by map()
    durations = list(map(operator.sub, map(_END, steps), map(_START, steps)))
    by_duration = sorted(range(len(steps)), key=durations.__getitem__, reverse=True)
    longest = map(steps.__getitem__, by_duration[:_PATH_STEPS])
    shown = sorted(longest, key=lambda step: (step.start, step.start_seq))
    texts = [_step_text(step, by_id.get(step.track)) for step in shown]
    numbers = [
        f"{_num(step.start, scale):>8} {_num(step.duration, scale):>8}"
        f" {100 * step.duration / total if total > 0 else 0:>4.0f}%"
        for step in shown
    ]
    text_cols = max(8, width - 2 - max(map(len, numbers)) - 1)
    for text, number in zip(texts, numbers, strict=True):
        lines.append(("  " + fit(sanitize(text), text_cols) + " " + number)[:width].rstrip())
    if len(steps) > len(shown):
        kept = {id(step) for step in shown}
        rest = list(map(operator.not_, map(kept.__contains__, map(id, steps))))
        more = sum(compress(durations, rest))
        tail = f"  ... {sum(rest)} more steps, {_num(more, scale)} {unit}"
        lines.append(fit(tail, width).rstrip())
    # the path's spans' own code: before the first step (the program's start: its imports, its
    # set-up), and between steps
    lead = max(0.0, steps[0].start - path[0].start)
    between = total - sum(durations) - lead
    parts = [
        f"{_num(time, scale)} {unit} ({100 * time / total:.0f}%) {where}"
        for time, where in (
            (lead, "before the first (the program's start)"),
            (between, "between them"),
        )
        if total > 0 and time > 0.01 * total
    ]
    if parts:
        lines.append(fit("  and " + ", ".join(parts), width).rstrip())
    return lines


def _step_text(step: Span, owner: Span | None) -> str:
    """``ROW › STEP``; ``ROW › CALL › STEP`` when the step is in a call on its row (``ROW › … ›
    CALL › STEP`` when that call is itself in another): which of the row's calls it was; the
    row alone when the step is its own span (a thread job, a task's own code)."""
    row = row_label(owner) if owner is not None else "?"
    if step is owner:
        return row
    call = step.parent
    if call is None or call is owner or call.track != step.track:
        return f"{row} › {display_name(step)}"
    outer = call.parent
    nested = outer is not None and outer is not owner and outer.track == step.track
    return f"{row} › {'… › ' if nested else ''}{display_name(call)} › {display_name(step)}"


_MAX_LABEL = 60
_LEGEND = {
    "error": "[error] ended by an exception",
    "cancelled": "[cancelled] cancelled",
    "timeout": "[timeout] a deadline expired",
    "unfinished": f"[unfinished] {OPEN} still open when the trace ended",
}
_SEVERITY = {"ok": 0, "unfinished": 1, "cancelled": 2, "timeout": 3, "error": 4}


def _worst(statuses: Iterable[str]) -> str:
    return max(statuses, key=lambda st: _SEVERITY.get(st, 0))


def _label(row: Row, statuses: Counter[str]) -> tuple[str, str]:
    """A row's text (not yet sanitized) and its mark, which is never cut off: a group's count
    and the statuses of its spans, a span's status; ``statuses``: how many of the row's spans
    have each status."""
    span = row.span
    if row.members:
        text = "  " * row.depth + display_name_plain(span)
        failed = sorted((st, n) for st, n in statuses.items() if st != "ok")
        mark = ", ".join(f"{n:,} {st}" for st, n in failed)
        return text, f" ×{len(row.members):,}" + (f" [{mark}]" if mark else "")
    own = row_label(span) if row.depth == 0 or row.member else display_name_plain(span)
    text = "  " * row.depth + own
    return text, "" if span.status == "ok" else f" [{span.status}]"


def display_name_plain(span: Span) -> str:
    """``task1()``, ``gather(task1, task2)``: a call's name without its status."""
    return span.name if span.kind in ("gather", "run") else f"{span.name}()"


def _summary(trace: Trace) -> list[str]:
    """The header's facts about the whole trace (filters do not change them)."""
    first = trace.start
    wall = max(0.0, trace.end - first)
    scale, unit = _unit(wall) if wall > 0 else (1.0, "s")
    points = activity(trace)
    ends = [t for t, _, _ in points[1:]] + [trace.end] if points else []
    overlap = sum(
        end - t for (t, running, _), end in zip(points, ends, strict=True) if running >= 2
    )
    parts = [f"wall {_num(wall, scale)} {unit}" if wall > 0 else "wall 0 s"]
    if wall > 0:
        parts.append(f"overlap {_num(overlap, scale)} {unit} ({overlap / wall:.0%})")
    tasks = len(spans_of_kind(trace, "task"))
    parts += [_count(tasks, "task"), _count(len(trace.spans), "span")]
    open_spans = operator.countOf(map(_STATUS, trace.spans), "unfinished")
    if open_spans:
        parts[-1] += f" ({open_spans:,} still open)"
    if trace.dropped:
        parts.append(f"{trace.dropped:,} dropped")
    return parts


def _notes(
    sel: Selection,
    view: View,
    t0: float,
    t1: float,
    first: float,
    zero: bool,
    scale: float,
    unit: str,
) -> list[str]:
    """What the axis covers and what the view leaves out, when that is not everything."""
    notes = []
    if zero:
        notes.append(f"every span at t={_num(t0, scale)} {unit}")
    elif view.window is not None:
        notes.append(f"window {_num(t0, scale)}–{_num(t1, scale)} {unit}")
    elif t0 > first:
        notes.append(f"axis from {_num(t0, scale)} {unit} (the program's first span)")
    if view.filter is not None:
        what = _count(sel.matched, "span")
        notes.append(f"filter {sanitize(repr(view.filter))}: {what} match")
        if not sel.units:
            notes[-1] += ", no row to draw"
    if sel.internal:
        notes.append(f"{_count(sel.internal, 'asyncio-internal row')} hidden (--internals)")
    if sel.outside:
        limits = [
            name for name, on in (("depth", view.depth), ("window", view.window)) if on is not None
        ]
        notes.append(f"{_count(sel.outside, 'row')} beyond the {' and '.join(limits)}")
    return notes


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _wrap(parts: list[str], sep: str, width: int) -> list[str]:
    """Join ``parts`` with ``sep`` into as few lines of at most ``width`` columns as fit."""
    lines: list[str] = []
    for part in parts:
        if lines and text_width(lines[-1] + sep + part) <= width:
            lines[-1] += sep + part
        else:
            lines.append(fit(part, width).rstrip())
    return lines


def _fold(hidden: list[Row], trace: Trace, scale: float, unit: str, width: int) -> list[str]:
    """One or two summary lines for the rows that did not fit.

    Peak concurrency counts tasks *running*: alive and not waiting on another task or on a
    lock, semaphore, queue, event or future (:func:`~asynctrace._model._timeline.idle_waits`).
    """
    tasks = [s for r in hidden if r.depth == 0 for s in r.spans if s.kind == "task"]
    others = sum(len(r.spans) for r in hidden) - len(tasks)
    if not hidden:
        first = ""
    elif tasks:
        d = sorted(s.duration for s in tasks)
        first = (
            f"… {len(tasks):,} more tasks: durations min {_num(d[0], scale)}"
            f" / median {_num((d[(len(d) - 1) // 2] + d[len(d) // 2]) / 2, scale)}"
            f" / max {_num(d[-1], scale)} {unit}"
        )
        if others:
            first += f" (+{others:,} more rows)"
    else:
        first = f"… {len(hidden):,} more rows"
    peak_t, peak, then = 0.0, 0, 0
    for t, running, waiting in activity(trace):
        if running > peak:
            peak_t, peak, then = t, running, waiting
    second = (
        f"  peak concurrency {peak:,} running ({then:,} waiting) at t={_num(peak_t, scale)} {unit}"
    )
    if not first:
        return [fit(second.lstrip(" "), width).rstrip()]
    if text_width(first) + text_width(second) <= width:
        return [first + "," + second]
    return [fit(first, width).rstrip(), fit(second, width).rstrip()]
