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
import statistics
import unicodedata

from ._sanitize import cap
from ._spans import Span, Trace
from ._timeline import activity, row_label

__all__ = ["render_timeline"]

RUN, WAIT, BLOCK = "█", "░", "▓"
_COLORS = {"error": "31", "cancelled": "33", "timeout": "33", "unfinished": "35"}
_MIN_WIDTH = 24
_NUMBERS = 18  # two right-aligned numbers of 8 columns, each after a space


def sanitize(text: str) -> str:
    """Replace control and format characters (ESC, newline, bidi overrides) by visible escapes.

    Lone surrogates are escaped too (``\\udc80``), and the text is first cut to
    :data:`~asynctrace._sanitize.MAX_CHARS` characters, so a 1 MB name costs no more than that.
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


def _unit(seconds: float) -> tuple[float, str]:
    if seconds >= 1:
        return 1.0, "s"
    if seconds >= 1e-3:
        return 1e3, "ms"
    return 1e6, "µs"


def _num(seconds: float, scale: float) -> str:
    value = seconds * scale
    return f"{value:.3f}" if abs(value) < 1e4 else f"{value:.4g}"


def _rows(trace: Trace) -> list[tuple[Span, int]]:
    """(span, depth) rows: each track's owner, then its coroutine and gather calls, nested."""
    by_track: dict[int, list[Span]] = {}
    for span in trace.spans:
        if span.kind in ("coroutine", "gather"):
            by_track.setdefault(span.track, []).append(span)
    rows: list[tuple[Span, int]] = []
    for owner in trace.tracks:
        calls = by_track.get(owner.span_id, [])
        if owner.kind == "run" and not calls and len(trace.tracks) > 1:
            continue  # the header already says what the run was
        rows.append((owner, 0))
        for span in calls:  # start order is depth-first order for nested calls
            depth, up = 1, span.parent
            while up is not None and up.track == span.track and up is not owner:
                depth += up.kind in ("coroutine", "gather")
                up = up.parent
            rows.append((span, depth))
    return rows


def _bar(span: Span, marks: list[Span], t0: float, step: float, cols: int) -> str:
    """The row's cells: each covers ``step`` seconds; its character is what filled it most."""
    alive = [0.0] * cols
    waiting = [0.0] * cols
    blocked = [0.0] * cols

    def paint(cells: list[float], a: float, b: float) -> None:
        if b < a:
            return
        first = max(0, min(cols - 1, int((a - t0) / step)))
        last = max(0, min(cols - 1, math.ceil((b - t0) / step) - 1))
        for i in range(first, max(first, last) + 1):
            lo, hi = t0 + i * step, t0 + (i + 1) * step
            cells[i] += max(min(b, hi) - max(a, lo), 1e-12)  # an instant still shows

    paint(alive, span.start, span.end)
    for m in marks:
        a, b = max(m.start, span.start), min(m.end, span.end)
        if b >= a:
            paint(blocked if m.kind == "blocked" else waiting, a, b)
    # a cell shows a span that fills at least half of it, so that bars end where they round to
    # and two spans that meet at t do not share a cell; a span shorter than that still shows
    shown = [a >= step / 2 for a in alive]
    if not any(shown) and any(alive):
        shown[alive.index(max(alive))] = True
    chars = []
    for i in range(cols):
        if not shown[i]:
            chars.append(" ")
        elif blocked[i] > 0:
            chars.append(BLOCK)
        elif waiting[i] * 2 >= alive[i]:
            chars.append(WAIT)
        else:
            chars.append(RUN)
    return "".join(chars)


