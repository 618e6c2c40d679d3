"""From the recorder's tuples to a :class:`Trace`: names, lines and attributes, at export time.

Problem: the hot path stores code objects, float delays and span ids, not names.

Solution: :func:`build_trace` resolves each record once, with caches per code object and per
(code, offset), links awaits on a gather into that gather, and closes the spans still open
(tasks still pending, the await each of them is in) at the build time as ``unfinished``.
"""

from __future__ import annotations

import asyncio
import itertools
import operator
import os
from collections import Counter
from collections.abc import Callable, Iterable
from types import CodeType
from typing import Any

from .._core import _coro, _held, _instrument
from .._core._coro import (
    K_AWAIT,
    K_BLOCKED,
    K_CORO,
    K_GATHER,
    K_HELD,
    K_MISUSE,
    K_RUN,
    K_TASK,
    K_THREAD,
    AdoptionMark,
    FnInfo,
    Rec,
    RecordList,
    copy_records,
    speedups,
)
from .._core._record import Recorder
from ._source import await_expression
from ._spans import AWAITED_SPAN, KINDS, TASK_THREAD, Span, Trace, gc_paused, quick_span

_ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep
_WAIT_FOR = "asyncio.wait_for"  # an expiry of it is two awaits, merged (see below)
_EXECUTOR_CALL = ".run_in_executor("  # in the name of an await on an executor's future
_FILE, _LINE, _AWAITED = "code.file.path", "code.line.number", "asynctrace.awaited"
_CALL_KINDS = frozenset((K_TASK, K_CORO))
_NAME = operator.attrgetter("name")
_Place = tuple[str, dict[str, object]] | None  # an await's name and attributes; None: one by one
# asyncio's private coroutines, named for the public call that awaits them.
_ASYNCIO_PUBLIC = {"_wait_for_one": "as_completed", "_wait": "wait", "_cancel_and_wait": "wait_for"}


class _Names:
    """Caches for what code objects and code offsets mean."""

    def __init__(self) -> None:
        self._lines: dict[tuple[CodeType, int], int] = {}
        self.functions: dict[Any, tuple[str, dict[str, object]]] = {}
        self.awaits: dict[Any, str | None] = {}  # for the C builder: quick_await_name() by what

    def function(self, what: Any) -> tuple[str, dict[str, object]]:
        """:func:`_fn_attributes`, once per function (the caller MUST NOT change the dict)."""
        try:
            return self.functions[what]
        except KeyError:
            found = self.functions[what] = _fn_attributes(what)
            return found
        except TypeError:  # not hashable: a hand-made record
            return _fn_attributes(what)

    def line(self, code: CodeType, lasti: int) -> int:
        """The line at byte offset ``lasti`` of ``code``; its first line for an unknown offset."""
        key = (code, lasti)
        line = self._lines.get(key)
        if line is None:
            line = code.co_firstlineno
            for start, end, number in code.co_lines():
                if start <= lasti < end and number is not None:
                    line = number
                    break
            self._lines[key] = line
        return line


def qualname(code: CodeType) -> str:
    """The qualified name of a code object (``co_qualname`` from Python 3.11)."""
    return str(getattr(code, "co_qualname", code.co_name))


def short_name(qualified: str) -> str:
    """A span name: the qualified name after its last ``<locals>.`` (``main``, ``Cls.run``)."""
    return qualified.rsplit("<locals>.", 1)[-1]


def awaited_code_name(code: CodeType) -> str:
    """What awaiting a coroutine of this code waits on: ``asyncio.sleep(0)``, ``Queue.get``."""
    if code is _coro._SLEEP_CODE:
        return "asyncio.sleep(0)"
    if code in _instrument.PUBLIC_NAMES:
        return _instrument.PUBLIC_NAMES[code]
    name = short_name(qualname(code))
    if code.co_filename.startswith(_ASYNCIO_DIR) and "." not in name:
        return f"asyncio.{_ASYNCIO_PUBLIC.get(name, name)}"
    return name


def await_name(what: float | CodeType) -> str:
    """The name of an await of a delay (``asyncio.sleep(0.5)``) or of a coroutine's code."""
    if isinstance(what, float):
        return f"asyncio.sleep({what:g})"
    return awaited_code_name(what)


def quick_await_name(what: float | CodeType) -> str | None:
    """:func:`await_name` for the builders' loops (C and Python); None: an await built one by
    one, as naming it needs other spans (``to_thread``, a ``wait_for`` that may have expired)."""
    if what is _instrument.TO_THREAD_CODE:
        return None
    name = await_name(what)
    return None if name == _WAIT_FOR else name


