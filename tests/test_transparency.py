"""The traced program must not notice the tracer (issue 2, point 7).

Problem: ``asynctrace run`` wraps every task's coroutine, every program ``async def`` and
``asyncio.gather``; any of these could change what the program prints, returns, raises, or
how it exits.

Solution: every program in ``tests/corpus/`` is run with plain ``python`` and with
``asynctrace run --no-timeline --json PATH`` (on the real and on the virtual clock).  Stdout
MUST be byte-identical, the exit status identical, and stderr identical once asynctrace's own
``asynctrace:`` lines are taken out: tracebacks included, so asynctrace's frames MUST NOT show.
Then the JSON timeline of each traced run is read back and its spans' statuses and names are
checked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from asynctrace import Span, Trace
from asynctrace._export._chrome_read import read_chrome_json
from bench.process import bare_venv

TESTS = Path(__file__).resolve().parent
CORPUS = TESTS / "corpus"
TIMEOUT = 60


@dataclass(frozen=True)
class Case:
    """One corpus program and how to run it."""

    name: str
    args: tuple[str, ...] = ()
    stdin: bytes = b""
    module: bool = False  # run as ``-m corpus.NAME`` from tests/ (relative imports)
    python: tuple[int, int] = (3, 10)  # the oldest Python the program runs on

    def command(self) -> list[str]:
        if self.module:
            return ["-m", f"corpus.{self.name}", *self.args]
        return [f"{self.name}.py", *self.args]

    @property
    def cwd(self) -> Path:
        return TESTS if self.module else CORPUS


CASES = [
    Case("gather_errors"),
    Case("taskgroup_fail", python=(3, 11)),
    Case("cancellation"),
    Case("timeouts", python=(3, 11)),
    Case("asyncgen"),
    Case("sys_exit"),
    Case("uncaught"),
    Case("syntax_error"),
    Case("keyboard_interrupt"),
    Case("uvloop_install"),
    Case("uvloop_run", python=(3, 11)),
    Case("return_values"),
    Case("introspection"),
    Case("program_env", args=("one", "--json", "x", "-m", "two words"), stdin=b"first\nsecond\n"),
    Case("relative_import", args=("a", "--no-json"), module=True),
    Case("primitives"),
    Case("methods"),
    Case("waiting"),
    Case("stack_and_warnings"),
    Case("finalizers"),
]
CLOCKS = ("real", "virtual")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("PYTHONWARNINGS", "PYTHONASYNCIODEBUG", "PYTHONDEVMODE", "PYTHONSTARTUP"):
        env.pop(key, None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def _run(argv: list[str], case: Case) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, *argv],
        input=case.stdin,
        capture_output=True,
        cwd=case.cwd,
        env=_env(),
        timeout=TIMEOUT,
        check=False,
    )


@dataclass
class Pair:
    plain: subprocess.CompletedProcess[bytes]
    traced: subprocess.CompletedProcess[bytes]
    json_path: Path

    def trace(self) -> Trace:
        assert self.json_path.is_file(), (
            f"no JSON timeline written; stderr:\n{self.traced.stderr.decode()}"
        )
        return read_chrome_json(self.json_path)


class Runs:
    """Runs each (case, clock) once per session: the transparency and span tests share it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.plain: dict[str, subprocess.CompletedProcess[bytes]] = {}
        self.pairs: dict[tuple[str, str], Pair] = {}

    def get(self, case: Case, clock: str) -> Pair:
        if case.name not in self.plain:
            self.plain[case.name] = _run(case.command(), case)
        key = (case.name, clock)
        if key not in self.pairs:
            json_path = self.tmp / f"{case.name}-{clock}.trace.json"
            options = ["--no-timeline", "--json", str(json_path)]
            if clock == "virtual":
                options.append("--virtual-time")
            traced = _run(["-m", "asynctrace", "run", *options, *case.command()], case)
            self.pairs[key] = Pair(self.plain[case.name], traced, json_path)
        return self.pairs[key]


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    return Runs(tmp_path_factory.mktemp("transparency"))