def _ticks(t0: float, t1: float, cols: int) -> list[float]:
    span = t1 - t0
    raw = span / max(1, cols // 7)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(t0 / step) * step
    return [first + k * step for k in range(int((t1 - first) / step + 1e-9) + 1)]


def _axis(t0: float, t1: float, cols: int, room: int, scale: float, unit: str) -> tuple[str, str]:
    """The axis under the bars, and its labels (which may run ``room`` columns wide)."""
    step = (t1 - t0) / cols
    line = ["─"] * cols
    labels = [" "] * room
    free = 0
    for t in _ticks(t0, t1, cols):
        col = min(cols - 1, round((t - t0) / step))
        line[col] = "┴"
        text = f"{t * scale:g}"
        if col >= free and col + len(text) <= room:
            labels[col : col + len(text)] = text
            free = col + len(text) + 1
    label = "".join(labels).rstrip()
    if len(label) + len(unit) + 1 <= room:
        label += " " + unit
    return "".join(line), label


def render_timeline(
    trace: Trace, *, width: int = 80, color: bool = False, max_rows: int = 40
) -> str:
    """The trace as text: a header, one bar per row on a shared time axis, and the axis.

    Args:
        trace: the trace to draw.
        width: the most columns any line may take (at least 24).
        color: colour rows by status with ANSI escapes (error red, cancelled/timeout yellow).
        max_rows: rows to draw before folding the rest into a summary (at least 1).

    Raises:
        ValueError: ``width`` or ``max_rows`` too small.
    """
    if width < _MIN_WIDTH:
        msg = f"width={width} is too narrow for a timeline; pass width >= {_MIN_WIDTH}"
        raise ValueError(msg)
    if max_rows < 1:
        msg = f"max_rows={max_rows} leaves no room for rows; pass max_rows >= 1"
        raise ValueError(msg)
    run = next((s for s in trace.spans if s.kind == "run"), None)
    title = f"asynctrace · {sanitize(run.name) if run else 'trace'} · {sanitize(trace.clock)} clock"
    lines = [fit(title, width).rstrip()]
    tasks = [s for s in trace.spans if s.kind == "task"]
    if not trace.spans:
        lines.append(fit("no spans recorded", width).rstrip())
        return "\n".join(lines) + "\n"
    t0 = min(s.start for s in trace.spans)
    # far from 0 (a hand-made file), t0 + 1e-9 == t0: the next float keeps wall > 0
    t1 = max(trace.end, t0 + 1e-9, math.nextafter(t0, math.inf))
    wall = t1 - t0
    scale, unit = _unit(wall)
    points = activity(trace)
    ends = [t for t, _, _ in points[1:]] + [t1] if points else []
    overlap = sum(
        end - t for (t, running, _), end in zip(points, ends, strict=True) if running >= 2
    )
    parts = [
        f"wall {_num(wall, scale)} {unit}",
        f"overlap {_num(overlap, scale)} {unit} ({overlap / wall:.0%})",
        _count(len(tasks), "task"),
        _count(len(trace.spans), "span"),
    ]
    if trace.dropped:
        parts.append(f"{trace.dropped:,} dropped")
    lines.extend(_wrap(parts, " · ", width))

    numbers = width >= 50
    label_cols = max(8, min(28, width // 3))
    bar_cols = width - label_cols - 1 - (_NUMBERS if numbers else 0)
    step = wall / bar_cols
    if numbers:
        head = " " * (label_cols + 1 + bar_cols) + f" {'start':>8} {'dur':>8}"
        lines.append(head[:width].rstrip())

    marks: dict[int, list[Span]] = {}
    for span in trace.spans:
        if span.kind in ("await", "blocked"):
            marks.setdefault(span.track, []).append(span)
    rows = _rows(trace)
    shown = rows if len(rows) <= max_rows else rows[: max(1, max_rows - 1)]
    for span, depth in shown:
        label = "  " * depth + (row_label(span) if depth == 0 else _call_label(span))
        bar = _bar(span, marks.get(span.track, []), t0, step, bar_cols)
        line = fit(sanitize(label), label_cols) + " " + bar
        if numbers:
            line += f" {_num(span.start - t0, scale):>8} {_num(span.duration, scale):>8}"
        line = line.rstrip()
        code = _COLORS.get(span.status) if color else None
        lines.append(f"\x1b[{code}m{line}\x1b[0m" if code else line)
    if len(shown) < len(rows):
        lines.extend(_fold(rows[len(shown) :], points, scale, unit, width))
    axis, labels = _axis(t0, t1, bar_cols, width - label_cols - 1, scale, unit)
    pad = " " * (label_cols + 1)
    lines.append(pad + axis)
    lines.append((pad + labels).rstrip())
    return "\n".join(lines) + "\n"


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


def _call_label(span: Span) -> str:
    return span.name if span.kind == "gather" else f"{span.name}()"


def _fold(
    hidden: list[tuple[Span, int]],
    points: list[tuple[float, int, int]],
    scale: float,
    unit: str,
    width: int,
) -> list[str]:
    """One or two summary lines for the rows that did not fit."""
    tasks = [s for s, _ in hidden if s.kind == "task"]
    others = len(hidden) - len(tasks)
    if tasks:
        d = sorted(s.duration for s in tasks)
        first = (
            f"… {len(tasks):,} more tasks: durations min {_num(d[0], scale)}"
            f" / median {_num(statistics.median(d), scale)} / max {_num(d[-1], scale)} {unit}"
        )
        if others:
            first += f" (+{others:,} more rows)"
    else:
        first = f"… {len(hidden):,} more rows"
    peak_t, peak = 0.0, 0
    for t, running, _ in points:
        if running > peak:
            peak_t, peak = t, running
    second = f"  peak concurrency {peak:,} running at t={_num(peak_t, scale)} {unit}"
    if text_width(first) + text_width(second) <= width:
        return [first + "," + second.lstrip(" ").join(("  ", ""))]
    return [fit(first, width).rstrip(), fit(second, width).rstrip()]
