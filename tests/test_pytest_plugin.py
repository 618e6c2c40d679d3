"""The pytest plugin through pytester: the atrace fixture, loop runners, virtual time, outputs."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import asynctrace

# kept across pytester's in-process runs: one VirtualTimeLoop class
import asynctrace._core._virtual
import asynctrace.testing
from asynctrace._core._decorator import is_traced
from asynctrace._export._chrome_read import read_chrome_json

HERE = Path(__file__).parent
EXAMPLES = HERE.parent / "examples"
BLOG_GATHER = (EXAMPLES / "gather.py").read_text()

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
{extra}
"""

ISSUE_EXAMPLE = """
import time
import blog_gather

async def test_gather_runs_tasks_concurrently(atrace):
    t0 = time.perf_counter()
    await blog_gather.main()
    real = time.perf_counter() - t0
    atrace.assert_overlap("task1", "task2")
    atrace.assert_sequential("task1", "task3")
    atrace.assert_max_concurrency("task*", 2)
    assert atrace.clock == "virtual"
    main = atrace.span("main")
    assert (main.start, main.end) == (0.0, 5.0), main
    assert atrace.span("task3").duration == 3.0
    assert [s.kind for s in atrace.spans("task?")] == ["task", "task", "coroutine"]
    print(f"REAL {real:.4f}")
"""


def project(pytester: pytest.Pytester, ini_extra: str = "", **files: str) -> None:
    pytester.makeini(INI.format(extra=ini_extra))
    pytester.makepyfile(blog_gather=BLOG_GATHER, **files)


def outcomes(result: pytest.RunResult) -> dict[str, int]:
    return {k: v for k, v in result.parseoutcomes().items() if k not in ("warning", "warnings")}


# --- the issue's example, passing and failing ---------------------------------------------


def test_issue_example_passes_in_virtual_time_with_exact_times(pytester: pytest.Pytester) -> None:
    project(pytester, "asynctrace_virtual_time = true", test_at_blog=ISSUE_EXAMPLE)
    t0 = time.perf_counter()
    result = pytester.runpytest_inprocess("-s")
    elapsed = time.perf_counter() - t0
    assert outcomes(result) == {"passed": 1}
    real = float(next(line for line in result.outlines if line.startswith("REAL")).split()[1])
    assert real < 0.5  # 5 s of sleeps in loop time
    assert elapsed < 10


def test_failing_assertion_reports_relation_timeline_clock_and_json(
    pytester: pytest.Pytester,
) -> None:
    project(
        pytester,
        test_at_fail="""
        import pytest
        import blog_gather

        @pytest.mark.asynctrace(virtual_time=True)
        async def test_wrong(atrace):
            await blog_gather.main()
            atrace.assert_overlap("task1", "task3")
    """,
    )
    out = pytester.path / "timelines"
    result = pytester.runpytest_inprocess(f"--asynctrace-json={out}")
    assert outcomes(result) == {"failed": 1}
    path = out / "test_at_fail.py.test_wrong.trace.json"
    result.stdout.fnmatch_lines(
        [
            "E  * task1 ends at 2.000 s, task3 starts at 2.000 s: no overlap (task1 [0.000, 2.000)"
            " and task3 [2.000, 5.000)); equal times, the recorder saw task1 end (seq *) before"
            " task3 start (seq *)",
            "E  * timeline (virtual clock, 0.000 s to 5.000 s, one column = 0.125 s):",
            "E  *   task1  [0.000, 2.000)  |################........................|",
            "E  *   task3  [2.000, 5.000)  |................########################|",
            f"E  * JSON timeline: {path}",
            "*- asynctrace -*",
            "clock: virtual (asynctrace*s virtual time*",
            f"JSON timeline: {path}",
        ]
    )
    saved = read_chrome_json(path)
    assert {s.name for s in saved.spans} >= {"task1", "task2", "task3", "main"}
    assert saved.clock == "virtual"