def _case(name: str) -> Case:
    return _needs(next(c for c in CASES if c.name == name))


def _needs(case: Case) -> Case:
    if sys.version_info < case.python:
        pytest.skip(f"{case.name} needs Python {'.'.join(map(str, case.python))}")
    return case


def _split_stderr(stderr: bytes) -> tuple[str, list[str]]:
    """(the program's stderr, asynctrace's own lines)."""
    program: list[str] = []
    ours: list[str] = []
    for line in stderr.decode("utf-8", "replace").splitlines(keepends=True):
        (ours if line.startswith("asynctrace:") else program).append(line)
    return "".join(program), [line.rstrip("\n") for line in ours]


# -- the program does not notice ------------------------------------------------------------


@pytest.mark.parametrize("clock", CLOCKS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_same_stdout_stderr_and_exit_status(runs: Runs, case: Case, clock: str) -> None:
    _needs(case)
    pair = runs.get(case, clock)
    program_err, ours = _split_stderr(pair.traced.stderr)
    assert pair.traced.stdout.decode() == pair.plain.stdout.decode()
    assert pair.traced.stdout == pair.plain.stdout
    assert program_err == pair.plain.stderr.decode()
    assert pair.traced.returncode == pair.plain.returncode
    # asynctrace says one thing only: where the JSON timeline is (no internal failure reports),
    # or, for a program that does not compile, that it wrote none.
    assert len(ours) == 1, ours
    if case.name == "syntax_error":
        assert ours[0].startswith("asynctrace: no timeline written: "), ours
    else:
        assert ours[0].startswith(f"asynctrace: JSON timeline: {pair.json_path}"), ours


def test_corpus_is_not_trivial(runs: Runs) -> None:
    """The plain runs exit as each program means to: the comparison above compares something."""
    expected = {
        "sys_exit": 3,
        "uncaught": 1,
        "syntax_error": 1,
        "taskgroup_fail": 1,
        "uvloop_run": 1,
        "keyboard_interrupt": -2,
    }
    for case in CASES:
        if sys.version_info < case.python:
            continue
        plain = runs.get(case, "real").plain
        assert plain.returncode == expected.get(case.name, 0), (case.name, plain.stderr.decode())
        assert plain.stdout or case.name == "syntax_error", case.name
    assert b"ExceptionGroup" in runs.get(_case("taskgroup_fail"), "real").plain.stderr
    assert b"SyntaxError" in runs.get(_case("syntax_error"), "real").plain.stderr
    assert b"DeprecationWarning" in runs.get(_case("stack_and_warnings"), "real").plain.stderr


# -- the spans carry the right status and names ----------------------------------------------


def _spans(trace: Trace, kind: str, name: str) -> list[Span]:
    found = trace.spans_matching(name, kind=kind)
    assert found, f"no {kind} span named {name!r}; have {sorted({s.name for s in trace})}"
    return found


def _statuses(spans: list[Span]) -> list[str]:
    return [s.status for s in spans]


def _in_task(trace: Trace, span: Span) -> Span:
    """The task (or run) span whose row ``span`` is on."""
    return trace.by_id[span.track]


def _check_gather_errors(trace: Trace) -> None:
    gathers = trace.spans_matching("gather(*", kind="gather")
    assert len(gathers) >= 3, gathers
    assert [g.status for g in gathers[:3]] == ["error", "ok", "cancelled"], gathers
    assert gathers[0].error == "ValueError: boom 2"
    assert gathers[0].attributes.get("exception.type") == "ValueError"
    booms = _spans(trace, "task", "boom")
    assert _statuses(booms) == ["error", "error"]
    assert all(b.error == "ValueError: boom 2" for b in booms)
    assert all(b.attributes.get("exception.type") == "ValueError" for b in booms)
    oks = _spans(trace, "task", "ok")
    assert _statuses(oks) == ["ok"] * 4 + ["cancelled"] * 2
    # The gather's tasks are its children.
    assert {c.name for c in gathers[0].children if c.kind == "task"} >= {"ok", "boom"}
    assert _spans(trace, "task", "main")[0].status == "ok"
    sleeps = _spans(trace, "await", "asyncio.sleep(0.01)")
    assert all(_in_task(trace, s).name in ("ok", "boom", "main") for s in sleeps)


def _check_taskgroup_fail(trace: Trace) -> None:
    workers = {
        s.error if s.status == "error" else s.status: s for s in _spans(trace, "task", "worker")
    }
    assert "KeyError: 'worker 2'" in workers
    assert workers["KeyError: 'worker 2'"].attributes.get("exception.type") == "KeyError"
    assert "cancelled" in workers
    bad = _spans(trace, "task", "bad_type")
    assert _statuses(bad) == ["error"]
    assert bad[0].error == "TypeError: bad type in group"
    main = _spans(trace, "task", "main")[0]
    assert main.status == "error"
    assert main.attributes.get("exception.type") in ("ExceptionGroup", "BaseExceptionGroup")
    assert _spans(trace, "coroutine", "uncaught")[0].status == "error"
    assert _spans(trace, "coroutine", "caught")[0].status == "ok"


def _check_cancellation(trace: Trace) -> None:
    sleepers = _spans(trace, "task", "sleeper")
    assert _statuses(sleepers) == ["cancelled"] * 3
    assert sleepers[0].attributes.get("asynctrace.task.name") == "victim"
    assert _statuses(_spans(trace, "task", "stubborn")) == ["ok"]
    cancelled_sleeps = [s for s in _spans(trace, "await", "asyncio.sleep(10)")]
    assert _statuses(cancelled_sleeps) == ["cancelled"] * 4
    main = _spans(trace, "task", "main")[0]
    assert main.status == "ok"
    victim_await = [s for s in main.children if s.kind == "await" and "victim" in s.name]
    assert victim_await, [s.name for s in main.children]
    assert victim_await[0].name == "victim (sleeper)"


def _check_timeouts(trace: Trace) -> None:
    main = _spans(trace, "task", "main")[0]
    assert main.status == "ok"
    assert all(s.status != "error" for s in trace)
    # Every await an expiry cut short is a timeout, on every Python: wait_for(slow(5)) (a task
    # of wait_for's own up to 3.11, the caller's from 3.12), asyncio.timeout(), timeout_at(),
    # and wait_for(task), which cancels the task it waits for.
    sleeps = _spans(trace, "await", "asyncio.sleep(5)")
    assert _statuses(sleeps) == ["timeout"] * 4, [(s.status, s.error) for s in sleeps]
    assert all(s.duration < 1 for s in sleeps)
    timeouts = [s for s in trace if s.status == "timeout"]
    assert all(s.attributes.get("exception.type") == "TimeoutError" for s in timeouts), timeouts
    # What was cut short is cancelled: the three slow(5) calls, one of them the named task.
    cut = [s for s in trace.spans_matching("slow") if s.status != "ok"]
    assert _statuses(cut) == ["cancelled"] * 3, cut
    assert [s.attributes.get("asynctrace.task.name") for s in cut if s.kind == "task"][-1] == (
        "slow-task"
    )


def _check_uncaught(trace: Trace) -> None:
    assert _statuses(_spans(trace, "task", "load")) == ["ok"]
    assert _spans(trace, "task", "load")[0].attributes.get("asynctrace.task.name") == "loader"
    loads = _spans(trace, "coroutine", "load")
    assert _statuses(loads) == ["error"]
    assert loads[0].error == "RuntimeError: cannot load 'not a number'"
    parses = _spans(trace, "coroutine", "parse")
    assert sorted(_statuses(parses)) == ["error", "ok"]
    main = _spans(trace, "task", "main")[0]
    assert (main.status, main.attributes.get("exception.type")) == ("error", "RuntimeError")


def _check_sys_exit(trace: Trace) -> None:
    inner = _spans(trace, "coroutine", "inner")[0]
    assert inner.status == "error"
    assert inner.attributes.get("exception.type") == "SystemExit"


def _check_keyboard_interrupt(trace: Trace) -> None:
    main = _spans(trace, "task", "main")[0]
    assert main.attributes.get("exception.type") == "KeyboardInterrupt"
    assert _spans(trace, "await", "asyncio.sleep(0.001)")


def _check_uvloop(trace: Trace) -> None:
    assert trace.spans_matching("main", kind="task") or trace.spans_matching(
        "main", kind="coroutine"
    )
    children = _spans(trace, "task", "child")
    assert len(children) >= 2
    assert _spans(trace, "gather", "gather(*")
    assert any(s.name.startswith("asyncio.sleep(") for s in trace.spans_matching(kind="await"))


def _check_uvloop_install(trace: Trace) -> None:
    _check_uvloop(trace)
    statuses = sorted(_statuses(_spans(trace, "task", "child")))
    assert statuses.count("error") == 1 and statuses.count("cancelled") >= 1, statuses
    assert _spans(trace, "thread", "sum")


def _check_uvloop_run(trace: Trace) -> None:
    _check_uvloop(trace)
    names = {s.attributes.get("asynctrace.task.name") for s in _spans(trace, "task", "child")}
    assert {"tg-0", "tg-1", "tg-2"} <= names
    # uvloop.run runs main() inside its own `wrapper` coroutine: main is that task's coroutine.
    main = trace.spans_matching("main")[0]
    assert (main.status, main.error) == ("error", "LookupError: uvloop failure")


def _check_return_values(trace: Trace) -> None:
    assert _statuses(_spans(trace, "task", "make")) == ["ok"] * 5
    threads = _spans(trace, "thread", "blocking")
    assert len(threads) == 4
    assert all(t.status == "ok" for t in threads)


def _check_primitives(trace: Trace) -> None:
    for name in ("Queue.get", "Lock.acquire", "Event.wait", "Semaphore.acquire"):
        assert _spans(trace, "await", name)
    assert _spans(trace, "await", "Condition.wait*")
    assert all(s.status == "ok" for s in trace if s.kind != "run")
    for name in ("producer", "consumer", "locked", "limited", "waiter", "cond_waiter"):
        assert _statuses(_spans(trace, "task", name)) == ["ok"] * len(
            trace.spans_matching(name, kind="task")
        )


def _check_methods(trace: Trace) -> None:
    for name in (
        "Store.fetch",
        "Store.static",
        "Store.build",
        "Store.decorated",
        "Store.flaky",
        "Store.__call__",
        "inner",
        "innermost",
        "Base.twice",
    ):
        assert _spans(trace, "coroutine", name)
    inner = _spans(trace, "coroutine", "innermost")[0]
    assert inner.attributes["code.function.name"] == "outer.<locals>.inner.<locals>.innermost"
    assert inner.parent is not None and inner.parent.name == "inner"
    # The program's own functools.wraps decorators are program code: traced too.
    assert _spans(trace, "coroutine", "wrapper")
    flaky = _spans(trace, "coroutine", "Store.flaky")
    # self.calls is 2 after twice(): attempts at calls 3 and 4 fail, the third succeeds.
    assert _statuses(flaky) == ["error", "error", "ok"], flaky
    assert flaky[0].error == "ValueError: calls=3"


def _check_waiting(trace: Trace) -> None:
    jobs = {s.attributes.get("asynctrace.task.name"): s for s in _spans(trace, "task", "job")}
    assert jobs["shielded-job"].status == "ok"
    statuses = _statuses(_spans(trace, "task", "job"))
    assert statuses.count("error") == 1, statuses
    # as_completed(timeout=...) leaves job("never") pending: asyncio.run cancels it at the end.
    assert statuses.count("cancelled") == 1, statuses
    assert _spans(trace, "await", "shielded-job (job)") or _spans(trace, "await", "*shield*")


def _check_program_env(trace: Trace) -> None:
    double = _spans(trace, "coroutine", "double")
    assert str(double[0].attributes.get("code.file.path")).endswith("_helper.py")
    assert _spans(trace, "thread", "*read*")


def _check_relative_import(trace: Trace) -> None:
    assert len(_spans(trace, "coroutine", "double")) == 2


def _check_asyncgen(trace: Trace) -> None:
    assert _statuses(_spans(trace, "task", "main")) == ["ok"]
    assert _spans(trace, "coroutine", "Connection.__aenter__")
    assert _spans(trace, "coroutine", "Connection.__aexit__")


CHECKS: dict[str, Callable[[Trace], None]] = {
    "gather_errors": _check_gather_errors,
    "taskgroup_fail": _check_taskgroup_fail,
    "cancellation": _check_cancellation,
    "timeouts": _check_timeouts,
    "uncaught": _check_uncaught,
    "sys_exit": _check_sys_exit,
    "keyboard_interrupt": _check_keyboard_interrupt,
    "uvloop_install": _check_uvloop_install,
    "uvloop_run": _check_uvloop_run,
    "return_values": _check_return_values,
    "primitives": _check_primitives,
    "methods": _check_methods,
    "waiting": _check_waiting,
    "program_env": _check_program_env,
    "relative_import": _check_relative_import,
    "asyncgen": _check_asyncgen,
}


@pytest.mark.parametrize("clock", CLOCKS)
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_spans_status_and_names(runs: Runs, name: str, clock: str) -> None:
    trace = runs.get(_case(name), clock).trace()
    CHECKS[name](trace)
    unfinished = [s for s in trace if s.status == "unfinished"]
    assert not unfinished, unfinished


def test_syntax_error_writes_no_timeline(runs: Runs) -> None:
    """Nothing ran, so no timeline is written (issue 15); one line of ours says so."""
    pair = runs.get(_case("syntax_error"), "real")
    assert not pair.json_path.exists()
    _, ours = _split_stderr(pair.traced.stderr)
    assert ours == [
        "asynctrace: no timeline written: syntax_error.py did not compile, so nothing ran"
    ]


# -- a test suite under asynctrace run ------------------------------------------------------

SUITE = """\
import asyncio


async def compute():
    await asyncio.sleep(0)
    return [1, 2, 3]


def test_passes():
    assert asyncio.run(compute()) == [1, 2, 3]


def test_fails_with_pytests_own_explanation():
    assert asyncio.run(compute()) == [1, 2, 4]
"""


def test_pytest_under_asynctrace_run_prints_what_it_prints_alone(tmp_path: Path) -> None:
    """``asynctrace run -m pytest`` on a plain install (not editable, as users have it):
    pytest's report, its warnings summary and its assertion explanations, is the one it prints
    without us, and so is its exit status.

    pytest marks the package of every plugin it loads by entry point for assertion rewriting
    and warns (``PytestAssertRewriteWarning``, in the report) about a package imported before it
    started: ``asynctrace run`` imports asynctrace first.  This checkout's editable install
    hides it (its distribution lists no package), hence the plain install of the bench."""
    venv, why = bare_venv()
    assert venv is not None, why
    (tmp_path / "test_suite.py").write_text(SUITE, encoding="utf-8")
    pytest_args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "test_suite.py"]
    python = os.path.join(venv, "bin", "python")
    run = ["-m", "asynctrace", "run", "--no-json", "--no-timeline"]
    plain, traced = (
        subprocess.run(
            [python, *prefix, *pytest_args],
            capture_output=True,
            cwd=tmp_path,
            env=_env(),
            timeout=TIMEOUT,
            check=False,
        )
        for prefix in ([], run)
    )
    timing = re.compile(rb" in \d+\.\d+s\b")
    assert timing.sub(b"", traced.stdout) == timing.sub(b"", plain.stdout)
    assert b"1 failed, 1 passed" in plain.stdout
    assert b"assert [1, 2, 3] == [1, 2, 4]" in plain.stdout
    assert traced.returncode == plain.returncode == 1
    program, _ = _split_stderr(traced.stderr)
    assert program == plain.stderr.decode()