def _fn_attributes(what: Any) -> tuple[str, dict[str, object]]:
    if isinstance(what, FnInfo):
        attrs: dict[str, object] = {
            "code.function.name": qualname(what.code),
            _FILE: what.code.co_filename,
            _LINE: what.code.co_firstlineno,
        }
        if what.attributes:
            attrs.update(what.attributes)
        return what.name, attrs
    if isinstance(what, CodeType):
        what = _instrument.STANDS_IN_FOR.get(what, what)
        return short_name(qualname(what)), {
            "code.function.name": qualname(what),
            _FILE: what.co_filename,
            _LINE: what.co_firstlineno,
        }
    return str(what), {}


def _status(status: Any) -> tuple[Any, str | None, dict[str, object]]:
    if status is None:
        return "ok", None, {}
    kind, exc_type, message = status
    error = f"{exc_type}: {message}" if message else exc_type
    return kind, error, {"exception.type": exc_type, "exception.message": message}


def _open_records(
    recorder: Recorder, now: float, roots: list[_coro.TaskRoot] | None = None
) -> list[Rec]:
    """Records for what is still open: pending tasks, their coroutine chain and await, gathers.

    With ``roots``, only those tasks, and the gathers and holds on their rows.
    """
    records: list[Rec] = []
    unfinished = ("unfinished", "", "")
    for root in recorder.live_roots() if roots is None else roots:
        if root._task_name is None:
            continue
        call = root._top
        while call is not root:
            # a call merged into its task has no span of its own; an adoption mark is none
            if call._sid != root._sid and not isinstance(call, AdoptionMark):
                records.append(
                    (
                        K_CORO,
                        call._sid,
                        call._parent,
                        root._sid,
                        call._start,
                        now,
                        recorder.next_seq(),
                        call._info,
                        None,
                        0,
                        unfinished,
                        None,
                    )
                )
            call = call._outer
        aw_t = root._aw_t
        # While its task runs (a snapshot taken by the task itself), a root's last await has
        # already been recorded: the slots are only overwritten at the next suspension.
        running = bool(getattr(root._coro, "cr_running", False))
        if aw_t is not None and aw_t is not _coro._NOT_STARTED and not running:
            what = root._aw_what
            if what.__class__ is not CodeType and what.__class__ is not float:
                what = _coro._reduce_awaited(what)
            # fmt: off
            records.append((K_AWAIT, root._aw_sid, root._aw_parent, root._sid, aw_t, now,
                            recorder.next_seq(), what, None, root._aw_lasti, unfinished, None))
            # fmt: on
        records.append(
            (
                K_TASK,
                root._sid,
                root._parent,
                root._sid,
                root._start,
                now,
                recorder.next_seq(),
                root._info,
                None,
                0,
                unfinished,
                root._task_name(),
            )
        )
    rows = None if roots is None else {root._sid for root in roots}
    for sid, rec in list(_instrument.open_gathers.items()):
        if sid > recorder.run_sid and (rows is None or rec[3] in rows):
            records.append((*rec[:5], now, recorder.next_seq(), *rec[7:10], unfinished, None))
    for sid, rec in list(_held.open_holds.items()):
        if sid > recorder.run_sid and (rows is None or rec[3] in rows):
            records.append((*rec[:5], now, recorder.next_seq(), *rec[7:10], unfinished, rec[11]))
    return records


def build_trace(recorder: Recorder) -> Trace:
    """Build the span tree of everything ``recorder`` holds, open spans included."""
    recorder.trim()
    now = recorder.end if recorder.end is not None else recorder.clock()
    records = copy_records(recorder.records)
    records.extend(_open_records(recorder, now))
    records.append(recorder.run_record())
    with gc_paused():  # tens of thousands of new objects: collections would only slow it
        return Trace(
            SpanBuilder(recorder).build(records),
            clock=recorder.clock_name,
            epoch_ns=recorder.epoch_ns,
            dropped=recorder.dropped,
        )


def open_codes(recorder: Recorder) -> dict[int, CodeType]:
    """The code of every task and traced call still running: awaits in them need it for lines."""
    codes: dict[int, CodeType] = {}
    for root in recorder.live_roots():
        if root._task_name is None:  # ended (or not yet started): no code runs in it
            continue
        call = root._top
        while True:
            info = call._info
            code = info.code if isinstance(info, FnInfo) else info
            if isinstance(code, CodeType):
                codes[call._sid] = code
            if call is root:
                break
            call = call._outer
    return codes


