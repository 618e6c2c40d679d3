"""Exploring a test's schedules: run it under N seeds, shrink the first that fails, report it.

Problem: a race shows in one schedule out of many; a report that says only "seed 37 failed" or
lists a hundred jittered timers leaves the reader to find what raced.

Solution: :func:`search` runs the program once per seed (``0`` first: the plain virtual-time
schedule, then ``1 .. N-1``), untraced unless the caller traces every run (the ``atrace``
fixture does, its assertions read the spans).  At the first failure it shrinks the schedule:
it replays the same seed restricted to fewer perturbation keys (ddmin), keeping a subset while
the run still fails with the same exception type.  Then it replays two runs traced, the shrunk
failing schedule and the same seed with nothing perturbed (the passing one), and reports their
first divergence (``_schedule_diff.py``) with the perturbations that remain.  Every run is a
fresh :class:`~asynctrace._schedules._explore.ExploringLoop` under ``asyncio.Runner``; a run that
deadlocks raises :class:`~asynctrace.VirtualTimeDeadlock` and fails like any other.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .._model._spans import Trace
from .._tracing import Tracing
from ._explore import DEFAULT_JITTER, DEFAULT_RUNS, ExploringLoop, Perturbation, Schedule
from ._schedule_diff import (
    divergence_text,
    events,
    first_divergence,
    marked_chrome,
    side_by_side,
)

MAX_SHRINK_RUNS = 64
_ESCAPES = (KeyboardInterrupt, SystemExit, GeneratorExit)


@dataclass
class RunResult:
    """What one run under one schedule did."""

    schedule: Schedule
    error: BaseException | None
    applied: list[Perturbation] = field(default_factory=list)
    trace: Trace | None = None
    end: float = 0.0  # the loop's virtual time when the run ended


RunOnce = Callable[[Schedule, bool], RunResult]
"""Runs the program under a schedule; the flag asks for a trace of the run."""


class ExploreFailure(AssertionError):
    """A schedule under which the program fails, shrunk and compared with a passing one.

    Attributes: ``seed`` (replays it), ``error`` (the failing run's exception, also the
    ``__cause__``), ``perturbations`` (what the shrunk schedule changed), ``timelines``
    (``{"passing": path, "failing": path}`` of the JSON timelines written, if any).
    """

    def __init__(
        self,
        message: str,
        seed: int,
        error: BaseException,
        perturbations: list[Perturbation],
        timelines: dict[str, str],
    ) -> None:
        super().__init__(message)
        self.seed = seed
        self.error = error
        self.perturbations = perturbations
        self.timelines = timelines


def run_schedule(
    make: Callable[[], Awaitable[object]],
    schedule: Schedule,
    *,
    trace_name: str | None = None,
    on_tracing: Callable[[Tracing], None] | None = None,
    passthrough: tuple[type[BaseException], ...] = (),
) -> RunResult:
    """Run ``make()`` to completion on a fresh :class:`ExploringLoop` under ``schedule``.

    With ``trace_name``, the run is recorded by a :class:`Tracing` of that name, on the loop's
    clock (``on_tracing`` is given it before the run starts).  Exceptions in ``passthrough``
    (and KeyboardInterrupt, SystemExit) propagate; any other is the run's ``error``.
    """
    tracing = Tracing(name=trace_name, otel=False, flush_interval=0) if trace_name else None
    loops: list[ExploringLoop] = []

    def factory() -> ExploringLoop:
        loop = ExploringLoop(schedule)
        loops.append(loop)
        if tracing is not None:
            recorder = tracing.recorder
            recorder.use_clock(loop.time, "virtual")
            recorder.origin = loop.time()
        return loop

    error: BaseException | None = None
    if tracing is not None:
        if on_tracing is not None:
            on_tracing(tracing)
        tracing.start()
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(_coroutine(make))
    except _ESCAPES:
        raise
    except BaseException as exc:
        if passthrough and isinstance(exc, passthrough):
            raise
        error = exc
    finally:
        trace = tracing.stop() if tracing is not None else None
    applied = loops[0].applied if loops else []
    end = loops[0].time() if loops else 0.0
    return RunResult(schedule, error, applied, trace, end)


def _coroutine(make: Callable[[], Awaitable[object]]) -> Coroutine[Any, Any, object]:
    awaitable = make()
    if inspect.iscoroutine(awaitable):
        return awaitable

    async def wait() -> object:
        return await awaitable

    return wait()


def check_options(runs: object, seed: object, jitter: object, where: str) -> None:
    """Raise ValueError (one line: the option, the value, the fix) for a bad option."""
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        msg = f"{where}: explore={runs!r} is not a number of runs; give an integer of 1 or more"
        raise ValueError(msg)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        msg = f"{where}: seed={seed!r} is not a schedule's seed; give an integer of 0 or more"
        raise ValueError(msg)
    if isinstance(jitter, bool) or not isinstance(jitter, int | float) or not 0 <= jitter < 1:
        msg = (
            f"{where}: jitter={jitter!r} is not a fraction of a duration; give a number from "
            "0 (durations exact) up to, not including, 1 (default 0.5: each within +-50%)"
        )
        raise ValueError(msg)


def search(
    run: RunOnce,
    *,
    runs: int,
    seed: int | None,
    jitter: float,
    replay: Callable[[int], str],
    json_dir: Path | None = None,
    json_stem: str = "explore",
) -> int:
    """Run the schedules; return how many passed, or raise :class:`ExploreFailure`.

    ``replay(seed)`` says how to replay a seed (the option or call, for the message).
    """
    seeds = [seed] if seed is not None else list(range(runs))
    last_passing: int | None = None
    limit: float | None = None
    if seed is not None and seed != 0:  # the plain schedule sets the time limit (see below)
        plain = run(Schedule(seed, jitter, frozenset()), False)
        limit = None if plain.error is not None else plain.end * 10 + 1.0
    for n, s in enumerate(seeds):
        result = run(Schedule(s, jitter, time_limit=limit), False)
        if s == 0 and result.error is None:
            # A run that passes ten times the plain schedule's virtual time (and 1 s) is one
            # that never ends under its schedule: stopped and reported, not hung on.
            limit = result.end * 10 + 1.0
        if result.error is None:
            last_passing = s
            continue
        if seed is not None:
            where = "replayed by its seed"
        else:
            where = f"run {n + 1} of {len(seeds)}" + (f", after {n} passing" if n else "")
        head = f"schedule seed={s} fails ({where}); replay it with {replay(s)}"
        raise _failure(run, result, head, last_passing, json_dir, json_stem)
    return len(seeds)


def _same_failure(a: BaseException, b: BaseException | None) -> bool:
    return b is not None and type(a) is type(b)


def shrink(run: RunOnce, failing: RunResult) -> tuple[Schedule, int]:
    """The failing schedule restricted to as few perturbation keys as still fail; runs used."""
    assert failing.error is not None
    base = failing.schedule
    keys = sorted({p.key for p in failing.applied})
    used = 0

    def fails(subset: list[str]) -> bool:
        nonlocal used
        used += 1
        result = run(replace(base, only=frozenset(subset)), False)
        return _same_failure(failing.error, result.error)  # type: ignore[arg-type]

    parts = 2
    while len(keys) >= 2 and used < MAX_SHRINK_RUNS:
        size = -(-len(keys) // parts)
        chunks = [keys[i : i + size] for i in range(0, len(keys), size)]
        for chunk in chunks:
            rest = [k for k in keys if k not in chunk]
            if used < MAX_SHRINK_RUNS and fails(rest):
                keys = rest
                parts = max(parts - 1, 2)
                break
        else:
            if parts >= len(keys):
                break
            parts = min(len(keys), parts * 2)
    if len(keys) == 1 and used < MAX_SHRINK_RUNS and fails([]):
        keys = []
    return replace(base, only=frozenset(keys)), used


def _failure(
    run: RunOnce,
    first: RunResult,
    head: str,
    last_passing: int | None,
    json_dir: Path | None,
    json_stem: str,
) -> ExploreFailure:
    error = first.error
    assert error is not None
    seed = first.schedule.seed
    lines = [head, f"{type(error).__name__}: {_one_line(error)}"]
    shrunk, used = shrink(run, first) if first.applied else (first.schedule, 0)
    failing = run(shrunk, True)
    if not _same_failure(error, failing.error):  # the program is not deterministic
        lines.append("(the shrunk schedule did not fail again: showing the full schedule)")
        failing = run(first.schedule, True)
    perturbations = failing.applied
    if not first.applied:
        lines.append("it fails on the plain virtual-time schedule: nothing was perturbed")
    else:
        lines.append(
            f"shrunk ({used} runs) to {len(perturbations)} of {len(first.applied)} "
            "perturbations; it fails when:"
        )
        lines += [f"  {p.text()}" for p in perturbations]
    passing = run(replace(first.schedule, only=frozenset()), True)
    passing_title = "passing: the same seed, nothing perturbed"
    if passing.error is not None and last_passing is not None:
        passing = run(replace(first.schedule, seed=last_passing, only=None), True)
        passing_title = f"passing: seed={last_passing}"
    timelines: dict[str, str] = {}
    if passing.error is None and passing.trace is not None and failing.trace is not None:
        ours, theirs = events(passing.trace), events(failing.trace)
        at = first_divergence(ours, theirs)
        if at is None:
            lines.append("both runs did the same events in the same order")
        else:
            lines.append(f"first divergence at event {at + 1}: {divergence_text(ours, theirs, at)}")
        lines.append(side_by_side(ours, theirs, at, (passing_title, f"failing: seed={seed}")))
        if json_dir is not None:
            where = "-" if at is None else str(at + 1)
            note = f"first divergence from the other run (event {where})"
            for role, result, evs in (("passing", passing, ours), ("failing", failing, theirs)):
                assert result.trace is not None
                path = json_dir / f"{json_stem}.seed-{seed}.{role}.trace.json"
                _write(path, marked_chrome(result.trace, evs, at, note))
                timelines[role] = str(path)
            lines.append(f"JSON timelines: {timelines['passing']} and {timelines['failing']}")
    else:
        lines.append("no passing schedule to compare with: every schedule tried failed")
    failure = ExploreFailure("\n".join(lines), seed, error, perturbations, timelines)
    failure.__cause__ = error
    return failure


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else repr(error)


def _write(path: Path, doc: dict[str, Any]) -> None:
    from .._export._files import write_whole

    os.makedirs(path.parent, exist_ok=True)
    write_whole(path, json.dumps(doc, separators=(",", ":")).encode())


def explore(
    async_fn: Callable[[], Awaitable[object]],
    *,
    runs: int = DEFAULT_RUNS,
    seed: int | None = None,
    jitter: float = DEFAULT_JITTER,
    json_dir: str | os.PathLike[str] | None = None,
) -> int:
    """Run ``async_fn()`` on the virtual clock under ``runs`` schedules; fail on the first
    schedule under which it raises.

    Each run is a fresh event loop whose durations (sleeps, timers) are varied within
    ``jitter`` (0.5: each within +-50%), with ties between timers and the order of ready I/O
    events varied, all drawn from the run's seed; ``call_soon`` order stays FIFO and deadlines
    (``asyncio.timeout``, ``wait_for``) stay exact.  Seed 0 is the plain virtual-time schedule.

    Args:
        async_fn: called with no arguments once per run; returns the coroutine to run.
        runs: how many schedules (seeds ``0 .. runs-1``).
        seed: run only this schedule (what a failure names, to replay it).
        jitter: how far a duration may move, as a fraction of it: ``0 <= jitter < 1``.
        json_dir: on failure, write the failing and the passing run's JSON timelines here.

    Returns:
        The number of schedules run (all passed).

    Raises:
        ExploreFailure: a schedule failed; its text names the seed, what the shrunk schedule
            changed, and the first divergence from a passing run.  ``__cause__`` is the error.
        ValueError: a bad ``runs``, ``seed`` or ``jitter``.
        TypeError: ``async_fn`` is not callable.
    """
    check_options(runs, seed, jitter, "explore()")
    if not callable(async_fn):
        msg = f"explore(): async_fn={async_fn!r} is not callable; pass an async function"
        raise TypeError(msg)
    name = getattr(async_fn, "__qualname__", "explore")

    def run(schedule: Schedule, traced: bool) -> RunResult:
        return run_schedule(async_fn, schedule, trace_name=name if traced else None)

    return search(
        run,
        runs=runs,
        seed=seed,
        jitter=float(jitter),
        replay=lambda s: f"explore(..., seed={s})",
        json_dir=Path(json_dir) if json_dir is not None else None,
        json_stem=str(name).replace("<", "").replace(">", ""),
    )
