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
:class:`~asynctrace._virtual.VirtualTimeLoop` and the recorder reads their clock.  A test that
fails gets a JSON timeline and an ``asynctrace`` report section.  Nothing here touches the
global OpenTelemetry provider; OTLP export builds SDK spans after the test and sends them from
a worker thread.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import os
import re
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from . import _instrument
from ._pytest_atrace import ATrace, NamespacePatch, default_roots
from ._spans import Trace
from ._tracing import Tracing, report
from ._virtual import VirtualTimeLoop, use_loop_clock
from .testing import TraceAssertionError

__all__ = ["ATrace"]

KEEP_CHOICES = ("failed", "all")
_BOOL_VALUES = {"true": True, "yes": True, "on": True, "1": True,
                "false": False, "no": False, "off": False, "0": False}
_MARKER_HELP = ("asynctrace(virtual_time=True): run the test's event loops on asynctrace's "
                "virtual clock (sleeps take no real time, durations are exact loop time)")
_MAX_NAME = 150


@dataclass
class _Settings:
    disabled: bool
    json_dir: Path | None
    keep: str
    virtual_default: bool
    otlp: Any = None  # _otlp.OtlpExport, made at the first test that needs it
    otlp_settings: Any = None
    written: set[str] = field(default_factory=set)


_SETTINGS = pytest.StashKey[_Settings]()
_STATE = pytest.StashKey["_TestState"]()


# --- options ------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("asynctrace", "asynctrace: trace asyncio tests as spans")
    group.addoption("--asynctrace-json", metavar="DIR", default=None,
                    help="write a JSON timeline (Perfetto) per failed test that uses atrace "
                         "into DIR (default: a directory under pytest's basetemp)")
    group.addoption("--asynctrace-keep", metavar="WHICH", default="failed", choices=KEEP_CHOICES,
                    help="which tests get a JSON timeline: failed (default) or all")
    group.addoption("--asynctrace-otlp", metavar="ENDPOINT", nargs="?", const="", default=None,
                    help="export each atrace test as one trace (root span: the test id) over "
                         "OTLP; ENDPOINT default from OTEL_EXPORTER_OTLP_* or gRPC on "
                         "localhost:4317, a URL ending in /v1/traces means OTLP/HTTP; "
                         "write --asynctrace-otlp=ENDPOINT")
    group.addoption("--no-asynctrace", action="store_true", default=False,
                    help="record nothing: tests that use atrace are skipped, the asynctrace "
                         "marker is ignored")
    parser.addini("asynctrace_virtual_time", default="false",
                  help="true: tests that use atrace run on the virtual clock unless their "
                       "asynctrace marker says virtual_time=False (default false)")


def _bool_ini(config: pytest.Config, name: str) -> bool:
    raw = config.getini(name)
    if isinstance(raw, bool):
        return raw
    value = _BOOL_VALUES.get(str(raw).strip().lower())
    if value is None:
        msg = (f"ini option {name} = {raw!r} is not a boolean; use true or false "
               f"(valid values: {', '.join(_BOOL_VALUES)})")
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
    otlp = config.getoption("asynctrace_otlp")
    if otlp is not None and not settings.disabled:
        settings.otlp_settings = _otlp_settings(otlp)
    config.stash[_SETTINGS] = settings


def _otlp_settings(endpoint: str) -> Any:
    if endpoint and "://" not in endpoint and os.path.exists(endpoint):
        msg = (f"--asynctrace-otlp took {endpoint!r}, which is a path, as its endpoint; write "
               "--asynctrace-otlp=ENDPOINT, or put --asynctrace-otlp after the test paths")
        raise pytest.UsageError(msg)
    from ._otlp_config import otlp_settings

    protocol = None
    if endpoint.rstrip("/").endswith("/v1/traces") and not any(
        os.environ.get(f"OTEL_EXPORTER_OTLP_{k}PROTOCOL") for k in ("", "TRACES_")
    ):
        protocol = "http/protobuf"  # the OTLP/HTTP path; gRPC has no path
    try:
        return otlp_settings(endpoint or None, protocol, default_service="pytest")
    except ValueError as exc:
        raise pytest.UsageError(f"--asynctrace-otlp: {exc}") from None


def pytest_unconfigure(config: pytest.Config) -> None:
    settings = config.stash.get(_SETTINGS, None)
    if settings is not None and settings.otlp is not None:
        settings.otlp.close()  # bounded wait; warns once on stderr if spans were not sent
        settings.otlp = None


def pytest_report_header(config: pytest.Config) -> str | None:
    settings = config.stash.get(_SETTINGS, None)
    if settings is None:
        return None
    if settings.disabled:
        return "asynctrace: off (--no-asynctrace)"
    where = str(settings.json_dir) if settings.json_dir else "basetemp/asynctrace"
    line = (f"asynctrace: timelines of {settings.keep} tests -> {where}, virtual time "
            f"{'on' if settings.virtual_default else 'off'} by default")
    if settings.otlp_settings is not None:
        line += f", OTLP -> {settings.otlp_settings.display_endpoint}"
    return line


# --- per test -----------------------------------------------------------------------------