if speedups is not None:
    speedups.configure_build(FnInfo)


class SpanBuilder:
    """Turns records into spans: all at once, or batch after batch while a run is streamed.

    A record can name spans built before it: an await the task or gather it waited on, a gather
    its children, an await its parent's code (for its line).  Within one batch all of these are
    found; across batches the builder remembers the last ``remember`` tasks and gathers it built,
    holds a gather back one batch for the await on it to nest in it, and the caller passes the
    codes of the spans still open (:func:`open_codes`).  One thing only a single batch does:
    merging the two halves of a ``wait_for`` expiry.  With ``place=False`` the spans are not
    placed in OpenTelemetry traces (a snapshot of what is open, which is built again later).
    """

    def __init__(self, recorder: Recorder, *, remember: int = 0, place: bool = True) -> None:
        self.origin = recorder.origin
        self.remember = remember
        self._traces = recorder.traces if place else None
        self._names = _Names()
        self._recent: dict[int, Span] = {}  # insertion-ordered: the oldest go first
        self._held: dict[int, Span] = {}
        self._threads = recorder.task_threads

    def build(
        self,
        records: RecordList,
        codes: dict[int, CodeType] | None = None,
        *,
        final: bool = True,
    ) -> list[Span]:
        """The spans of ``records``; ``codes`` maps open spans' ids to their code.

        With ``remember`` and not ``final``, a gather that no await of this batch waited on is
        held back until the next batch, where the await on it (the awaiting task resumes just
        after the gather ends) nests in it as in a single build.
        """
        codes = dict(codes) if codes else {}
        spans: dict[int, Span] = self._held  # gathers held back from the last batch first
        self._held = {}
        awaits: list[tuple[Span, Any]] = []  # the awaits named below, with what they awaited
        gathers: list[tuple[Span, Any]] = []

        def build_one(rec: Rec) -> None:
            span = self._span(rec, codes)
            spans[span.span_id] = span
            if rec[0] == K_AWAIT:
                awaits.append((span, rec[7]))
            elif rec[0] == K_GATHER:
                gathers.append((span, rec[7]))

        cache = self._names
        if speedups is not None and isinstance(records, speedups.Records):
            # fmt: off
            speedups.build_spans(records, self.origin, codes, build_one, _fn_attributes,
                                 quick_await_name, cache.functions, cache.awaits, spans)
            # fmt: on
        else:
            self._build_python(records, codes, spans, build_one)
        for sid, thread in self._threads.items():  # tasks started off the main thread
            task = spans.get(sid)
            if task is not None and task.kind == "task":
                task.attributes[TASK_THREAD] = thread
        recent = self._recent
        for span, children in gathers:
            found = list(map(spans.get, children))
            if None in found:  # a child built in an earlier batch, or never
                found = [spans.get(c) or recent.get(c) for c in children]
            span.name = "gather(" + _summarize(map(_NAME, filter(None, found))) + ")"
        for span, what in awaits:
            _name_await(span, what, spans, recent)
        _name_thread_awaits(awaits, spans)
        _merge_wait_for_timeouts([span for span, _ in awaits], spans)
        if self.remember and not final:
            awaited = {what[1] for _, what in awaits if isinstance(what, tuple)}
            for span, _ in gathers:
                if span.span_id not in awaited:
                    self._held[span.span_id] = spans.pop(span.span_id)
        if self.remember:
            for span in spans.values():
                if span.kind in ("task", "gather"):
                    recent[span.span_id] = span
            for sid in list(itertools.islice(recent, max(0, len(recent) - self.remember))):
                del recent[sid]
        built = list(spans.values())
        if self._traces is not None:
            self._traces.place(built, bool(self.remember))
        return built

    def _build_python(
        self,
        records: list[Rec],
        codes: dict[int, CodeType],
        spans: dict[int, Span],
        build_one: Callable[[Rec], None],
    ) -> None:
        """What ``_speedups.build_spans`` does (``_cbuild.c``), in Python: the spans of nearly
        every record (a task's, a call's, an await's on a delay or a coroutine, with no error)
        made here, every other record's by ``build_one``, in record order."""
        # Awaits and blocked steps store an offset in their parent span's code: find it.
        for rec in records:
            if rec[0] in _CALL_KINDS:
                what = rec[7]
                code_of = what.code if isinstance(what, FnInfo) else what
                if isinstance(code_of, CodeType):
                    codes[rec[1]] = code_of
        origin = self.origin
        function = self._names.function
        functions = self._names.functions
        places: dict[tuple[int, int, int], _Place] = {}
        last_at: dict[int, tuple[CodeType, Any, _Place]] = {}  # by offset: code, what, place
        for rec in records:
            kind, sid, parent, track, start, end, end_seq, what, code, lasti, status, extra = rec
            if status is not None or code is not None:
                build_one(rec)
            elif kind == K_AWAIT and (what.__class__ is float or what.__class__ is CodeType):
                code = codes.get(parent)
                if code is None:
                    build_one(rec)
                    continue
                # Awaits at one place on one thing are alike: keyed by identity, as in C.  The
                # last place at each offset is tried first: it nearly always is the one, and a
                # key's tuple costs several times the rest of the lookup.
                last = last_at.get(lasti)
                if last is not None and last[0] is code and last[1] is what:
                    place = last[2]
                else:
                    key = (id(code), lasti, id(what))
                    try:
                        place = places[key]
                    except KeyError:
                        place = places[key] = self._await_place(code, lasti, what)
                    last_at[lasti] = (code, what, place)
                if place is None:
                    build_one(rec)
                    continue
                name, attrs = place
                # fmt: off
                spans[sid] = quick_span(sid, parent, "await", name, start - origin,
                                        end - origin, track, "ok", None, attrs.copy(), sid,
                                        end_seq)
                # fmt: on
            elif kind in _CALL_KINDS:
                try:  # function(what), its cache read here: a call less for each of 20,000
                    name, fn_attrs = functions[what]
                except (KeyError, TypeError):
                    name, fn_attrs = function(what)
                attrs = fn_attrs.copy()
                if kind == K_TASK:
                    attrs["asynctrace.task.name"] = extra
                # fmt: off
                spans[sid] = quick_span(sid, parent, KINDS[kind], name, start - origin,
                                        end - origin, track, "ok", None, attrs, sid, end_seq)
                # fmt: on
            else:
                build_one(rec)

    def _await_place(self, code: CodeType, lasti: int, what: float | CodeType) -> _Place:
        """The name and attributes of awaits on ``what`` at ``code``'s ``lasti``; None: built
        one by one (see :func:`quick_await_name`)."""
        name = quick_await_name(what)
        if name is None:
            return None
        line = self._names.line(code, lasti)
        return name, {_FILE: code.co_filename, _LINE: line, _AWAITED: name}

    def _span(self, rec: Rec, codes: dict[int, CodeType]) -> Span:
        kind, sid, parent, track, start, end, end_seq, what, code, lasti, status, extra = rec
        state: Any
        error: str | None
        attrs: dict[str, object]
        if status is None:  # nearly every span: no call for it
            state, error, attrs = "ok", None, {}
        else:
            state, error, attrs = _status(status)
        if kind in (K_TASK, K_CORO):
            name, fn_attrs = self._names.function(what)
            attrs.update(fn_attrs)
            if kind == K_TASK:
                attrs["asynctrace.task.name"] = extra
        elif kind == K_THREAD:
            name = what
            attrs["code.function.name"] = what
            attrs["asynctrace.thread.name"] = extra
        elif kind == K_RUN:
            name = what
        elif kind == K_MISUSE:
            name = what
            attrs["asynctrace.misuse"] = what
            if extra:
                attrs["asynctrace.misuse.detail"] = extra
        else:  # an await, a blocked step, a gather, a hold: at a place in their parent's code
            name = "blocked" if kind == K_BLOCKED else ""
            if kind == K_HELD:
                name = f"holding {what}"
                attrs["asynctrace.primitive"] = what
                attrs["asynctrace.primitive.name"] = extra
            if code is None:
                code = codes.get(parent)
                if code is None and self._traces is not None:  # under an adoption mark
                    code = self._traces.code_of(parent)
            if code is not None:
                attrs[_FILE] = code.co_filename
                attrs[_LINE] = self._names.line(code, lasti)
        origin = self.origin
        return quick_span(
            sid, parent, KINDS[kind], name, start - origin, end - origin, track, state, error,
            attrs, sid, end_seq,
        )  # fmt: skip