def test_unknown_name_fails_listing_spans_and_other_errors_get_a_timeline(
    pytester: pytest.Pytester,
) -> None:
    project(
        pytester,
        "asynctrace_virtual_time = true",
        test_at_names="""
        import blog_gather

        async def test_typo(atrace):
            await blog_gather.main()
            atrace.assert_overlap("tsk1", "task2")

        async def test_plain_assert(atrace):
            await blog_gather.main()
            assert atrace.span("task2").duration == 2.0
    """,
    )
    result = pytester.runpytest_inprocess()
    assert outcomes(result) == {"failed": 2}
    result.stdout.fnmatch_lines(
        [
            "E  * no span matches 'tsk1' (did you mean 'task1'*",
            "*task: *task1, task2*",
            "*coroutine: *task3*",
        ]
    )
    # A failure that is not a TraceAssertionError gets the whole timeline in the section.
    result.stdout.fnmatch_lines(
        [
            "*- asynctrace -*",
            "clock: virtual (asynctrace*s virtual time*",
            "JSON timeline: *test_at_names.py.test_plain_assert.trace.json",
            "asynctrace * test_at_names.py::test_plain_assert * virtual clock",
        ]
    )


# --- who runs an async test ---------------------------------------------------------------

RUN_ONCE = """
import asyncio, pathlib, pytest

async def task1():
    await asyncio.sleep(2)

async def task2():
    await asyncio.sleep(1)

@pytest.mark.asynctrace(virtual_time=True)
{mark}
async def test_marked(atrace):
    with open(pathlib.Path(__file__).with_name("runs.txt"), "a") as f:
        f.write(f"{{type(asyncio.get_running_loop()).__name__}}\\n")
    await asyncio.gather(task1(), task2())
    atrace.assert_overlap("task1", "task2")
    assert atrace.clock == "virtual"
    assert atrace.span("task1").duration == 2.0
"""

# (ini lines, -p options, a marker on the test, who runs it)
ASYNC_RUNNERS = {
    "no pytest-asyncio": ("", ["-p", "no:asyncio"], "", "asynctrace"),
    "strict mode": ("asyncio_mode = strict", [], "", "asynctrace"),
    "strict mode, asyncio marker": ("asyncio_mode = strict", [], "@pytest.mark.asyncio", "p-a"),
    "auto mode": ("asyncio_mode = auto", [], "", "pytest-asyncio"),
    "anyio": (
        "asyncio_mode = strict",
        [],
        "@pytest.mark.anyio\n@pytest.mark.parametrize('anyio_backend', ['asyncio'])",
        "anyio",
    ),
}


@pytest.mark.parametrize("runner", list(ASYNC_RUNNERS))
def test_marked_async_test_runs_once_whoever_runs_it(
    pytester: pytest.Pytester, runner: str
) -> None:
    ini, options, mark, _who = ASYNC_RUNNERS[runner]
    pytester.makeini(f"[pytest]\nasyncio_default_fixture_loop_scope = function\n{ini}\n")
    pytester.makepyfile(test_once=RUN_ONCE.format(mark=mark))
    result = pytester.runpytest_inprocess(*options)
    assert outcomes(result) == {"passed": 1}, result.stdout.str()
    assert (pytester.path / "runs.txt").read_text().splitlines() == ["VirtualTimeLoop"]


def test_async_test_that_takes_atrace_runs_in_real_time_without_a_runner_plugin(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_real="""
        import asyncio

        async def test_real(atrace):
            await asyncio.sleep(0.01)
            assert atrace.clock == "monotonic"
            assert atrace.span("test_real", kind="task").status == "unfinished"

        async def test_not_ours():
            pass
    """
    )
    result = pytester.runpytest_inprocess("-p", "no:asyncio")
    assert outcomes(result) == {"passed": 1, "failed": 1}
    # An async test that uses neither the marker nor atrace is left to pytest's own message.
    result.stdout.fnmatch_lines(["*async def functions are not natively supported*"])


