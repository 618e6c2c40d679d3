"""The C TaskRoot.send and traced-call bookkeeping (``asynctrace._speedups``) record exactly
what the Python ones do."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import gc
import os
import re
import subprocess
import sys
import time
import traceback
import tracemalloc
import types
import weakref
from collections.abc import Callable, Coroutine, Generator
from typing import Any

import pytest

import asynctrace
from asynctrace._core import _coro, _decorator, _instrument, _record
from asynctrace._model._spans import Trace

# The accelerator as the package uses it: None when not built or ASYNCTRACE_NO_SPEEDUPS is set.
_speedups: types.ModuleType | None = _coro.speedups

Main = Callable[[], Coroutine[Any, Any, Any]]

# TaskRoot's cold methods and properties, reused as they are: they only use the slots.
_REUSED = (
    "__await__",
    "__iter__",
    "throw",
    "close",
    "_resume",
    "_suspend",
    "_blocked",
    "_finish",
    "_end",
    "_inspected",
    "__name__",
    "cr_code",
    "cr_frame",
    "cr_await",
    "cr_running",
    "cr_origin",
    "__repr__",
)


def _root_classes() -> tuple[type, type | None]:
    """(the pure-Python TaskRoot, one on the C TaskRootBase), before or after integration."""
    methods = {name: _coro.TaskRoot.__dict__[name] for name in _REUSED}
    init = _coro.python_init  # the C TaskRootBase has its own
    if _speedups is None:
        return _coro.TaskRoot, None
    if issubclass(_coro.TaskRoot, _speedups.TaskRootBase):  # _coro uses the C send
        slots = [
            name
            for name, value in vars(_speedups.TaskRootBase).items()
            if type(value).__name__ in ("member_descriptor", "getset_descriptor")
            and name not in ("__qualname__", "__weakref__")
        ]
        send = getattr(_coro, "python_send")  # noqa: B009 (exists once _coro uses the C send)
        python = type(
            "PyRoot",
            (_coro._QualnameSlot,),
            {
                **methods,
                "__slots__": (*slots, "__weakref__"),
                "__module__": __name__,
                "__init__": init,
                "send": send,
                "__next__": send,
            },
        )
        return python, _coro.TaskRoot
    c_root = type(
        "CRoot", (_speedups.TaskRootBase,), {**methods, "__slots__": (), "__module__": __name__}
    )
    _speedups.constants(
        _coro._SLEEP_CODE,
        _coro._AENTER_CODE,
        _coro._NOT_STARTED,
        _coro._reduce_awaited,
        _coro.K_AWAIT,
        types.CoroutineType,
        _coro.current_root,
        _coro.current_gather,
        _coro.K_CORO,
        _coro.K_TASK,
    )
    return _coro.TaskRoot, c_root


PyRoot, _c_root = _root_classes()
CRoot: Any = _c_root

needs_c = pytest.mark.skipif(_speedups is None, reason="asynctrace._speedups is not built")


def _sync() -> None:
    """Mirror the ``_coro`` globals into the C statics (what Recorder will do)."""
    assert _speedups is not None
    _speedups.configure(
        _coro.append,
        _coro.clock,
        _coro.next_id,
        _coro.blocked_threshold,
        _coro.record_awaits,
        _coro.run_sid,
    )


def _synced(method: Callable[..., None]) -> Callable[..., None]:
    def call(*args: Any) -> None:
        method(*args)
        _sync()

    return call


def _use(monkeypatch: pytest.MonkeyPatch, cls: type) -> None:
    """Run tasks on roots of ``cls`` and traced calls on its path (C or Python wrappers), made
    by its task start (``_speedups.start_task`` or ``_instrument._start_task``) and held by
    its registry (``_speedups.Roots`` or a ``WeakSet``)."""
    monkeypatch.setattr(_coro, "TaskRoot", cls)
    monkeypatch.setattr(_instrument, "TaskRoot", cls)
    if cls is PyRoot:  # and the pure-Python registry: a C Roots takes C roots only
        monkeypatch.setattr(_instrument, "start_task", _instrument._start_task)
        monkeypatch.setattr(_record, "new_roots", weakref.WeakSet)
    wrap = _decorator._wrap_python if cls is PyRoot else _decorator._wrap_c
    monkeypatch.setattr(_decorator, "_wrap", wrap)
    _decorate()
    for name in ("activate", "deactivate", "use_clock"):
        method = getattr(_record.Recorder, name)
        monkeypatch.setattr(_record.Recorder, name, _synced(method))


def _rows(trace: Trace) -> list[tuple[Any, ...]]:
    return sorted(
        (
            s.span_id,
            s.parent_id,
            s.kind,
            _stable(s.name),
            s.start,
            s.end,
            s.track,
            s.status,
            s.error,
            sorted(_stable(s.attributes).items()),
            s.start_seq,
            s.end_seq,
        )
        for s in trace
    )


def _stable(value: Any) -> Any:
    # Default task names count tasks per process ("Task-7"): they differ between the two runs.
    if isinstance(value, str):
        return re.sub(r"\bTask-\d+", "Task-N", value)
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items()}
    return value


def _run(main: Main, **options: Any) -> tuple[Trace, Any]:
    options.setdefault("virtual_time", True)
    # The recorders are compared: OpenTelemetry (on when an earlier test imported it) would
    # give both runs' spans random trace and span ids.
    options.setdefault("otel", False)
    with asynctrace.tracing(**options) as tracing:
        try:
            outcome: Any = ("returned", asyncio.run(main()))
        except BaseException as exc:  # the program's own outcome, compared below
            outcome = ("raised", type(exc), str(exc), _frames(exc))
    return tracing.trace, outcome


def _frames(exc: BaseException) -> list[str]:
    return [f.f_code.co_name for f, _ in traceback.walk_tb(exc.__traceback__)]


def _both(main: Main, monkeypatch: pytest.MonkeyPatch, **options: Any) -> Trace:
    """Run ``main`` with the Python roots and calls, then the C ones; the traces MUST match."""
    with monkeypatch.context() as patch:
        _use(patch, PyRoot)
        python_trace, python_outcome = _run(main, **options)
    with monkeypatch.context() as patch:
        _use(patch, CRoot)
        c_trace, c_outcome = _run(main, **options)
    assert c_outcome == python_outcome
    assert _rows(c_trace) == _rows(python_trace)
    assert len(python_trace) > 1
    return c_trace


def test_the_extension_is_built() -> None:
    # Optional for users (pure-Python fallback); this project's CI (CI=true) MUST build it.
    if _speedups is None and (not os.environ.get("CI") or os.environ.get("ASYNCTRACE_NO_SPEEDUPS")):
        pytest.skip("asynctrace._speedups is not built (no C compiler?)")
    assert _speedups is not None, "asynctrace._speedups did not build; see pip install -e . -v"
    assert issubclass(CRoot, _speedups.TaskRootBase)
    assert not issubclass(PyRoot, _speedups.TaskRootBase)


def test_no_speedups_selects_the_pure_python_path() -> None:
    script = (
        "from asynctrace._core import _coro, _decorator\n"
        "print(_coro.speedups is None, _decorator._wrap is _decorator._wrap_python,"
        " _coro.TaskRoot.send is _coro.python_send)"
    )
    env = {**os.environ, "ASYNCTRACE_NO_SPEEDUPS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["True", "True", "True"]
    if _speedups is not None:  # and without the variable, the C path
        assert _decorator._wrap is _decorator._wrap_c


async def worker(delay: float, k: int = 3) -> float:
    for _ in range(k):
        await asyncio.sleep(0)
        await asyncio.sleep(delay)
    return delay


class _Traced:
    """The workloads' traced functions, decorated again (``_decorate``) for the path under test."""

    child: Callable[[int], Coroutine[Any, Any, int]]
    parent: Callable[[int], Coroutine[Any, Any, int]]
    quick: Callable[[int], Coroutine[Any, Any, int]]
    recorded: Callable[[int, str], Coroutine[Any, Any, int]]


