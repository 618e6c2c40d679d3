"""pytest's schedule exploration: ``explore=N``, ``--asynctrace-explore``, ``--asynctrace-seed``.

Problem: an async test runs once, on one runner's loop (pytest-asyncio's, anyio's, or the
plugin's own), while exploring means running its body N times, each on a fresh loop with a
schedule of its own, with the ``atrace`` fixture's assertions checking every run's spans.

Solution: around the test call (``pytest_pyfunc_call``), the test function is swapped for a
synchronous one that runs the search (``_explore_search.search``): each run calls the original
``async def`` with the test's fixture values on a new :class:`~_explore.ExploringLoop`.
pytest-asyncio has already replaced the test by a synchronous wrapper (its ``__wrapped__`` is
the test), and anyio's hook and the plugin's own runner run only coroutine functions, so the
test body MUST run only here.  With ``atrace``, every run is recorded by a Tracing of its own,
which the fixture's object reads; the report's timeline is the failing run's.  Async fixtures
were made on the runner's loop, not on the explored ones: a test whose fixtures hold loop-bound
objects (a started server, a Queue used across) is not explorable as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .._native import PACKAGE_DIR
from .._schedules._explore import DEFAULT_JITTER, DEFAULT_RUNS, Schedule
from .._schedules._explore_search import (
    ExploreFailure,
    RunResult,
    check_options,
    run_schedule,
    search,
)
from .._tracing import Tracing

if TYPE_CHECKING:
    from ._pytest_loops import RunState

_PASSTHROUGH = (pytest.skip.Exception, pytest.xfail.Exception, pytest.exit.Exception)


@dataclass(frozen=True)
class ExploreOptions:
    """How one test is explored."""

    runs: int
    seed: int | None
    jitter: float


def session_option(raw: str | None, name: str) -> int | None:
    """``--asynctrace-explore`` / ``--asynctrace-seed`` as an int; a UsageError otherwise."""
    if raw is None:
        return None
    lowest = 1 if name == "explore" else 0
    try:
        value = int(raw)
    except ValueError:
        value = lowest - 1
    if value < lowest:
        what = "a number of runs, 1 or more" if name == "explore" else "an integer seed, 0 or more"
        msg = f"--asynctrace-{name}={raw!r} is not {what}; write e.g. --asynctrace-{name}=" + (
            "100" if name == "explore" else "7"
        )
        raise pytest.UsageError(msg)
    return value


def options_for(
    item: pytest.Item, marker: pytest.Mark | None, runs: int | None, seed: int | None, virtual: bool
) -> ExploreOptions | None:
    """The test's exploration (marker over session options), or None; fails on a bad value.

    The session's options explore only the tests on the virtual clock.
    """
    kwargs = marker.kwargs if marker is not None else {}
    explore = kwargs.get("explore")
    asked = explore is not None or "seed" in kwargs
    if not asked and (not virtual or (seed is None and runs is None)):
        return None
    if explore is True:
        explore = DEFAULT_RUNS
    chosen_runs = runs if runs is not None else explore if explore is not None else DEFAULT_RUNS
    chosen_seed = seed if seed is not None else kwargs.get("seed")
    jitter = kwargs.get("jitter", DEFAULT_JITTER)
    try:
        check_options(chosen_runs, chosen_seed, jitter, f"@pytest.mark.asynctrace on {item.nodeid}")
    except ValueError as exc:
        pytest.fail(str(exc), pytrace=False)
    if kwargs.get("virtual_time") is False:
        pytest.fail(
            f"@pytest.mark.asynctrace(virtual_time=False, explore=...) on {item.nodeid}: "
            "schedules are explored on the virtual clock; drop virtual_time=False",
            pytrace=False,
        )
    return ExploreOptions(chosen_runs, chosen_seed, float(jitter))


def _async_test(item: pytest.Function) -> Callable[..., Any] | None:
    fn: Any = item.obj
    for _ in range(5):  # pytest-asyncio's synchronous wrapper, maybe another's
        if inspect.iscoroutinefunction(fn):
            return fn  # type: ignore[no-any-return]
        fn = getattr(fn, "__wrapped__", None)
        if fn is None:
            return None
    return None


@contextlib.contextmanager
def explored(
    item: pytest.Function, state: RunState, options: ExploreOptions, json_dir: Path
) -> Iterator[None]:
    """While the test is called, its function runs the search instead of the test once."""
    test = _async_test(item)
    marker = item.get_closest_marker("asynctrace")
    if test is None and (marker is None or not {"explore", "seed"} & set(marker.kwargs)):
        yield  # --asynctrace-explore/-seed leave a synchronous test as it is
        return
    if test is None:
        pytest.fail(
            f"asynctrace: {item.nodeid} is not an async def test; exploring schedules runs "
            "an async test's body on fresh event loops: make it async, or drop explore",
            pytrace=False,
        )
    backend = item.funcargs.get("anyio_backend")
    if backend is not None and "asyncio" not in str(backend):
        pytest.skip(f"asynctrace explores schedules on asyncio only, not on {backend!r}")
    atrace: Any = item.funcargs.get("atrace")
    failing_trace: list[Any] = []

    def use(tracing: Tracing) -> None:
        state.tracing = tracing
        state.trace = None
        if atrace is not None:
            atrace._tracing = tracing

    def run_explored(**kwargs: Any) -> None:
        if state.tracing is not None and state.tracing.active:
            state.tracing.stop()  # the fixture's own recording: each run gets one of its own

        def run(schedule: Schedule, traced: bool) -> RunResult:
            name = item.nodeid if traced or atrace is not None else None
            assert test is not None
            result = run_schedule(
                lambda: test(**kwargs),
                schedule,
                trace_name=name,
                on_tracing=use,
                passthrough=_PASSTHROUGH,
            )
            if result.error is not None and result.trace is not None and traced:
                failing_trace[:] = [result.trace]
            return result

        try:
            search(
                run,
                runs=options.runs,
                seed=options.seed,
                jitter=options.jitter,
                replay=lambda s: f"--asynctrace-seed={s} (or @pytest.mark.asynctrace(seed={s}))",
                json_dir=json_dir,
                json_stem=_stem(item.nodeid),
            )
        except ExploreFailure:
            if failing_trace:
                state.trace = failing_trace[0]
            raise

    original = item.obj
    item.obj = run_explored
    try:
        yield
    finally:
        item.obj = original


def _stem(nodeid: str) -> str:
    from ._pytest_output import timeline_name

    return timeline_name(nodeid)[: -len(".trace.json")]


_HIDDEN = (os.path.dirname(asyncio.__file__) + os.sep, PACKAGE_DIR)


def short_failure(
    item: pytest.Item, call: pytest.CallInfo[None], rep: pytest.TestReport
) -> pytest.TestReport:
    """An exploration's failure as the failing run's traceback (the test's frames) and the
    report: seed, shrunk perturbations, the two runs side by side (``--fulltrace``: all)."""
    error = call.excinfo.value if call.excinfo is not None else None
    if not rep.failed or not isinstance(error, ExploreFailure):
        return rep
    if item.config.getoption("fulltrace", False):
        return rep
    cause = pytest.ExceptionInfo.from_exception(error.error)
    kept = cause.traceback.filter(lambda entry: not str(entry.path).startswith(_HIDDEN))
    if len(kept):
        cause.traceback = kept
    failing_run = cause.getrepr(style="short", chain=False)
    rep.longrepr = f"{failing_run}\n\nasynctrace explore: {error}"
    return rep