def test_virtual_time_asked_but_no_loop_ran_says_so_in_the_report(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_noloop="""
        import pytest

        @pytest.mark.asynctrace(virtual_time=True)
        def test_no_loop(atrace):
            assert False
    """
    )
    result = pytester.runpytest_inprocess()
    assert outcomes(result) == {"failed": 1}
    result.stdout.fnmatch_lines(
        [
            "*- asynctrace -*",
            "clock: virtual time was asked for, but no event loop ran in this test on it, so the"
            " spans are on the monotonic clock*",
        ]
    )


# --- each loop runner ---------------------------------------------------------------------

RUNNERS = {
    "pytest-asyncio-function": (
        "",
        """
        import pytest, blog_gather
        @pytest.mark.asynctrace(virtual_time=True)
        async def test_it(atrace):
            await blog_gather.main()
            check(atrace)
    """,
    ),
    "pytest-asyncio-module": (
        "",
        """
        import pytest, blog_gather
        pytestmark = pytest.mark.asyncio(loop_scope="module")
        async def test_first():
            pass
        @pytest.mark.asynctrace(virtual_time=True)
        async def test_it(atrace):
            await blog_gather.main()
            check(atrace)
    """,
    ),
    "pytest-asyncio-session": (
        "",
        """
        import pytest, blog_gather
        @pytest.mark.asyncio(loop_scope="session")
        @pytest.mark.asynctrace(virtual_time=True)
        async def test_it(atrace):
            await blog_gather.main()
            check(atrace)
    """,
    ),
    "anyio-asyncio": (
        "",
        """
        import pytest, blog_gather
        @pytest.fixture
        def anyio_backend():
            return "asyncio"
        @pytest.mark.anyio
        @pytest.mark.asynctrace(virtual_time=True)
        async def test_it(atrace):
            await blog_gather.main()
            check(atrace)
    """,
    ),
    "asyncio-run": (
        "",
        """
        import asyncio, pytest, blog_gather
        @pytest.mark.asynctrace(virtual_time=True)
        def test_it(atrace):
            asyncio.run(blog_gather.main())
            check(atrace)
    """,
    ),
}

CHECK = """
def check(atrace):
    atrace.assert_overlap("task1", "task2")
    atrace.assert_sequential("task1", "task3")
    atrace.assert_max_concurrency("task*", 2)
    assert atrace.clock == "virtual"
    assert atrace.span("task3").duration == 3.0
    assert atrace.span("task1").duration == 2.0
"""

# Module- and session-scoped loops exist before the test: they are virtual through
# pytest-asyncio's loop factory hook, which asynctrace documents for that case.
FACTORY_CONFTEST = """
from asynctrace import VirtualTimeLoop

def pytest_asyncio_loop_factories(config, item):
    return {"virtual": VirtualTimeLoop}
"""


@pytest.mark.parametrize("runner", list(RUNNERS))
def test_each_loop_runner_records_the_test_in_virtual_time(
    pytester: pytest.Pytester, runner: str
) -> None:
    ini, body = RUNNERS[runner]
    extra = "asyncio_mode = strict" if runner == "anyio-asyncio" else ""
    pytester.makeini(
        INI.replace("asyncio_mode = auto", extra or "asyncio_mode = auto").format(extra=ini)
    )
    pytester.makepyfile(blog_gather=BLOG_GATHER, test_at_runner=CHECK + textwrap.dedent(body))
    if "module" in runner or "session" in runner:
        pytester.makeconftest(FACTORY_CONFTEST)
    result = pytester.runpytest_inprocess()
    assert outcomes(result).get("passed", 0) >= 1, result.stdout.str()
    assert outcomes(result).get("failed", 0) == 0, result.stdout.str()