traced = _Traced()


def _decorate() -> None:
    """Decorate the workloads' traced functions with the current ``_decorator._wrap``."""

    @asynctrace.trace
    async def traced_child(n: int) -> int:
        await asyncio.sleep(0.5)
        if n < 0:
            raise ValueError(f"negative {n}")
        return n * 2

    @asynctrace.trace(name="parent", attributes={"layer": "outer"})
    async def traced_parent(n: int) -> int:
        return await traced_child(n) + await traced_child(n + 1)

    @asynctrace.trace
    async def quick(n: int) -> int:
        return n + 1 if n <= 0 else await quick(n - 1) + 1

    @asynctrace.trace(record_args=True)
    async def recorded(n: int, token: str) -> int:  # its own Python path, C calls inside
        return await traced_child(n) + await quick(n)

    traced.child, traced.parent, traced.quick = traced_child, traced_parent, quick
    traced.recorded = recorded


_decorate()


async def gather_of_sleeps() -> list[float]:
    return await asyncio.gather(*(worker(d / 4) for d in range(6)), asyncio.sleep(1, 1.5))


async def exceptions() -> list[Any]:
    async def boom(n: int) -> None:
        await asyncio.sleep(n)
        raise KeyError(n)

    results = await asyncio.gather(boom(1), boom(2), worker(0.1), return_exceptions=True)
    return [repr(r) for r in results]


