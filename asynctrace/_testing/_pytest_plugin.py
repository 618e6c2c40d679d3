"""The asynctrace pytest plugin: the ``atrace`` fixture, virtual time, timelines of failed tests.

Problem: a test should assert that work really ran concurrently in one line, on the spans of
exactly that test, under whichever runner drives its loop (pytest-asyncio at any loop scope,
anyio's plugin, a plain ``asyncio.run``), and a failure should explain itself.  Tests that do
not use the plugin MUST run exactly as without it.

Solution: the ``atrace`` fixture owns one :class:`~asynctrace.Tracing` per test, named after
the test id, started at fixture setup and stopped when the test's call phase ends (or at
teardown).  asyncio is instrumented at the class level (``BaseEventLoop.create_task``), so every
loop is seen, whoever made it.  The test's own coroutine functions are traced by
``_pytest_atrace.NamespacePatch`` while the fixture is active.  Virtual time is chosen before
any fixture runs (``pytest_runtest_setup``): loops made through an event loop policy during
the test (pytest-asyncio's function-scoped runner, anyio's runner, ``asyncio.run``) are
:class:`~asynctrace._core._virtual.VirtualTimeLoop` and the recorder reads their clock.  A test that
fails gets a JSON timeline and an ``asynctrace`` report section.  Nothing here touches the
global OpenTelemetry provider; OTLP export builds SDK spans after the test and sends them from
a worker thread.
"""

from __future__ import annotations

import inspect
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# The rest of asynctrace is imported when a test uses it: a session that never does pays
# only for this module.
if TYPE_CHECKING:
    from .._model._spans import Trace
    from ._pytest_atrace import ATrace
    from ._pytest_loops import RunState
    from ._pytest_output import OtlpSink

KEEP_CHOICES = ("failed", "all")
_BOOL_VALUES = {
    "true": True,
    "yes": True,
    "on": True,
    "1": True,
    "false": False,
    "no": False,
    "off": False,
    "0": False,
}
_MARKER_HELP = (
    "asynctrace(virtual_time=True): run the test's event loops on asynctrace's "
    "virtual clock (sleeps take no real time, durations are exact loop time); "
    "asynctrace(explore=N, seed=S, jitter=J): run an async test under N schedules of durations "
    "and timer orders on the virtual clock (docs/testing.md)"
)
_MARKER_KEYS = ("virtual_time", "explore", "seed", "jitter")


class _Settings:
    """The session's options, read once at configure time."""

    def __init__(
        self, disabled: bool, json_dir: Path | None, keep: str, virtual_default: bool
    ) -> None:
        self.explore_runs: int | None = None  # --asynctrace-explore
        self.explore_seed: int | None = None  # --asynctrace-seed
        self.disabled = disabled
        self.json_dir = json_dir
        self.keep = keep
        self.virtual_default = virtual_default
        self.otlp: OtlpSink | None = None
        self.written: set[str] = set()  # timeline paths written this session


_SETTINGS = pytest.StashKey[_Settings]()
_STATE = pytest.StashKey["RunState"]()


# --- options ------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("asynctrace", "asynctrace: trace asyncio tests as spans")
    group.addoption(
        "--asynctrace-json",
        metavar="DIR",
        default=None,
        help="write a JSON timeline (Perfetto) per failed test that uses atrace "
        "into DIR (default: a directory under pytest's basetemp)",
    )
    group.addoption(
        "--asynctrace-keep",
        metavar="WHICH",
        default="failed",
        choices=KEEP_CHOICES,
        help="which tests get a JSON timeline: failed (default) or all",
    )
    group.addoption(
        "--asynctrace-otlp",
        metavar="ENDPOINT",
        nargs="?",
        const="",
        default=None,
        help="export each atrace test as one trace (root span: the test id) over "
        "OTLP; ENDPOINT default from OTEL_EXPORTER_OTLP_* or gRPC on "
        "localhost:4317, a URL ending in /v1/traces means OTLP/HTTP; "
        "write --asynctrace-otlp=ENDPOINT",
    )
    group.addoption(
        "--asynctrace-explore",
        metavar="N",
        default=None,
        help="run each async test on the virtual clock under N schedules (durations within "
        "+-50%%, timer ties, I/O order varied); the first that fails fails the test, named "
        "by its seed",
    )
    group.addoption(
        "--asynctrace-seed",
        metavar="S",
        default=None,
        help="run each async test on the virtual clock under the one schedule of seed S "
        "(replays what a failure under exploration names)",
    )
    group.addoption(
        "--no-asynctrace",
        action="store_true",
        default=False,
        help="record nothing: tests that use atrace are skipped, the asynctrace marker is ignored",
    )
    parser.addini(
        "asynctrace_virtual_time",
        default="false",
        help="true: tests that use atrace run on the virtual clock unless their "
        "asynctrace marker says virtual_time=False (default false)",
    )