def test_module_loop_without_factory_fails_clearly_under_virtual_time(
    pytester: pytest.Pytester,
) -> None:
    project(
        pytester,
        test_at_mod="""
        import pytest, blog_gather
        pytestmark = pytest.mark.asyncio(loop_scope="module")
        @pytest.mark.asynctrace(virtual_time=True)
        async def test_it(atrace):
            await blog_gather.main()
    """,
    )
    result = pytester.runpytest_inprocess()
    assert outcomes(result) == {"errors": 1}
    result.stdout.fnmatch_lines(
        [
            "*asynctrace: virtual time was asked for, but test_at_mod.py::test_it runs on"
            " pytest-asyncio's module-scoped loop*pytest_asyncio_loop_factories*",
        ]
    )


def test_real_time_records_monotonic_clock_with_real_durations(
    pytester: pytest.Pytester,
) -> None:
    project(
        pytester,
        test_at_real="""
        import asyncio

        async def short():
            await asyncio.sleep(0.05)

        async def test_real(atrace):
            await asyncio.gather(short(), short())
            assert atrace.clock == "monotonic"
            assert len(atrace.spans("short", kind="task")) == 2
            atrace.assert_min_concurrency("short", 2)
            for span in atrace.spans("short"):
                assert 0.04 < span.duration < 1.0
    """,
    )
    assert outcomes(pytester.runpytest_inprocess()) == {"passed": 1}


# --- virtual time: threads, deadlock ------------------------------------------------------


def test_threads_are_waited_for_in_real_time_and_deadlock_fails_at_once(
    pytester: pytest.Pytester,
) -> None:
    project(
        pytester,
        "asynctrace_virtual_time = true",
        test_at_vt="""
        import asyncio, time

        def work():
            time.sleep(0.05)
            return 42

        async def test_thread(atrace):
            # The 10 s deadline is not jumped to while the thread works.
            assert await asyncio.wait_for(asyncio.to_thread(work), 10) == 42
            job = atrace.span("work", kind="thread")
            # real time, not the deadline: the virtual clock runs at real speed from when the
            # loop begins to wait for the job (on a loaded machine, some ms after it started)
            assert 0.02 < job.duration < 2

        async def test_deadlock(atrace):
            await asyncio.Event().wait()
    """,
    )
    t0 = time.perf_counter()
    result = pytester.runpytest_inprocess()
    assert time.perf_counter() - t0 < 20
    assert outcomes(result) == {"passed": 1, "failed": 1}
    result.stdout.fnmatch_lines(
        [
            "*_ test_deadlock _*",
            "asynctrace.VirtualTimeDeadlock: asynctrace virtual time: deadlock at t=0.000 s: no"
            " task can run*Event.wait*",
            "*- asynctrace -*",
            "clock: virtual (asynctrace*s virtual time*",
        ]
    )
    # Neither asynctrace's frames nor asyncio's: the message says it all.
    assert "_virtual.py" not in result.stdout.str()
    assert "base_events.py" not in result.stdout.str()
    full = pytester.runpytest_inprocess("--fulltrace", "-k", "deadlock")
    assert "_virtual.py" in full.stdout.str()


def test_marker_with_a_wrong_argument_is_an_error_naming_the_fix(
    pytester: pytest.Pytester,
) -> None:
    project(
        pytester,
        test_at_mark="""
        import pytest
        @pytest.mark.asynctrace(virtual=True)
        async def test_it(atrace):
            pass
    """,
    )
    result = pytester.runpytest_inprocess()
    assert outcomes(result) == {"errors": 1}
    result.stdout.fnmatch_lines(
        [
            "*@pytest.mark.asynctrace got virtual; it takes the keywords"
            " virtual_time=True|False, explore=N, seed=S, jitter=J"
        ]
    )