async def uncaught() -> None:
    await asyncio.create_task(traced.child(-3))


async def cancellation() -> str:
    task = asyncio.create_task(worker(10))
    await asyncio.sleep(1)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return "cancelled"
    return "not cancelled"


async def timeouts() -> list[str]:
    out = []
    for limit in (0.5, 5):
        try:
            await asyncio.wait_for(worker(1, 2), limit)
            out.append("done")
        except TimeoutError:
            out.append("timeout")
    return out


async def blocked_steps() -> None:
    async def hog(seconds: float) -> None:
        await asyncio.sleep(0)
        loop: Any = asyncio.get_running_loop()
        loop._vt_now += seconds  # a step that holds the loop this long, on the virtual clock

    await asyncio.gather(hog(0.5), hog(0.01), hog(2))


async def returns_values() -> Any:
    task = asyncio.create_task(worker(1))
    pair = asyncio.create_task(_pair())
    return (await task, await pair, await traced.parent(2))


async def _pair() -> tuple[int, int]:
    await asyncio.sleep(0)
    return (1, 2)


async def locks_and_queues() -> list[int]:
    lock = asyncio.Lock()
    queue: asyncio.Queue[int] = asyncio.Queue()
    event = asyncio.Event()
    got: list[int] = []

    async def holder(n: int) -> None:
        async with lock:
            await asyncio.sleep(n)
            queue.put_nowait(n)

    async def consumer() -> None:
        for _ in range(3):
            got.append(await queue.get())
        event.set()

    await asyncio.gather(holder(1), holder(2), holder(3), consumer(), event.wait())
    return got


async def nested_calls() -> list[int]:
    # nested calls, calls merged into their task's span (as a task's coroutine or gathered)
    merged = asyncio.create_task(traced.parent(1))
    got = [await traced.parent(3), await merged, await traced.quick(4)]
    got += await asyncio.gather(traced.child(5), traced.quick(2), traced.parent(0))
    return got


def _outside(coro: Coroutine[Any, Any, int]) -> int:
    """Run a coroutine that never suspends outside any task (a fresh context: no root)."""
    try:
        contextvars.Context().run(coro.send, None)
    except StopIteration as stop:
        return int(stop.value)
    raise AssertionError(f"{coro!r} suspended")