def _name_await(span: Span, what: Any, spans: dict[int, Span], earlier: dict[int, Span]) -> None:
    if isinstance(what, float | CodeType):
        name = await_name(what)
    elif isinstance(what, tuple):
        target = spans.get(what[1]) or earlier.get(what[1])
        if target is not None:
            span.attributes[AWAITED_SPAN] = target.span_id
        if target is None:
            name = what[0]
        elif what[0] == "gather":
            name = target.name
            if target.track == span.track and target.span_id in spans:
                # The await on a gather is part of it: nest it, and let the gather last until
                # its result is taken, so the pair stays strictly nested on the track.
                span.parent_id = target.span_id
                target.end = max(target.end, span.end)
                target.end_seq = max(target.end_seq, span.end_seq)
        else:
            task_name = target.attributes.get("asynctrace.task.name", "")
            name = f"{task_name} ({target.name})" if task_name else target.name
    else:
        name = str(what)
        if what not in ("yield", "Task"):  # a future, named by its type: say what made it
            attrs = span.attributes
            expression = await_expression(attrs.get(_FILE), attrs.get(_LINE))
            if expression is not None and expression != name:
                span.name = f"{name} ({expression})"
                attrs[_AWAITED] = name
                return
    span.name = name
    span.attributes[_AWAITED] = name


