"""The live view: a run's stream, drawn about once a second while the program writes it.

Problem: a server or a long job shows what it does only after it ends, and the question is
usually about now: which tasks are in flight, what each is waiting for and since when, is the
loop blocked, are errors piling up.

Solution: :func:`follow` polls the stream file (:class:`~asynctrace._stream._follow.Follower`) every
``interval`` seconds and feeds its events to a :class:`LiveState`: the spans that ended (all
counted: spans, errors, blocked steps and their time; built and kept only when they ended in
the last ``window`` seconds, and then at most the last :data:`MAX_RECENT`), the rows' names,
and the latest ``asynctrace_open`` event (what was in flight at the last flush; see
``_chrome_stream.py``).  On a terminal it redraws one screen in the alternate screen buffer
(the terminal's own content comes back at exit): a status line, the counts, the tasks in
flight, longest waiting first, with what each awaits and for how long, and the last
``window`` seconds as a timeline (``render_timeline`` over a window that moves with now).
Anywhere else it writes one line per poll.  Between two flushes, now is the last one's trace
time plus the wall time since it was written (monotonic clock only).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from .._commands._cli_args import UsageError
from .._export._chrome_load import read_metadata, unfinished_owners
from .._export._chrome_read import event_span
from .._export._sanitize import shown
from .._export._terminal import fit, render_timeline, sanitize, text_width, wants_color
from .._model._spans import Span, Trace
from .._model._timeline import row_label
from ._chrome_stream import OPEN_EVENT
from ._follow import Follower, is_followable

DEFAULT_WINDOW = 10.0
ENTER = "\x1b[?1049h\x1b[?25l"  # the alternate screen, cursor hidden
LEAVE = "\x1b[?25h\x1b[?1049l"  # cursor shown, the terminal's own screen back
MAX_RECENT = 5_000  # ended spans kept to draw: a busy run's last, not its whole window
MAX_LABELS = 50_000  # rows' names kept, the latest
STALE = 5.0  # seconds without a change before the status line says so


class LiveState:
    """What the live view knows of a run, from its stream's events (see :meth:`add`).

    Args:
        window: seconds of ended spans kept, and drawn as the timeline.
    """

    def __init__(self, window: float = DEFAULT_WINDOW) -> None:
        self.window = window
        self.reset()

    def reset(self) -> None:
        """Forget everything: the file was cut or replaced."""
        self.name = ""
        self.clock = "monotonic"
        self.spans = 0
        self.errors = 0
        self.blocked = 0
        self.blocked_seconds = 0.0
        self.bad = 0
        self.latest = 0.0
        self.finished: Span | None = None
        self.recent: list[Span] = []
        self.in_flight: list[Span] = []
        self.tasks = 0
        self.open_at = 0.0  # trace time of the in-flight snapshot
        self.open_wall_ns = 0
        self._origin = 0.0
        self._other: dict[str, Any] = {}
        self._tracks: dict[object, int] = {}
        self.labels: dict[int, str] = {}

    def add(self, events: list[dict[str, Any]]) -> None:
        """Take the events of one poll, in file order."""
        tracks, labels = read_metadata(events, self._other, True)
        self._tracks.update(tracks)
        self.labels.update(labels)
        for track in list(itertools.islice(self.labels, max(0, len(self.labels) - MAX_LABELS))):
            del self.labels[track]  # the oldest rows' names: a run of millions of tasks
        self.clock = str(self._other.get("clock", self.clock))
        try:
            self._origin = float(self._other.get("origin_us", 0))
        except (TypeError, ValueError):
            self.bad += 1
        slices = [(ev, _end_us(ev)) for ev in events if ev.get("ph") == "X"]
        last = max((end for _, end in slices), default=-math.inf)
        self.latest = max(self.latest, (last - self._origin) / 1e6)
        horizon_us = self._origin + (self.latest - self.window) * 1e6
        ended: set[object] = set()
        drawn = len(slices) - MAX_RECENT  # a busy run: only the last slices are drawn
        for i, (ev, end) in enumerate(slices):
            self._ended(ev, end >= horizon_us and i >= drawn, ended)
        for ev in events:
            if ev.get("ph") == "M" and ev.get("name") == OPEN_EVENT:
                self._open(ev.get("args"))
            elif ev.get("ph") == "M" and ev.get("name") == "process_name":
                args = ev.get("args")
                if isinstance(args, dict):
                    self.name = sanitize(str(args.get("name", ""))).removeprefix("asynctrace: ")
        # what ended is no longer in flight, though the last snapshot still says so
        self.in_flight = [s for s in self.in_flight if s.span_id not in ended]
        horizon = self.latest - self.window
        self.recent = [s for s in self.recent[-MAX_RECENT:] if s.end >= horizon]

    def _span(self, ev: dict[str, Any]) -> Span | None:
        args = ev.get("args")
        if not isinstance(args, dict) or "span_id" not in args:
            return None
        try:
            return event_span(ev, args, self._tracks, self._origin)
        except (KeyError, TypeError, ValueError, OverflowError):
            self.bad += 1
            return None

    def _ended(self, ev: dict[str, Any], recent: bool, ended: set[object]) -> None:
        """Count a slice; build its span only when it is drawn (a slice of the last
        ``window`` seconds, or the run's, which says the run ended): most are not."""
        args = ev.get("args")
        if not isinstance(args, dict) or "span_id" not in args:
            return
        kind = args.get("kind", ev.get("cat"))
        if kind == "run":
            self.finished = self._span(ev)
            if self.finished is not None:
                self.in_flight = []
                self.tasks = 0
            return
        self.spans += 1
        self.errors += args.get("status") == "error"
        if kind == "blocked":
            self.blocked += 1
            self.blocked_seconds += max(0.0, _end_us(ev) - _end_us(ev, 0)) / 1e6
        ended.add(args["span_id"])
        if recent:
            span = self._span(ev)
            if span is not None:
                self.recent.append(span)

    def _open(self, args: object) -> None:
        """An ``asynctrace_open`` event: what is in flight, or (no ``spans``) that it still is."""
        spans = args.get("spans", []) if isinstance(args, dict) else None
        if not isinstance(args, dict) or not isinstance(spans, list):
            self.bad += 1
            return
        try:
            self.open_at = (float(args["ts"]) - self._origin) / 1e6
            self.open_wall_ns = int(args["wall_ns"])
            self.tasks = int(args["tasks"])
        except (KeyError, TypeError, ValueError, OverflowError):
            self.bad += 1
            return
        if "spans" in args:
            found = (self._span(ev) for ev in spans if isinstance(ev, dict))
            self.in_flight = [s for s in found if s is not None]
        self.latest = max(self.latest, self.open_at)

    def now(self, wall_ns: int) -> float:
        """Trace time at wall-clock ``wall_ns``: the run's end once it ended."""
        if self.finished is not None:
            return self.finished.end
        if self.open_wall_ns and self.clock == "monotonic":
            since = max(0.0, (wall_ns - self.open_wall_ns) / 1e9)
            return max(self.latest, self.open_at + since)  # the clock ticks between flushes
        return self.latest

    def waiting(self) -> list[tuple[Span, Span | None, float]]:
        """The tasks in flight, longest waiting first: (task, its await or None, seconds).

        The seconds are counted to the last time the stream said they were still in flight
        (every flush does), not guessed past it: a short await is not shown as long.
        """
        awaits = {s.track: s for s in self.in_flight if s.kind == "await"}
        rows = []
        for task in self.in_flight:
            if task.kind == "task":
                aw = awaits.get(task.track)
                rows.append((task, aw, self.open_at - aw.start if aw is not None else 0.0))
        rows.sort(key=lambda row: -row[2])
        return rows

    def counts(self) -> str:
        """Spans, errors and blocked time so far."""
        blocked = f"blocked {self.blocked_seconds:.3f} s in {self.blocked:,} steps"
        return f"spans {self.spans:,} · errors {self.errors:,} · {blocked}"

    def tasks_text(self) -> str:
        """``1 task in flight``, ``5 tasks in flight``."""
        return f"{self.tasks:,} task{'' if self.tasks == 1 else 's'} in flight"

    def line(self, wall_ns: int, status: str) -> str:
        """The one line a poll writes when the output is not a terminal."""
        now = self.now(wall_ns)
        parts = [f"{now:.1f} s", self.tasks_text(), self.counts()]
        rows = self.waiting()
        if rows:
            task, aw, seconds = rows[0]
            what = sanitize(aw.name) if aw is not None else "running"
            parts.append(f"longest: {sanitize(row_label(task))} {what} {seconds:.1f} s")
        if status:
            parts.append(status)
        return " · ".join(parts)

    def screen(self, wall_ns: int, status: str, width: int, height: int, color: bool) -> str:
        """One screen: status, counts, the tasks in flight, the last seconds as a timeline."""
        now = self.now(wall_ns)
        title = f"asynctrace live · {sanitize(self.name) or 'waiting'} · {now:.1f} s"
        lines = [title + (f" · {status}" if status else ""), self.counts(), ""]
        rows = self.waiting()
        room = max(1, (height - 12) // 2)
        head = self.tasks_text() if self.finished is None else "run finished"
        lines.append(head + (" (longest waiting first)" if rows else ""))
        shown_rows = [(sanitize(row_label(t)), a, sec) for t, a, sec in rows[:room]]
        widest = max((text_width(label) for label, _, _ in shown_rows), default=0)
        name_cols = max(10, min(widest, width - 40))
        for label, aw, seconds in shown_rows:
            what = sanitize(aw.name) if aw is not None else "running"
            since = f"{seconds:>8.1f} s" if aw is not None else ""
            lines.append(f"{fit(label, name_cols)} {fit(what, 28)} {since}".rstrip())
        if self.tasks > min(room, len(rows)):
            lines.append(f"… {self.tasks - min(room, len(rows)):,} more")
        lines.append("")
        lines.extend(self._timeline(now, width, max(1, height - len(lines) - 8), color))
        shown = lines[:height]  # one more line would scroll the screen
        return "\n".join(fit(line, width) if "\x1b" not in line else line for line in shown)

    def _timeline(self, now: float, width: int, max_rows: int, color: bool) -> list[str]:
        start = max(0.0, now - self.window)
        if not now > start:
            return []
        spans = [_until(s, now) for s in [*self.recent, *self.in_flight] if s.end > start]
        spans = [s for s in spans if s.kind != "run"]
        rows = {s.track for s in spans}
        spans += unfinished_owners(spans, {t: self.labels[t] for t in rows if t in self.labels})
        trace = Trace(spans, clock=self.clock)
        text = render_timeline(
            trace, width=width, color=color, max_rows=max_rows, window=(start, now), depth=0
        )
        return [f"last {self.window:g} s", *text.splitlines()[1:]]


def _end_us(ev: dict[str, Any], dur: float = 1.0) -> float:
    """A slice's end (``dur=0``: its start), in its file's microseconds; -inf if malformed."""
    try:
        end = float(ev["ts"]) + dur * float(ev["dur"])
    except (KeyError, TypeError, ValueError, OverflowError):
        return -math.inf
    return end if math.isfinite(end) else -math.inf


def _until(span: Span, now: float) -> Span:
    """An in-flight span drawn up to now (a copy: the snapshot keeps its own end)."""
    if span.status != "unfinished" or span.end >= now:
        return span
    return dataclasses.replace(span, end=now, parent=None, children=[])


def follow(
    path: Path,
    out: TextIO,
    *,
    tty: bool,
    stop: threading.Event | None = None,
    interval: float = 1.0,
    window: float = DEFAULT_WINDOW,
) -> None:
    """Draw ``path``'s run on ``out`` every ``interval`` seconds until ``stop`` is set (or a
    KeyboardInterrupt, which propagates after the terminal is restored).

    Called on the thread that owns ``out``: the CLI's main thread for ``view --follow``, the
    live view's thread under ``run --live``.  With ``tty``, the alternate screen is used and
    always left.
    """
    follower = Follower(path)
    state = LiveState(window)
    stop = stop or threading.Event()
    if tty:
        out.write(ENTER)
    try:
        while True:
            try:
                text = _poll(follower, state, path, out if tty else None)
            except Exception as exc:  # a bug of ours: say so, and read the file again
                follower = Follower(path)
                state.reset()
                text = f"asynctrace: the live view failed (a bug, please report it): {exc!r}"
                text = ("\x1b[H" + text + "\x1b[J") if tty else text + "\n"
            out.write(text)
            out.flush()
            if stop.wait(interval):
                break
    finally:
        if tty:
            out.write(LEAVE)
            out.flush()


def _poll(follower: Follower, state: LiveState, path: Path, screen: TextIO | None) -> str:
    """Read what the file gained; the text to write: a ``screen`` of its size, or a line."""
    poll = follower.poll()
    if poll.reset:
        state.reset()
    state.add(poll.events)
    status = _status(follower, state, path)
    wall = time.time_ns()
    if screen is None:
        return state.line(wall, status) + "\n"
    cols, lines = _size(screen)
    text = state.screen(wall, status, cols, lines, wants_color(screen))
    return "\x1b[H" + text.replace("\n", "\x1b[K\n") + "\x1b[K\x1b[J"


def _status(follower: Follower, state: LiveState, path: Path) -> str:
    if follower.problem is not None:
        return f"{shown(str(path))} {follower.problem}"
    if state.finished is not None:
        return ""
    if follower.grew_at is not None and time.monotonic() - follower.grew_at > STALE:
        return f"no new data for {time.monotonic() - follower.grew_at:.0f} s"
    bad = follower.bad_lines + state.bad
    return f"{bad:,} lines skipped (not events)" if bad else ""


def _size(out: TextIO) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(out.fileno())
    except (OSError, ValueError, AttributeError):
        size = shutil.get_terminal_size()
    return max(40, size.columns), max(10, size.lines)


class LiveView:
    """``asynctrace run --live``: :func:`follow` on a daemon thread of the traced process.

    Args:
        path: the JSON stream the run's flusher writes.
        out: where to draw (stderr).
        tty: draw screens (True) or one line a poll (False).
    """

    def __init__(self, path: Path, out: TextIO, *, tty: bool) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(path, out, tty), name="asynctrace-live", daemon=True
        )

    def start(self) -> LiveView:
        """Start drawing; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop drawing and give the terminal back, after the poll it may be in."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self, path: Path, out: TextIO, tty: bool) -> None:
        try:
            follow(path, out, tty=tty, stop=self._stop)
        except Exception as exc:  # a bug of ours: say it once, the program runs on
            from .._tracing import report

            report(f"the live view stopped (a bug, please report it): {exc!r}")


def view_follow(trace: str, output: str | None) -> int:
    """``asynctrace view --follow``: the live view on stdout until Ctrl-C (or SIGTERM), then
    exit status 0.

    Raises:
        UsageError: ``-o`` was given too, or ``trace`` can never be a timeline file.
    """
    if output is not None:
        raise UsageError(
            "--follow draws on the terminal; drop -o, or drop --follow to write a page"
        )
    why = is_followable(Path(trace))
    if why is not None:
        raise UsageError(f"{shown(trace)} {why}; give the JSON file a run writes")

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        follow(Path(trace), sys.stdout, tty=sys.stdout.isatty())
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # `| head`: the reader is gone, which is no error of ours
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  # stdout's final flush must not fail
    return 0