async def calls_outside_tasks() -> list[int]:
    return [_outside(traced.quick(3)), await traced.quick(1), _outside(traced.quick(0))]


async def call_errors() -> list[str]:
    async def catches() -> str:
        try:
            await traced.parent(-1)
        except ValueError as exc:
            return repr(exc)
        return "no error"

    out = [await catches()]
    try:
        await traced.child(-2)
    except ValueError as exc:
        out.append(repr(exc))
    return out


async def call_cancellation() -> list[str]:
    out = []
    task = asyncio.create_task(traced.parent(2))
    other = asyncio.create_task(worker(0, 1))
    await asyncio.sleep(0.25)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        out.append("cancelled")
    try:
        await asyncio.wait_for(traced.parent(5), 0.75)
    except TimeoutError:
        out.append("timeout")
    await other
    return out


async def recorded_args() -> list[int]:
    return [await traced.recorded(2, "s3cret"), await traced.quick(await traced.recorded(1, "x"))]


WORKLOADS = {
    "nested_calls": nested_calls,
    "calls_outside_tasks": calls_outside_tasks,
    "call_errors": call_errors,
    "call_cancellation": call_cancellation,
    "recorded_args": recorded_args,
    "gather": gather_of_sleeps,
    "exceptions": exceptions,
    "uncaught": uncaught,
    "cancellation": cancellation,
    "timeouts": timeouts,
    "blocked": blocked_steps,
    "returns": returns_values,
    "locks": locks_and_queues,
}