@pytest.mark.skipif(importlib.util.find_spec("looptime") is None, reason="looptime missing")
def test_looptime_clock_is_recorded_and_mixing_it_with_virtual_time_fails(
    pytester: pytest.Pytester,
) -> None:
    project(
        pytester,
        test_at_lt="""
        import pytest, time
        import blog_gather

        @pytest.mark.looptime
        async def test_looptime(atrace):
            t0 = time.perf_counter()
            await blog_gather.main()
            assert time.perf_counter() - t0 < 1
            assert atrace.clock == "looptime"
            atrace.assert_sequential("task1", "task3")
            assert atrace.span("task3").duration == 3.0
            assert atrace.span("main").start == 0.0

        @pytest.mark.looptime
        @pytest.mark.asynctrace(virtual_time=True)
        async def test_both(atrace):
            pass
    """,
    )
    result = pytester.runpytest_inprocess()
    assert outcomes(result) == {"passed": 1, "failed": 1}
    result.stdout.fnmatch_lines(
        [
            "*asynctrace: test_at_lt.py::test_both asks for both looptime and"
            " asynctrace's virtual time; use one*"
        ]
    )


# --- isolation ----------------------------------------------------------------------------


def test_no_spans_leak_between_tests_and_untraced_tests_are_untouched(
    pytester: pytest.Pytester,
) -> None:
    project(
        pytester,
        "asynctrace_virtual_time = true",
        test_at_iso="""
        import asyncio, inspect
        import blog_gather
        from asynctrace._core._decorator import is_traced

        async def helper():
            await asyncio.sleep(1)

        async def test_a(atrace):
            await blog_gather.main()
            assert is_traced(blog_gather.main) and is_traced(helper)
            assert inspect.iscoroutinefunction(blog_gather.main)
            assert len(atrace.spans("task1")) == 1

        async def test_b(atrace):
            await helper()
            assert atrace.spans("task*") == []
            assert [s.name for s in atrace.spans(kind="coroutine")] == ["helper"]
            assert atrace.span("helper").duration == 1.0

        async def test_c_without_fixture():
            assert not is_traced(blog_gather.main) and not is_traced(helper)
            loop = asyncio.get_running_loop()
            assert type(loop).__name__ != "VirtualTimeLoop"
    """,
    )
    result = pytester.runpytest_inprocess("-p", "no:randomly")
    assert outcomes(result) == {"passed": 3}, result.stdout.str()


def test_global_opentelemetry_provider_is_left_alone(pytester: pytest.Pytester) -> None:
    project(
        pytester,
        "asynctrace_virtual_time = true",
        test_at_otel="""
        import pytest
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        import blog_gather

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)

        async def test_traced(atrace):
            with trace.get_tracer("mine").start_as_current_span("my-span") as span:
                await blog_gather.main()
            assert not span.parent  # no asynctrace span became the current span
            atrace.assert_overlap("task1", "task2")

        def test_only_my_span_reached_the_provider():
            assert [s.name for s in exporter.get_finished_spans()] == ["my-span"]
            assert trace.get_tracer_provider() is provider
    """,
    )
    result = pytester.runpytest_inprocess("-p", "no:randomly")
    assert outcomes(result) == {"passed": 2}, result.stdout.str()


# --- options ------------------------------------------------------------------------------


def test_keep_all_writes_a_timeline_per_test(pytester: pytest.Pytester) -> None:
    project(
        pytester,
        "asynctrace_virtual_time = true",
        test_at_keep="""
        import blog_gather
        async def test_one(atrace):
            await blog_gather.main()
        async def test_two(atrace):
            await blog_gather.main()
        def test_not_traced():
            pass
    """,
    )
    out = pytester.path / "tl"
    result = pytester.runpytest_inprocess(f"--asynctrace-json={out}", "--asynctrace-keep=all")
    assert outcomes(result) == {"passed": 3}
    assert sorted(p.name for p in out.iterdir()) == [
        "test_at_keep.py.test_one.trace.json",
        "test_at_keep.py.test_two.trace.json",
    ]
    trace = read_chrome_json(out / "test_at_keep.py.test_one.trace.json")
    run = next(s for s in trace.spans if s.kind == "run")
    assert run.name == "test_at_keep.py::test_one"