def _name_thread_awaits(awaits: list[tuple[Span, Any]], spans: dict[int, Span]) -> None:
    """``await asyncio.to_thread(fn)`` and ``await loop.run_in_executor(executor, fn)``: the
    await says which thread job it waited for (``AWAITED_SPAN``), and one of ``to_thread`` is
    named for the function it runs.

    That is the last thread job its caller submitted before the await began (a job's id is
    taken at submission, an await's when it suspends; one call submits and awaits in turn).
    An executor's future is found by the expression it was awaited in, which its name carries
    (see :func:`_name_await`): a future awaited elsewhere than where it was made may be any
    job's.  On Python 3.13+ a job that ended before its future was awaited has no await.
    """
    to_thread = _instrument.TO_THREAD_CODE
    joined = [
        (span, what is to_thread)
        for span, what in awaits
        if what is to_thread or (isinstance(what, str) and _EXECUTOR_CALL in span.name)
    ]
    if not joined:
        return
    jobs: dict[int | None, list[Span]] = {}
    for span in spans.values():
        if span.kind == "thread":
            jobs.setdefault(span.parent_id, []).append(span)
    for span, named in joined:
        before = [job for job in jobs.get(span.parent_id, ()) if job.span_id < span.span_id]
        if before:
            job = max(before, key=lambda j: j.span_id)
            if named:
                span.name = f"asyncio.to_thread({short_name(job.name)})"
                span.attributes[_AWAITED] = span.name
            span.attributes[AWAITED_SPAN] = job.span_id


def _merge_wait_for_timeouts(awaits: list[Span], spans: dict[int, Span]) -> None:
    """Mark ``wait_for`` expiries of Python < 3.12 as timeouts.

    There, an expired ``wait_for`` is resumed normally, then suspends once more at the same
    place while it cancels what it waited for; no other path suspends twice in a row.  The
    two awaits are one timed-out wait: the first is extended over the second, which goes.
    """
    if not any(span.name == _WAIT_FOR for span in awaits):
        return  # nearly always: nothing to sort
    previous: dict[int | None, Span] = {}
    for span in sorted(awaits, key=lambda s: s.start_seq):
        before = previous.get(span.parent_id)
        previous[span.parent_id] = span
        if (
            before is not None
            and span.name == before.name == _WAIT_FOR
            and before.status == "ok"
            and span.start_seq == before.end_seq + 1  # nothing happened in between
            and before.attributes.get(_LINE) == span.attributes.get(_LINE)
        ):
            before.end, before.end_seq = span.end, span.end_seq
            before.status, before.error = "timeout", "TimeoutError: the timeout expired"
            before.attributes.update(
                {"exception.type": "TimeoutError", "exception.message": "the timeout expired"}
            )
            del spans[span.span_id]
            previous[span.parent_id] = before


def _summarize(names: Iterable[str]) -> str:
    """``task1, task2`` or ``worker × 2000``: the names of a gather's children, in order (a
    Counter counts in C and keeps the order names first come in)."""
    parts = [name if n == 1 else f"{name} × {n}" for name, n in Counter(names).items()]
    if len(parts) > 4:
        parts = [*parts[:4], f"… {len(parts) - 4} more"]
    return ", ".join(parts)