class _VirtualLoops:
    """While installed, event loop policies make :class:`VirtualTimeLoop`\\ s.

    Patches ``new_event_loop`` of asyncio's base policy class (what ``asyncio.run``,
    ``asyncio.Runner``, pytest-asyncio's runners and anyio's runner call): those runners may
    install their own policy instance, so swapping the current policy is not enough.
    """

    def __init__(self, on_new_loop: Callable[[VirtualTimeLoop], None]) -> None:
        self._on_new_loop = on_new_loop
        self._cls: Any = getattr(asyncio.events, "BaseDefaultEventLoopPolicy", None) or getattr(
            asyncio.events, "_BaseDefaultEventLoopPolicy", None)
        self._saved: Any = None
        self._patch: Any = None

    def install(self) -> None:
        if self._cls is None:
            return
        _instrument.install()  # first, so that its own class patch cannot replace ours later
        self._saved = self._cls.__dict__["new_event_loop"]
        on_new_loop = self._on_new_loop

        def new_event_loop(policy: Any) -> asyncio.AbstractEventLoop:
            loop = VirtualTimeLoop()
            on_new_loop(loop)
            return loop

        self._patch = new_event_loop
        self._cls.new_event_loop = new_event_loop

    def restore(self) -> None:
        if self._patch is not None and self._cls.__dict__.get("new_event_loop") is self._patch:
            self._cls.new_event_loop = self._saved
        self._patch = None


class _TestState:
    """What the plugin knows of one test: its virtual loops, its tracing and its outputs."""

    def __init__(self, item: pytest.Item, virtual: bool) -> None:
        self.item = item
        self.virtual = virtual
        self.loops: list[VirtualTimeLoop] = []
        self.tracing: Tracing | None = None
        self.bound = False
        self.patch: NamespacePatch | None = None
        self.virtual_loops = _VirtualLoops(self._on_new_loop) if virtual else None
        self.trace: Trace | None = None
        self.json_path: str | None = None
        self.json_dir: Path | None = None

    def _on_new_loop(self, loop: VirtualTimeLoop) -> None:
        self.loops.append(loop)
        if self.tracing is not None and self.tracing.active:
            self.bind(loop)

    def bind(self, loop: VirtualTimeLoop) -> None:
        """Record on ``loop``'s clock: exact loop time if nothing was recorded yet."""
        assert self.tracing is not None
        recorder = self.tracing.recorder
        if not self.bound and not recorder.records:
            recorder.use_clock(loop.time, "virtual")
            recorder.origin = loop.time()
        else:
            use_loop_clock(recorder, loop)
        self.bound = True

    def stop(self) -> Trace | None:
        """Stop recording (idempotent); returns the final trace."""
        if self.tracing is not None and self.trace is None:
            self.trace = self.tracing.stop()
        if self.patch is not None:
            self.patch.restore()
            self.patch = None
        return self.trace


def _marker_virtual(item: pytest.Item, default: bool) -> bool:
    marker = item.get_closest_marker("asynctrace")
    if marker is None:
        return default
    unknown = set(marker.kwargs) - {"virtual_time"}
    if marker.args or unknown:
        bad = ", ".join([repr(a) for a in marker.args] + sorted(unknown))
        pytest.fail(f"@pytest.mark.asynctrace got {bad}; it takes one keyword: "
                    "virtual_time=True or virtual_time=False", pytrace=False)
    value = marker.kwargs.get("virtual_time", True)
    if not isinstance(value, bool):
        pytest.fail(f"@pytest.mark.asynctrace(virtual_time={value!r}): pass True or False",
                    pytrace=False)
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
    virtual = _marker_virtual(item, settings.virtual_default if uses_fixture else False)
    if virtual and _pytest_asyncio_scope(item) not in (None, "function"):
        virtual_loops = False  # the loop is shared; the fixture checks that it is virtual
    else:
        virtual_loops = virtual
    state = _TestState(item, virtual)
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


def _pytest_asyncio_scope(item: pytest.Item) -> str | None:
    """The loop scope of a pytest-asyncio test, None for any other test."""
    try:
        from pytest_asyncio import is_async_test
    except ImportError:
        return None
    if not is_async_test(item):
        return None
    return str(getattr(item, "_loop_scope", "function"))