def test_passing_tests_write_no_timeline_by_default(pytester: pytest.Pytester) -> None:
    project(pytester, "asynctrace_virtual_time = true", test_at_ok=ISSUE_EXAMPLE)
    out = pytester.path / "tl"
    assert outcomes(pytester.runpytest_inprocess(f"--asynctrace-json={out}")) == {"passed": 1}
    assert not out.exists()


def test_bad_option_values_are_usage_errors_listing_the_valid_values(
    pytester: pytest.Pytester,
) -> None:
    project(pytester, test_at_x="def test_x(): pass")
    result = pytester.runpytest_inprocess("--asynctrace-keep=some")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--asynctrace-keep: invalid choice: 'some' (choose from *failed*, *all*)*"]
    )
    project(pytester, "asynctrace_virtual_time = maybe", test_at_x="def test_x(): pass")
    result = pytester.runpytest_inprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*asynctrace_virtual_time = 'maybe' is not a boolean; use true or false*"]
    )
    project(pytester, test_at_x="def test_x(): pass")
    result = pytester.runpytest_inprocess("--asynctrace-otlp", "test_at_x.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--asynctrace-otlp took 'test_at_x.py', which is a path*"])


def test_no_asynctrace_skips_atrace_tests_and_leaves_others(pytester: pytest.Pytester) -> None:
    project(
        pytester,
        test_at_off="""
        import asyncio, pytest
        async def test_traced(atrace):
            pass
        @pytest.mark.asynctrace(virtual_time=True)
        async def test_marked():
            assert type(asyncio.get_running_loop()).__name__ != "VirtualTimeLoop"
    """,
    )
    result = pytester.runpytest_inprocess("--no-asynctrace", "-rs")
    assert outcomes(result) == {"passed": 1, "skipped": 1}
    result.stdout.fnmatch_lines(["*--no-asynctrace: atrace records nothing*"])


def test_marker_and_options_are_registered(pytester: pytest.Pytester) -> None:
    project(pytester)
    result = pytester.runpytest_inprocess("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.asynctrace(virtual_time=True): *"])
    result = pytester.runpytest_inprocess("--help")
    result.stdout.fnmatch_lines(
        [
            "asynctrace: trace asyncio tests as spans:",
            "*--asynctrace-json=DIR*",
            "*--asynctrace-keep=WHICH*",
            "*--asynctrace-otlp*",
            "*--no-asynctrace*",
            "*asynctrace_virtual_time*",
        ]
    )


# --- OTLP and xdist (subprocesses) --------------------------------------------------------