def _bool_ini(config: pytest.Config, name: str) -> bool:
    raw = config.getini(name)
    if isinstance(raw, bool):
        return raw
    value = _BOOL_VALUES.get(str(raw).strip().lower())
    if value is None:
        msg = (
            f"ini option {name} = {raw!r} is not a boolean; use true or false "
            f"(valid values: {', '.join(_BOOL_VALUES)})"
        )
        raise pytest.UsageError(msg)
    return value


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _MARKER_HELP)
    json_dir = config.getoption("asynctrace_json")
    keep = config.getoption("asynctrace_keep")
    if keep not in KEEP_CHOICES:  # reachable through config.option set by another plugin
        msg = f"--asynctrace-keep={keep!r} is not valid; use one of: {', '.join(KEEP_CHOICES)}"
        raise pytest.UsageError(msg)
    settings = _Settings(
        disabled=bool(config.getoption("no_asynctrace")),
        json_dir=Path(json_dir).resolve() if json_dir else None,
        keep=keep,
        virtual_default=_bool_ini(config, "asynctrace_virtual_time"),
    )
    explore, seed = config.getoption("asynctrace_explore"), config.getoption("asynctrace_seed")
    if explore is not None or seed is not None:
        from ._pytest_explore import session_option

        settings.explore_runs = session_option(explore, "explore")
        settings.explore_seed = session_option(seed, "seed")
    otlp = config.getoption("asynctrace_otlp")
    if otlp is not None and not settings.disabled:
        from ._pytest_output import OtlpSink, otlp_settings_for

        settings.otlp = OtlpSink(otlp_settings_for(otlp))
    config.stash[_SETTINGS] = settings


def pytest_unconfigure(config: pytest.Config) -> None:
    settings = config.stash.get(_SETTINGS, None)
    if settings is not None and settings.otlp is not None:
        settings.otlp.close()


def pytest_report_header(config: pytest.Config) -> str | None:
    settings = config.stash.get(_SETTINGS, None)
    if settings is None:
        return None
    if settings.disabled:
        return "asynctrace: off (--no-asynctrace)"
    where = str(settings.json_dir) if settings.json_dir else "basetemp/asynctrace"
    line = (
        f"asynctrace: timelines of {settings.keep} tests -> {where}, virtual time "
        f"{'on' if settings.virtual_default else 'off'} by default"
    )
    if settings.otlp is not None:
        line += f", OTLP -> {settings.otlp.settings.display_endpoint}"
    return line


# --- per test -----------------------------------------------------------------------------


def _marker_virtual(item: pytest.Item, default: bool) -> bool:
    marker = item.get_closest_marker("asynctrace")
    if marker is None:
        return default
    unknown = set(marker.kwargs) - set(_MARKER_KEYS)
    if marker.args or unknown:
        bad = ", ".join([repr(a) for a in marker.args] + sorted(unknown))
        pytest.fail(
            f"@pytest.mark.asynctrace got {bad}; it takes the keywords "
            "virtual_time=True|False, explore=N, seed=S, jitter=J",
            pytrace=False,
        )
    value = marker.kwargs.get("virtual_time", True)
    if not isinstance(value, bool):
        pytest.fail(
            f"@pytest.mark.asynctrace(virtual_time={value!r}): pass True or False", pytrace=False
        )
    return value


# trylast: the innermost wrapper, so that other plugins' wrappers (logging) have run their
# setup half when this one fails a test for a bad marker.
@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    settings = item.config.stash[_SETTINGS]
    uses_fixture = "atrace" in getattr(item, "fixturenames", ())
    marked = item.get_closest_marker("asynctrace") is not None
    if settings.disabled or not (uses_fixture or marked):
        return (yield)
    from ._pytest_loops import RunState, asyncio_loop_scope

    virtual = _marker_virtual(item, settings.virtual_default if uses_fixture else False)
    if virtual and asyncio_loop_scope(item) not in (None, "function"):
        virtual_loops = False  # the loop is shared; the fixture checks that it is virtual
    else:
        virtual_loops = virtual
    state = RunState(item, virtual)
    if marked or settings.explore_runs is not None or settings.explore_seed is not None:
        from ._pytest_explore import options_for

        marker = item.get_closest_marker("asynctrace")
        runs, seed = settings.explore_runs, settings.explore_seed
        state.explore = options_for(item, marker, runs, seed, virtual)
    if virtual_loops and state.virtual_loops is not None:
        state.virtual_loops.install()
    item.stash[_STATE] = state
    return (yield)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    finally:
        state = item.stash.get(_STATE, None)
        if state is not None:
            if state.virtual_loops is not None:
                state.virtual_loops.restore()
            del item.stash[_STATE]


