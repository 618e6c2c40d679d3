"""Every blog example in examples/, run as a user runs it, and its timeline checked.

The asynchronous examples run through the real command (`python -m asynctrace run
--virtual-time`) and their JSON timelines are read back: durations are exact loop time.
The two that block with ``time.sleep`` cannot use the virtual clock (blocking is real time),
so they run in-process with ``time.sleep`` scaled down 100x and the blocked threshold with it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

import asynctrace
from asynctrace import testing
from asynctrace._core._autotrace import compile_script, exec_script, install_finder, remove_finder
from asynctrace._export._chrome_read import read_chrome_json
from asynctrace._model._spans import Trace

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], Trace]:
    """Run an example under `asynctrace run --virtual-time`; its output and its timeline."""
    json_path = tmp_path / f"{name}.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "asynctrace",
            "run",
            "--virtual-time",
            "--json",
            str(json_path),
            str(EXAMPLES / f"{name}.py"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc, read_chrome_json(str(json_path))


def test_async_tasks_overlap_and_take_3s_not_5(tmp_path: Path) -> None:
    proc, trace = run_example("async_tasks", tmp_path)
    assert proc.stdout.splitlines() == [
        "Starting task 1",
        "Starting task 2",
        "Task 2 complete",
        "Task 1 complete",
    ]
    testing.assert_overlap(trace, "task1", "task2")
    testing.assert_duration(trace, testing.find_span(trace, "main", kind="task"), 3.0)
    testing.assert_duration(trace, testing.find_span(trace, "asyncio.sleep(3)"), 3.0)
    testing.assert_duration(trace, testing.find_span(trace, "asyncio.sleep(2)"), 2.0)
    testing.assert_tree(
        trace,
        """
        main
          gather(task1, task2)
        task1
          asyncio.sleep(3)
        task2
          asyncio.sleep(2)
    """,
    )
    assert "overlap 2.000 s" in proc.stderr


def test_gather_runs_task1_task2_together_then_task3(tmp_path: Path) -> None:
    proc, trace = run_example("gather", tmp_path)
    assert proc.stdout.splitlines() == [
        "Task 1 started",
        "Task 2 started",
        "Task 2 complete",
        "Task 1 complete",
        "Task 3 started",
        "Task 3 complete",
    ]
    testing.assert_overlap(trace, "task1", "task2")
    testing.assert_sequential(trace, "task1", "task3")
    testing.assert_sequential(trace, "task2", "task3")
    testing.assert_max_concurrency(trace, "task[12]", 2)
    main = testing.find_span(trace, "main", kind="task")
    testing.assert_duration(trace, main, 5.0)
    task3 = testing.find_span(trace, "task3")
    assert task3.kind == "coroutine" and task3.parent is main and task3.track == main.track
    sleep3 = testing.find_span(trace, "asyncio.sleep(3)")
    assert sleep3.kind == "await" and sleep3.parent is task3
    assert sleep3.attributes["code.file.path"] == str(EXAMPLES / "gather.py")
    assert sleep3.attributes["code.line.number"] == 20  # the line of `await asyncio.sleep(3)`
    gather = testing.find_span(trace, "gather(task1, task2)", kind="gather")
    assert {c.name for c in gather.children if c.kind == "task"} == {"task1", "task2"}
    assert gather.parent is main
    for span in trace:
        assert span.status == "ok", span


def test_coroutine_example_awaits_2s(tmp_path: Path) -> None:
    proc, trace = run_example("coroutine", tmp_path)
    assert proc.stdout.splitlines() == ["Coroutine started", "Coroutine ended"]
    coro = testing.find_span(trace, "my_coroutine")
    sleep = testing.find_span(trace, "asyncio.sleep(2)")
    assert sleep.parent is coro and sleep.duration == pytest.approx(2.0, abs=1e-9)
    assert sleep.attributes["code.line.number"] == 8


def test_event_loop_example_runs_one_task_for_1s(tmp_path: Path) -> None:
    proc, trace = run_example("event_loop", tmp_path)
    assert proc.stdout.splitlines() == ["Task started", "Task completed"]
    task = testing.find_span(trace, "task", kind="task")
    testing.assert_duration(trace, task, 1.0)
    assert [c.name for c in task.children] == ["asyncio.sleep(1)"]


def _run_scaled(
    name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Trace:
    """Run a blocking example in-process with time.sleep 100x shorter; returns its trace."""
    real_sleep = time.sleep
    monkeypatch.setattr(time, "sleep", lambda seconds: real_sleep(seconds / 100))
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])
    path = str(EXAMPLES / f"{name}.py")
    finder = install_finder([str(EXAMPLES)])
    try:
        with asynctrace.tracing(name=name, blocked_threshold=0.005) as tracing:
            exec_script(compile_script(path), path, [])
    finally:
        remove_finder(finder)
    assert capsys.readouterr().out.splitlines() == [
        "Starting task 1",
        "Task 1 complete",
        "Starting task 2",
        "Task 2 complete",
    ]
    return tracing.trace


def test_blocking_gather_shows_no_overlap_and_blocked_spans(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = _run_scaled("blocking_gather", capsys, monkeypatch)
    testing.assert_sequential(trace, "task1", "task2")
    testing.assert_max_concurrency(trace, "task[12]", 1)
    blocked = trace.spans_matching("blocked", kind="blocked")
    assert [b.parent.name for b in blocked if b.parent] == ["task1", "task2"]
    assert blocked[0].duration >= 0.03 and blocked[1].duration >= 0.02
    assert blocked[0].attributes["code.file.path"] == str(EXAMPLES / "blocking_gather.py")


def test_sync_example_has_no_tasks_at_all(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = _run_scaled("sync_tasks", capsys, monkeypatch)
    assert [s.kind for s in trace] == ["run"]
    assert trace.spans[0].duration >= 0.05