@pytest.fixture(params=["grpc", "http/protobuf"])
def receiver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    sys.path.insert(0, str(HERE))
    try:
        import otlp_receiver
    finally:
        sys.path.remove(str(HERE))
    for key in list(os.environ):
        if key.startswith("OTEL_") or key.lower().endswith("_proxy"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    yield from otlp_receiver.running(request.param)


def test_otlp_exports_each_test_as_a_trace_rooted_at_its_id(
    pytester: pytest.Pytester, receiver: Any
) -> None:
    project(
        pytester,
        "asynctrace_virtual_time = true",
        test_at_otlp="""
        import blog_gather
        async def test_one(atrace):
            await blog_gather.main()
        async def test_two(atrace):
            await blog_gather.main()
    """,
    )
    result = pytester.runpytest_subprocess(f"--asynctrace-otlp={receiver.endpoint}")
    assert outcomes(result) == {"passed": 2}
    spans = receiver.spans
    roots = {s.name: s for s in spans if s.parent_id is None}
    assert set(roots) == {"test_at_otlp.py::test_one", "test_at_otlp.py::test_two"}
    assert len({s.trace_id for s in spans}) == 2
    for root in roots.values():
        names = {s.name for s in spans if s.trace_id == root.trace_id}
        assert {"task1", "task2", "task3", "main"} <= names
        assert root.span.end_time_unix_nano - root.span.start_time_unix_nano == 5_000_000_000
    assert spans[0].resource["service.name"] == "pytest"


@pytest.mark.skipif(importlib.util.find_spec("xdist") is None, reason="pytest-xdist missing")
def test_parallel_runs_with_xdist_keep_tests_apart(pytester: pytest.Pytester) -> None:
    tests = "\n".join(
        f"""
async def test_{i}(atrace):
    await asyncio.gather(*(work({i}, k) for k in range({i % 3 + 1})))
    assert len(atrace.spans("work", kind="task")) == {i % 3 + 1}
    atrace.assert_max_concurrency("work", {i % 3 + 1})
    assert atrace.span("test_{i}", kind="task")
    assert atrace.trace.end == {i}.0
"""
        for i in range(1, 9)
    )
    project(
        pytester,
        "asynctrace_virtual_time = true",
        test_at_par=f"""
import asyncio

async def work(seconds, k):
    await asyncio.sleep(seconds)

{tests}

async def test_fails(atrace):
    await work(1, 0)
    atrace.assert_max_concurrency("work", 0)
""",
    )
    out = pytester.path / "tl"
    result = pytester.runpytest_subprocess("-n", "2", f"--asynctrace-json={out}")
    assert outcomes(result) == {"passed": 8, "failed": 1}, result.stdout.str()
    assert [p.name for p in out.iterdir()] == ["test_at_par.py.test_fails.trace.json"]


# --- the blog examples, on the fixture, in this suite -------------------------------------


def _example(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(
        f"asynctrace_example_{name}", EXAMPLES / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[spec.name] = module  # imported modules under rootdir are traced by atrace
    return module


gather_example = _example("gather")
async_tasks_example = _example("async_tasks")
coroutine_example = _example("coroutine")


@pytest.mark.asynctrace(virtual_time=True)
@pytest.mark.asyncio
async def test_blog_gather_on_the_fixture(atrace: Any) -> None:
    await gather_example.main()
    atrace.assert_overlap("task1", "task2")
    atrace.assert_sequential("task1", "task3")
    atrace.assert_max_concurrency("task*", 2)
    atrace.assert_duration("main", 5.0)
    atrace.assert_tree("""
        main
          gather(task1, task2)
            task1
            task2
          task3
    """)


@pytest.mark.asynctrace(virtual_time=True)
@pytest.mark.asyncio
async def test_blog_async_tasks_take_3_s_not_5(atrace: Any) -> None:
    await async_tasks_example.main()
    atrace.assert_overlap("task1", "task2")
    atrace.assert_duration("main", 3.0)
    atrace.assert_min_concurrency("task?", 2)


@pytest.mark.asynctrace(virtual_time=True)
def test_blog_coroutine_under_asyncio_run(atrace: Any) -> None:
    import asyncio

    asyncio.run(coroutine_example.my_coroutine())
    atrace.assert_duration("my_coroutine", 2.0)
    trace = atrace.trace  # one snapshot: each access while recording builds a new one
    sleep = asynctrace.testing.find_span(trace, "asyncio.sleep(2)")
    assert sleep.parent is asynctrace.testing.find_span(trace, "my_coroutine")


def test_fixture_objects_are_restored_after_the_blog_tests() -> None:
    assert not is_traced(gather_example.main)
    assert asynctrace.Tracing is not None  # the package stays importable as usual


def test_timeline_file_name_is_clean() -> None:
    from asynctrace._testing._pytest_output import timeline_name

    assert timeline_name("tests/test_a.py::TestX::test_y[1-a/b]") == (
        "tests_test_a.py.TestX.test_y_1-a_b.trace.json"
    )
    assert json.dumps(timeline_name("x" * 400)).count("x") == 150