@pytest.fixture
def atrace(request: pytest.FixtureRequest) -> Iterator[ATrace]:
    """Record the spans of this test; query them and assert overlap, order and concurrency.

    See docs/testing.md.  Skipped with ``--no-asynctrace``.
    """
    from .._core._virtual import VirtualTimeLoop
    from .._tracing import Tracing
    from ._pytest_atrace import ATrace, NamespacePatch, default_roots
    from ._pytest_loops import RunState, asyncio_loop_scope, asyncio_test_loop

    item = request.node
    settings = request.config.stash[_SETTINGS]
    if settings.disabled:
        pytest.skip("--no-asynctrace: atrace records nothing, so its assertions cannot run")
    state = item.stash.get(_STATE, None)
    if state is None:  # requested late (getfixturevalue): no virtual time chosen in setup
        state = RunState(item, False)
        item.stash[_STATE] = state
    loop = state.loop = asyncio_test_loop(request)
    if state.virtual and not isinstance(loop, VirtualTimeLoop) and loop is not None:
        pytest.fail(
            f"asynctrace: virtual time was asked for, but {item.nodeid} runs on "
            f"pytest-asyncio's {asyncio_loop_scope(item)}-scoped loop, a "
            f"{type(loop).__name__} made before the test; use loop_scope='function', or make "
            "every loop virtual with the pytest_asyncio_loop_factories hook returning "
            "{'virtual': asynctrace.VirtualTimeLoop} (see docs/testing.md)",
            pytrace=False,
        )
    state.json_dir = _json_dir(settings, request)
    # A test's spans MUST NOT reach the project's own OpenTelemetry setup (an in-memory
    # exporter its tests assert on, pytest-opentelemetry): OTLP export is the plugin's own.
    tracing = Tracing(name=item.nodeid, otel=False)
    state.tracing = tracing
    if isinstance(loop, VirtualTimeLoop):
        state.bind(loop)
    elif state.loops:
        state.bind(state.loops[-1])
    tracing.start()  # raises, naming it, if something else is tracing already
    rootdir = str(request.config.rootpath)
    module = getattr(item, "module", None)
    patch = NamespacePatch(default_roots(rootdir, getattr(module, "__file__", None)))
    state.patch = patch
    patch.apply(patch.program_modules([module] if module is not None else []))
    try:
        yield ATrace(tracing, item.nodeid)
    finally:
        trace = state.stop()
        if trace is not None:
            _finish(item, settings, state, trace)


def _finish(item: pytest.Item, settings: _Settings, state: RunState, trace: Trace) -> None:
    from ._pytest_output import write_json

    if settings.keep == "all" and state.json_path is None and state.json_dir is not None:
        state.json_path = write_json(item.nodeid, trace, state.json_dir, settings.written)
    if settings.otlp is not None:
        settings.otlp.submit(item.nodeid, trace)


def _json_dir(settings: _Settings, request: pytest.FixtureRequest) -> Path:
    if settings.json_dir is not None:
        return settings.json_dir
    factory = request.getfixturevalue("tmp_path_factory")
    return Path(factory.getbasetemp()) / "asynctrace"


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    """Under looptime, record on the loop's time while looptime has it on.

    looptime (a plugin that fakes pytest-asyncio's loop time) turns its clock on in its own
    ``pytest_pyfunc_call`` wrapper and off after the test; this wrapper runs inside it.  The
    recording stops with the test function, before the loop's clock turns real again.
    """
    state = pyfuncitem.stash.get(_STATE, None)
    loop = state.loop if state is not None else None
    if state is None or loop is None or not getattr(loop, "looptime_on", False):
        return (yield)
    if state.virtual:
        pytest.fail(
            f"asynctrace: {pyfuncitem.nodeid} asks for both looptime and asynctrace's "
            "virtual time; use one: drop @pytest.mark.looptime (or --looptime), or pass "
            "@pytest.mark.asynctrace(virtual_time=False)",
            pytrace=False,
        )
    if state.tracing is not None and state.tracing.active:
        state.bind(loop, "looptime")
    try:
        return (yield)
    finally:
        state.stop()