@needs_c
@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_c_and_python_roots_record_the_same_spans(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _both(WORKLOADS[name], monkeypatch)


@needs_c
def test_calls_are_spans_with_their_parents(monkeypatch: pytest.MonkeyPatch) -> None:
    trace = _both(nested_calls, monkeypatch)
    merged = [s for s in trace.spans_matching(kind="task") if s.name == "parent"]
    assert [s.attributes["layer"] for s in merged] == ["outer", "outer"]  # named by the call
    parents = [s for s in trace.spans_matching(kind="coroutine") if s.name == "parent"]
    assert len(parents) == 1  # the other two calls of parent are their tasks' own spans
    children = [s for s in trace if s.name == "traced_child" and s.parent_id == parents[0].span_id]
    assert [(c.start, c.end) for c in children] == [(0.0, 0.5), (0.5, 1.0)]
    outside = _both(calls_outside_tasks, monkeypatch)
    run = outside.spans_matching(kind="run")[0]
    # outside a task nothing nests: quick(3)'s four calls and quick(0)'s one sit on the run
    assert len([s for s in outside if s.parent_id == run.span_id and s.name == "quick"]) == 5


@needs_c
def test_each_path_uses_its_own_call_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[type] = []

    async def main() -> None:
        @asynctrace.trace
        async def probe() -> None:
            root = _coro.current_root.get()
            assert root is not None
            seen.append(type(root._top))

        await probe()
        await asyncio.create_task(probe())  # a call merged into its task's span

    for cls in (PyRoot, CRoot):
        with monkeypatch.context() as patch:
            _use(patch, cls)
            _run(main)
    assert _speedups is not None
    assert seen == [_coro.CallSpan, _coro.CallSpan, _speedups.CallSpan, _speedups.CallSpan]


@needs_c
def test_call_records_outside_tasks_are_alike() -> None:
    """Record for record, with a gather open and a task-less context (no root)."""

    def records(wrap: Callable[..., Any]) -> list[Any]:
        @asynctrace.trace
        async def leaf(n: int) -> int:
            return n

        info = leaf.__asynctrace_info__  # type: ignore[attr-defined]
        wrapped = wrap(leaf.__wrapped__, info)  # type: ignore[attr-defined]

        async def twice() -> int:
            return int(await wrapped(1) + await wrapped(2))

        recorder = _record.Recorder("calls", clock=iter(range(1000)).__next__)
        recorder.activate()
        try:
            context = contextvars.Context()
            context.run(_coro.current_gather.set, 77)
            with pytest.raises(StopIteration):
                context.run(twice().send, None)
            with pytest.raises(StopIteration):
                contextvars.Context().run(wrapped(3).send, None)
        finally:
            recorder.deactivate()
        return [(*r[:7], r[7].name, *r[8:]) for r in recorder.records]

    python, c = records(_decorator._wrap_python), records(_decorator._wrap_c)
    assert c == python
    assert len(c) == 3 and all(r[0] == _coro.K_CORO for r in c)
    # under the gather, then the run's own span (its id, 1, comes first from the counter)
    assert [(r[2], r[3]) for r in c] == [(77, 1), (77, 1), (1, 1)]


@needs_c
def test_blocked_steps_are_spans_with_the_c_root(monkeypatch: pytest.MonkeyPatch) -> None:
    trace = _both(blocked_steps, monkeypatch, blocked_threshold=0.1)
    # the loop's own times: 0.51 + 2 - 0.51 is 1.9999999999999998 in floats
    durations = sorted(s.duration for s in trace.spans_matching(kind="blocked"))
    assert durations == pytest.approx([0.5, 2.0], abs=1e-12)


@needs_c
def test_a_real_blocking_call_is_a_blocked_span(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        await asyncio.sleep(0)
        time.sleep(0.03)

    _use(monkeypatch, CRoot)
    trace, _ = _run(main, virtual_time=False, blocked_threshold=0.01)
    (blocked,) = trace.spans_matching(kind="blocked")
    assert blocked.duration >= 0.03
    assert _speedups is not None and _speedups._state()[2] == 1  # perf_counter read in C


@needs_c
@pytest.mark.parametrize("options", [{"record_awaits": False}, {"max_spans": 7}])
def test_options_are_honoured_alike(
    options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _both(gather_of_sleeps, monkeypatch, **options)
    if "max_spans" in options:
        assert _speedups is not None and _speedups._state()[3] == 0  # Recorder.append path


@needs_c
def test_the_real_clock_path_matches_structure(monkeypatch: pytest.MonkeyPatch) -> None:
    def shape(trace: Trace) -> list[tuple[Any, ...]]:
        return sorted((s.span_id, s.parent_id, s.kind, _stable(s.name), s.status) for s in trace)

    python_trace, _ = _run(locks_and_queues, virtual_time=False)
    _use(monkeypatch, CRoot)
    c_trace, _ = _run(locks_and_queues, virtual_time=False)
    assert shape(c_trace) == shape(python_trace)


@needs_c
def test_native_clock_is_perf_counter() -> None:
    assert _speedups is not None
    for _ in range(100):
        before = time.perf_counter()
        reading = _speedups._native_clock()
        after = time.perf_counter()
        assert before <= reading <= after


class _Yield:
    """An awaitable that suspends once with a bare ``yield`` (what ``asyncio.sleep(0)`` does)."""

    def __await__(self) -> Generator[None, None, None]:
        yield None


class _Driver:
    """A non-native coroutine whose send and __next__ differ: send MUST be called."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, value: Any) -> Any:
        self.sent.append(value)
        if len(self.sent) == 3:
            raise StopIteration(("done", len(self.sent)))
        return "waiting"

    def __next__(self) -> Any:
        raise AssertionError("send() must be called, not __next__")


def _drive(
    cls: type, coro: Any, values: list[Any], clock: Callable[[], float] | None = None
) -> tuple[list[Any], Any, _coro.RecordList]:
    """Send ``values`` into a root of ``cls`` wrapping ``coro``: (yields, return, records).

    The clock counts 0, 1, 2... unless ``clock`` is given.
    """
    recorder = _record.Recorder("drive", clock=clock or iter(range(1000)).__next__)
    recorder.activate()
    _sync()
    try:
        root = cls(coro, 0)
        yields = []
        for value in values:
            try:
                yields.append(root.send(value) if value is not None else next(root))
            except StopIteration as stop:
                return yields, stop.value, recorder.records
    finally:
        recorder.deactivate()
        _sync()
    raise AssertionError(f"{coro!r} did not return after {values!r}")


@needs_c
def test_send_and_next_return_and_raise_stop_iteration_alike() -> None:
    async def pair() -> tuple[int, int]:
        await _Yield()
        await _Yield()
        return (1, 2)

    for make in (pair, _Driver):
        results = [_drive(cls, make(), [None, "a", None, None]) for cls in (PyRoot, CRoot)]
        assert [(y, v, list(r)) for y, v, r in results[:1]] == [
            (y, v, list(r)) for y, v, r in results[1:]
        ]
        assert results[1][1] in ((1, 2), ("done", 3))


async def _three_awaits() -> str:
    for _ in range(3):
        await _Yield()
    return "done"


@needs_c
def test_await_records_are_c_fields_read_as_the_python_paths_tuples() -> None:
    def quarters() -> Callable[[], float]:
        return iter([i / 4 for i in range(1000)]).__next__

    values = [None] * 4
    _, _, python = _drive(PyRoot, _three_awaits(), values, quarters())
    _, _, c = _drive(CRoot, _three_awaits(), values, quarters())
    assert _speedups is not None and isinstance(c, _speedups.Records)
    awaits = [i for i, r in enumerate(c) if r[0] == _coro.K_AWAIT]
    assert len(awaits) == 3
    assert list(c) == list(python)
    assert [type(f) for f in c[awaits[0]]] == [type(f) for f in python[awaits[0]]]
    # an await and the task's end are stored as C fields: each read makes its tuple anew;
    # other records (here the blocked steps, made in Python) are kept
    fields = [i for i, r in enumerate(c) if r[0] in (_coro.K_AWAIT, _coro.K_TASK)]
    assert len(fields) == 4 and [c[i][0] for i in fields].count(_coro.K_TASK) == 1
    assert all(c[i] is not c[i] and c[i] == c[i] for i in fields)
    others = [i for i in range(len(c)) if i not in fields]
    assert others and all(c[i] is c[i] for i in others)
    # under a clock that is not a float (this test's integers), awaits are kept whole
    _, _, whole = _drive(CRoot, _three_awaits(), values)
    starts = [r[4] for r in whole if r[0] == _coro.K_AWAIT]
    assert len(starts) == 3 and all(type(t) is int for t in starts)
    assert all(r is whole[i] for i, r in enumerate(whole))


@needs_c
def test_records_behave_as_a_list_of_their_tuples() -> None:
    eighths = iter([i / 8 for i in range(99)]).__next__
    _, _, records = _drive(CRoot, _three_awaits(), [None] * 4, eighths)
    assert _speedups is not None and isinstance(records, _speedups.Records)
    records.append(("extra", 1))
    same = list(records)
    assert len(records) == len(same) > 5 and bool(records)
    for key in (
        0,
        3,
        -1,
        -5,
        slice(None),
        slice(1, 3),
        slice(-2, None),
        slice(None, None, 2),
        slice(4, 1, -1),
        slice(9, 20),
    ):
        assert records[key] == same[key], key
    for bad in (len(same), -len(same) - 1):
        with pytest.raises(IndexError):
            records[bad]
    with pytest.raises(TypeError):
        records["0"]  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        records[0] = ("no",)  # type: ignore[index]
    with pytest.raises(ValueError, match="step 1"):
        del records[::2]
    del records[1:3]
    del same[1:3]
    assert list(records) == same
    del records[-1]
    del same[-1]
    del records[:0]
    assert list(records) == same and len(records) == len(same) > 1
    del records[:]
    assert len(records) == 0 and not records and list(records) == []


@needs_c
def test_awaiting_a_root_returns_its_value() -> None:
    async def value() -> str:
        await asyncio.sleep(0)
        return "v"

    async def main() -> str:
        return await CRoot(value(), 0)  # type: ignore[no-any-return]

    _sync()
    assert asyncio.run(main()) == "v"


@needs_c
def test_an_unset_slot_raises_attribute_error_like_python() -> None:
    assert _speedups is not None
    root = _speedups.TaskRootBase.__new__(_speedups.TaskRootBase)  # its __init__ not run
    _sync()
    with pytest.raises(AttributeError, match="_top"):
        root.send(None)
    with pytest.raises(TypeError, match="at most 1"):
        root.send(1, 2)


@needs_c
def test_roots_are_weakly_referenced_and_collected() -> None:
    import weakref

    async def noop() -> None:
        pass

    root = CRoot(noop(), 0)
    ref = weakref.ref(root)
    root._coro.close()
    root._outer = root  # a cycle through a slot: the collector MUST see it
    del root
    gc.collect()
    assert ref() is None


def test_roots_have_no_dict() -> None:
    if _speedups is None:
        pytest.skip("not built")
    root = _speedups.TaskRootBase.__new__(_speedups.TaskRootBase)
    with pytest.raises(AttributeError):
        root.anything = 1


@needs_c
def test_200k_steps_leak_nothing() -> None:
    kept: collections.deque[Any] = collections.deque(maxlen=1)
    sink: list[Any] = []

    async def steps(n: int) -> int:
        for _ in range(n):
            await asyncio.sleep(0)
            await _Yield()
        return n

    def run(n: int, append: Callable[[Any], None]) -> None:
        recorder = _record.Recorder("leak")
        recorder.activate()
        _coro.append = append
        _sync()
        try:
            root = CRoot(steps(n), 0)
            while True:
                try:
                    root.send(None)
                except StopIteration as stop:
                    assert stop.value == n
                    break
                sink.clear()
        finally:
            recorder.deactivate()
            _sync()

    for append in (kept.append, sink.append):
        run(1000, append)  # warm up
        gc.collect()
        code_refs = sys.getrefcount(_coro._SLEEP_CODE)
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        run(100_000, append)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert grown < 20_000, f"{grown} bytes kept after 200k steps"
        # (counted outside the assert: pytest's rewriting would hold one more reference)
        code_refs_after = sys.getrefcount(_coro._SLEEP_CODE)
        assert code_refs_after == code_refs


@needs_c
def test_100k_traced_calls_leak_nothing() -> None:
    sink: list[Any] = []

    @asynctrace.trace
    async def call(depth: int) -> int:
        if depth:
            return await call(depth - 1)
        await _Yield()
        return depth

    @asynctrace.trace
    async def fails() -> None:
        await _Yield()
        raise KeyError("x")

    async def calls(n: int) -> int:
        for _ in range(n):
            await call(4)
            await call(0)
            with contextlib.suppress(KeyError):
                await fails()
        return n

    info = call.__asynctrace_info__  # type: ignore[attr-defined]

    def run(n: int) -> None:
        recorder = _record.Recorder("leak")
        recorder.activate()
        _coro.append = sink.append
        _sync()
        try:
            root = CRoot(calls(n), 0)
            token = _coro.current_root.set(root)
            try:
                while True:
                    try:
                        root.send(None)
                    except StopIteration as stop:
                        assert stop.value == n
                        break
                    sink.clear()
            finally:
                _coro.current_root.reset(token)
        finally:
            recorder.deactivate()
            _sync()

    assert _decorator._wrap is _decorator._wrap_c
    run(1000)  # warm up
    sink.clear()
    gc.collect()
    info_refs = sys.getrefcount(info)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    run(15_000)  # 105k traced calls
    sink.clear()
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert grown < 20_000, f"{grown} bytes kept after 105k traced calls"
    info_refs_after = sys.getrefcount(info)  # (outside the assert: see above)
    assert info_refs_after == info_refs


@needs_c
def test_roots_hold_tasks_weakly_and_drop_the_dead() -> None:
    assert _speedups is not None
    recorder = _record.Recorder("roots")  # the clock and ids that a root's __init__ reads
    recorder.activate()
    try:
        _hold_roots_weakly(_speedups.Roots())
    finally:
        recorder.deactivate()


@needs_c
def test_roots_forgotten_by_a_freed_registry_and_taken_by_the_next() -> None:
    assert _speedups is not None
    recorder = _record.Recorder("roots")
    recorder.activate()
    try:
        root = CRoot(_three_awaits(), 0)
        first, second = _speedups.Roots(), _speedups.Roots()
        first.add(root)
        second.add(root)  # a root is in one registry at a time: the recorder's now
        assert first.live() == [] and second.live() == [root]
        del second  # the root outlives its registry, and MUST NOT point into it
        gc.collect()
        third = _speedups.Roots()
        third.add(root)
        assert third.live() == [root]
        with pytest.raises(TypeError, match="takes a task root"):
            third.add(object())
        root._coro.close()
    finally:
        recorder.deactivate()


def _hold_roots_weakly(roots: Any) -> None:
    kept = [CRoot(_three_awaits(), 0) for _ in range(3)]
    for root in kept:
        roots.add(root)
    for _ in range(1000):  # made, added and freed at once: pruned as the array fills
        short = CRoot(_three_awaits(), 0)
        roots.add(short)
        short._coro.close()
        del short
    gc.collect()  # an unstarted root is its own _top: a cycle
    assert roots.live() == kept and len(roots) == 3
    kept[0]._coro.close()
    del kept[0]
    gc.collect()
    assert roots.live() == kept and len(roots) == 2
    for root in kept:
        root._coro.close()


@needs_c
def test_records_read_while_a_finalizer_deletes_them() -> None:
    """A collection while tuples are made may run code that deletes records (as another
    thread's flusher may): the read returns what was there when it began."""
    halves = iter([i / 2 for i in range(999)]).__next__
    _, _, records = _drive(CRoot, _three_awaits(), [None] * 4, halves)
    expected = list(records)
    deleted: list[int] = []

    class Dropper:
        def __init__(self) -> None:
            self.cycle = self

        def __del__(self) -> None:
            deleted.append(len(records))
            del records[:]
            records.append(("replaced",))  # in the freed slot

    threshold = gc.get_threshold()
    gc.collect()
    Dropper()  # garbage in a cycle: freed by the next collection
    gc.set_threshold(1)  # the first tuple made collects it
    try:
        read = records[:]
    finally:
        gc.set_threshold(*threshold)
    # Up to 3.11 the collection runs inside the read; from 3.12 collections wait for the
    # next bytecode, and a read in C cannot be cut (the finalizer runs after it).
    assert deleted == ([len(expected)] if sys.version_info < (3, 12) else [])
    gc.collect()
    assert deleted == [len(expected)]
    assert read == expected and len(expected) > 4
    assert list(records) == [("replaced",)]


class _CountingCoroutine(Coroutine[Any, Any, int]):
    """A coroutine that is not native: it returns 42 by raising StopIteration(42)."""

    def __init__(self) -> None:
        self.steps = 0

    def send(self, value: Any) -> Any:
        self.steps += 1
        if self.steps > 2:
            raise StopIteration(42)
        return None

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        raise typ if isinstance(typ, BaseException) else typ()

    def close(self) -> None:
        pass

    def __await__(self) -> Generator[Any, None, int]:
        return self  # type: ignore[return-value]


@needs_c
def test_a_task_gets_what_its_coroutine_returned_native_or_not() -> None:
    # The C root gives the Task its coroutine's return through am_send, without a
    # StopIteration; one raised by a coroutine that is not native MUST still be a return.
    async def seven() -> int:
        return 7

    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        return await loop.create_task(_CountingCoroutine()), await loop.create_task(seven())

    trace, outcome = _run(main)
    assert outcome == ("returned", (42, 7))
    assert sorted(s.name for s in trace if s.kind == "task") == [
        "_CountingCoroutine",
        "main",
        "seven",
    ]