def _pytest_asyncio_loop(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoop | None:
    """The loop pytest-asyncio will run this test on (made now if not yet), else None."""
    scope = _pytest_asyncio_scope(request.node)
    if scope is None:
        return None
    try:
        runner = request.getfixturevalue(f"_{scope}_scoped_runner")
        loop = runner.get_loop()
    except (pytest.FixtureLookupError, AttributeError):  # another pytest-asyncio layout
        return None
    return loop if isinstance(loop, asyncio.AbstractEventLoop) else None


@pytest.fixture
def atrace(request: pytest.FixtureRequest) -> Iterator[ATrace]:
    """Record the spans of this test; query them and assert overlap, order and concurrency.

    See docs/testing.md.  Skipped with ``--no-asynctrace``.
    """
    item = request.node
    settings = request.config.stash[_SETTINGS]
    if settings.disabled:
        pytest.skip("--no-asynctrace: atrace records nothing, so its assertions cannot run")
    state = item.stash.get(_STATE, None)
    if state is None:  # requested late (getfixturevalue): no virtual time chosen in setup
        state = _TestState(item, False)
        item.stash[_STATE] = state
    loop = _pytest_asyncio_loop(request)
    if state.virtual and not isinstance(loop, VirtualTimeLoop) and loop is not None:
        pytest.fail(
            f"asynctrace: virtual time was asked for, but {item.nodeid} runs on "
            f"pytest-asyncio's {_pytest_asyncio_scope(item)}-scoped loop, a "
            f"{type(loop).__name__} made before the test; use loop_scope='function', or make "
            "every loop virtual with the pytest_asyncio_loop_factories hook returning "
            "{'virtual': asynctrace.VirtualTimeLoop} (see docs/testing.md)",
            pytrace=False,
        )
    state.json_dir = _json_dir(settings, request)
    tracing = Tracing(name=item.nodeid)
    state.tracing = tracing
    if isinstance(loop, VirtualTimeLoop):
        state.bind(loop)
    elif state.loops:
        state.bind(state.loops[-1])
    rootdir = str(request.config.rootpath)
    module = getattr(item, "module", None)
    patch = NamespacePatch(default_roots(rootdir, getattr(module, "__file__", None)))
    patch.apply(patch.program_modules([module] if module is not None else []))
    state.patch = patch
    tracing.start()
    try:
        yield ATrace(tracing, item.nodeid)
    finally:
        trace = state.stop()
        if trace is not None:
            _finish(item, settings, state, trace)


def _finish(item: pytest.Item, settings: _Settings, state: _TestState, trace: Trace) -> None:
    if settings.keep == "all" and state.json_path is None:
        state.json_path = _write_json(item, settings, trace, state.json_dir)
    if settings.otlp_settings is not None:
        try:
            if settings.otlp is None:
                from ._otlp import OtlpExport

                settings.otlp = OtlpExport(settings.otlp_settings)
            from ._otlp import new_span_id_base, new_trace_id

            settings.otlp.submit(trace, trace_id=new_trace_id(), span_id_base=new_span_id_base())
        except Exception as exc:  # an exporter MUST NOT fail the test
            report(f"OTLP export of {item.nodeid} failed: {exc}")


def _json_dir(settings: _Settings, request: pytest.FixtureRequest) -> Path:
    if settings.json_dir is not None:
        return settings.json_dir
    factory = request.getfixturevalue("tmp_path_factory")
    return Path(factory.getbasetemp()) / "asynctrace"


def timeline_name(nodeid: str) -> str:
    """A file name for a test's timeline: the test id with path and odd characters as ``_``."""
    name = re.sub(r"[^A-Za-z0-9_.=-]+", "_", nodeid.replace("::", "."))
    return name.strip("_.")[:_MAX_NAME] + ".trace.json"


def _write_json(item: pytest.Item, settings: _Settings, trace: Trace,
                directory: Path | None) -> str | None:
    if directory is None:
        return None
    try:
        from ._chrome import write_chrome_json

        directory.mkdir(parents=True, exist_ok=True)
        path = directory / timeline_name(item.nodeid)
        stem, n = str(path)[: -len(".trace.json")], 2
        while str(path) in settings.written:  # two ids that clean up to the same name
            path = Path(f"{stem}-{n}.trace.json")
            n += 1
        settings.written.add(str(path))
        write_chrome_json(trace, path)
        return str(path)
    except Exception as exc:  # the timeline is ours: MUST NOT change the test's outcome
        report(f"could not write the JSON timeline of {item.nodeid}: {exc}")
        return None


# --- failure report -----------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    state = item.stash.get(_STATE, None)
    if state is None or state.tracing is None or call.when != "call":
        return (yield)
    # Before the report is made: its text comes from str(exception), which ends with the path.
    trace = state.stop()
    failed = call.excinfo is not None and not call.excinfo.errisinstance(pytest.skip.Exception)
    if trace is not None and failed:
        settings = item.config.stash[_SETTINGS]
        state.json_path = _write_json(item, settings, trace, state.json_dir)
        error = call.excinfo.value if call.excinfo is not None else None
        if isinstance(error, TraceAssertionError) and state.json_path is not None:
            error.timeline_path = state.json_path
    rep = yield
    if rep.failed and trace is not None:
        rep.sections.append(("asynctrace", _section(state, trace, call)))
    return rep


def _section(state: _TestState, trace: Trace, call: pytest.CallInfo[None]) -> str:
    lines = [f"clock: {trace.clock} ({'virtual time' if trace.clock == 'virtual' else 'real'})",
             f"JSON timeline: {state.json_path or 'not written'}"]
    error = call.excinfo.value if call.excinfo is not None else None
    if isinstance(error, TraceAssertionError):
        lines.append("the spans involved are drawn in the error above")
    else:
        try:
            from ._terminal import render_timeline

            lines += ["", render_timeline(trace, width=100, color=False, max_rows=30)]
        except Exception as exc:  # a report helper MUST NOT hide the failure it describes
            lines.append(f"(no timeline: {exc})")
    return "\n".join(lines)