@pytest.hookimpl(wrapper=True, specname="pytest_pyfunc_call")
def pytest_pyfunc_call_explore(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    """Run the test under the schedules it explores (``_pytest_explore.py``), if any."""
    state = pyfuncitem.stash.get(_STATE, None)
    if state is None or state.explore is None:
        return (yield)
    from ._pytest_explore import explored

    json_dir = state.json_dir or _json_dir(pyfuncitem.config.stash[_SETTINGS], pyfuncitem._request)
    with explored(pyfuncitem, state, state.explore, json_dir):
        return (yield)


@pytest.hookimpl(specname="pytest_pyfunc_call")
def pytest_pyfunc_call_async(pyfuncitem: pytest.Function) -> bool | None:
    """Run an ``async def`` test that uses asynctrace and that no other plugin runs.

    Problem: pytest cannot run a coroutine function, and pytest-asyncio in its default strict
    mode runs only tests marked ``@pytest.mark.asyncio``: the documented example, marked
    ``@pytest.mark.asynctrace(virtual_time=True)``, failed "async def functions are not
    natively supported" in a fresh project.

    Solution: this plain implementation runs after the ``tryfirst`` ones (anyio's runs a test
    that has an ``anyio_backend`` and returns True, so this one is not called), and
    pytest-asyncio has replaced the test function by a synchronous one before this hook
    (``runtest``) when it runs the test: the test MUST run once, by one runner.  What still is
    a coroutine function here is run on a new loop with ``asyncio.Runner``: virtual when the
    test asks for virtual time (the loops made during the test are), else asyncio's default.
    """
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    if pyfuncitem.get_closest_marker("asynctrace") is None and "atrace" not in getattr(
        pyfuncitem, "fixturenames", ()
    ):
        return None  # not ours: pytest says what to install
    import asyncio

    funcargs = pyfuncitem.funcargs
    testargs = {arg: funcargs[arg] for arg in pyfuncitem._fixtureinfo.argnames}
    with asyncio.Runner() as runner:
        runner.run(pyfuncitem.obj(**testargs))
    return True


# --- failure report -----------------------------------------------------------------------


def _hide_own_frames(item: pytest.Item, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """Leave asynctrace's frames out of a failed test's traceback (``--fulltrace`` keeps them).

    A deadlock under virtual time is raised in the loop's selector (``_virtual.py``), and an
    assertion inside ``asynctrace.testing``: their source lines say nothing about the test.
    """
    if item.config.getoption("fulltrace", False):
        return
    from .._native import PACKAGE_DIR

    traceback = excinfo.traceback
    kept = traceback.filter(lambda entry: not str(entry.path).startswith(PACKAGE_DIR))
    if 0 < len(kept) < len(traceback):
        excinfo.traceback = kept


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    state = item.stash.get(_STATE, None)
    if state is None or call.when != "call":
        return (yield)
    if call.excinfo is not None:
        _hide_own_frames(item, call.excinfo)
    if state.tracing is None:
        return _short_deadlock(item, call, (yield))
    from ..testing import TraceAssertionError
    from ._pytest_output import failure_section, write_json

    # Before the report is made: its text comes from str(exception), which ends with the path.
    trace = state.stop()
    failed = call.excinfo is not None and not call.excinfo.errisinstance(pytest.skip.Exception)
    if trace is not None and failed:
        settings = item.config.stash[_SETTINGS]
        if state.json_dir is not None:
            state.json_path = write_json(item.nodeid, trace, state.json_dir, settings.written)
        error = call.excinfo.value if call.excinfo is not None else None
        if isinstance(error, TraceAssertionError) and state.json_path is not None:
            error.timeline_path = state.json_path
    rep = yield
    if rep.failed and trace is not None:
        error = call.excinfo.value if call.excinfo is not None else None
        section = failure_section(trace, state.json_path, error, virtual=state.virtual)
        rep.sections.append(("asynctrace", section))
    if state.explore is not None:
        from ._pytest_explore import short_failure

        rep = short_failure(item, call, rep)
    return _short_deadlock(item, call, rep)


def _short_deadlock(
    item: pytest.Item, call: pytest.CallInfo[None], rep: pytest.TestReport
) -> pytest.TestReport:
    """A deadlock under virtual time is reported by its message alone (``--fulltrace``: all).

    The loop raises it from its selector, outside the test's coroutine, so its traceback is
    asyncio's and asynctrace's frames only; the message names every waiting task, what it
    waits on and the fix.
    """
    from .._core._virtual import VirtualTimeDeadlock

    error = call.excinfo.value if call.excinfo is not None else None
    fulltrace = item.config.getoption("fulltrace", False)
    if rep.failed and isinstance(error, VirtualTimeDeadlock) and not fulltrace:
        rep.longrepr = f"asynctrace.VirtualTimeDeadlock: {error}"
    return rep
