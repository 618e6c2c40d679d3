"""Many event loops: in sequence, in several threads at once, in a thread pool (issue 7, point 3).

Problem: one recorder serves every loop of the process, and a span recorded by a loop in one
thread could land on another thread's track, under another thread's task, or (under virtual
time, where each loop has a clock of its own) on another loop's clock.

Solution: run loops in every arrangement, under ``with asynctrace.tracing()`` and under
``asynctrace run``, and check that each task's spans are on its own track, that parents are
tasks of the same thread, that intervals nest, and that under virtual time each loop's spans
read that loop's clock.  Task names carry the thread's tag so a test can tell threads apart.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import json
import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

import asynctrace
from asynctrace import Span, Trace
from asynctrace._export._chrome_read import read_chrome_json
from asynctrace._model._timeline import row_label

# The program run in threads, in-process (exec) and as a script (asynctrace run).  Every task it
# makes is named "<tag>:<what>", so that each span can be traced back to its thread.  Its main
# coroutine sleeps 0.002 s twice (leaves, then its own) and waits 0.01 s for a thread job.
PROGRAM = """
import asyncio, sys, threading, time

async def leaf(tag, i):
    await asyncio.sleep(0.001 * (i % 3))
    return f"{tag}-{i}"

async def main_of(tag):
    loop = asyncio.get_running_loop()
    children = [loop.create_task(leaf(tag, i), name=f"{tag}:leaf{i}") for i in range(4)]
    results = await asyncio.gather(*children)
    extra = asyncio.create_task(leaf(tag, 99), name=f"{tag}:extra")
    results.append(await extra)
    await asyncio.to_thread(time.sleep, 0.01)
    await asyncio.sleep(0.002)
    return results

def worker(tag, out):
    out[tag] = asyncio.run(main_of(tag))

def run_threads(n):
    out = {}
    threads = [
        threading.Thread(target=worker, args=(f"T{k}", out), name=f"loop-T{k}") for k in range(n)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return out

if __name__ == "__main__":
    for tag, results in sorted(run_threads(4).items()):
        print(tag, results)
"""

TAGS = ("T0", "T1", "T2", "T3")


def _program() -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "threads_program"}
    exec(compile(PROGRAM, "threads_program.py", "exec"), namespace)
    return namespace


def _task_of(span: Span) -> Span:
    """The task (or thread job, or run) whose row ``span`` is drawn on, by its parent chain."""
    while span.kind not in ("task", "thread", "run"):
        assert span.parent is not None, span
        span = span.parent
    return span


def _main_task(span: Span) -> Span:
    """The thread's main task: the outermost task above ``span`` (its parent is the run)."""
    task = _task_of(span)
    while task.parent is not None and task.parent.kind != "run":
        task = _task_of(task.parent)
    return task


def _tag(task: Span) -> str | None:
    name = str(task.attributes.get("asynctrace.task.name", ""))
    return name.split(":", 1)[0] if ":" in name else None


def check_threads_kept_apart(
    trace: Trace, tags: tuple[str, ...], *, eps: float = 0.0, others: int = 0
) -> dict[str, Span]:
    """Every span is on its own task's track, under the main task of its own thread.

    ``eps``: rounding allowed when intervals nest (a JSON file keeps microseconds);
    ``others``: how many spans belong to no tagged thread (an outer loop's).  Returns the
    main task of each tag.
    """
    mains: dict[str, Span] = {}
    threads: dict[str, str] = {}  # tag -> the thread its tasks ran on
    for task in trace.spans_matching(kind="task"):
        tag = _tag(task)
        if tag is None:
            continue
        # a task of a loop in another thread says which thread, and so does its row
        thread = task.attributes.get("thread.name")
        assert isinstance(thread, str) and thread, task.attributes
        assert threads.setdefault(tag, thread) == thread, (tag, thread, threads)
        assert row_label(task).endswith(f"() @{thread}"), row_label(task)
        main = _main_task(task)
        assert main.name == "main_of", (task, main)
        # All tasks of one thread share one main task; two threads never share one.
        assert mains.setdefault(tag, main) is main, (tag, task, main, mains[tag])
    assert sorted(mains) == sorted(tags)
    assert len({m.span_id for m in mains.values()}) == len(tags)
    owner_of_main = {m.span_id: tag for tag, m in mains.items()}
    for task in trace.spans_matching(kind="task"):
        tag = owner_of_main.get(_main_task(task).span_id)
        # a thread's main task too; a task of the test's own loop (the main thread's): none
        assert task.attributes.get("thread.name") == threads.get(tag), (task, tag)
    untagged = 0
    for span in trace:
        if span.kind == "run":
            continue
        # Its track is the task (or thread job) that its parent chain reaches: its own.
        assert span.track == _task_of(span).span_id, span
        main = _main_task(span)
        tag = owner_of_main.get(main.span_id)
        if tag is None:
            untagged += 1
            continue
        own = _tag(_task_of(span))
        assert own in (None, tag), (span, own, tag)
        # Intervals nest: a span lies within its parent (half-open, so ends may meet).
        if span.parent is not None and span.parent.kind != "run":
            parent = span.parent
            assert parent.start - eps <= span.start <= span.end <= parent.end + eps, (
                span,
                parent,
            )
    assert untagged == others
    return mains


@pytest.mark.parametrize("virtual", [False, True], ids=["real", "virtual"])
def test_loops_in_four_threads_at_once_keep_their_spans_apart(virtual: bool) -> None:
    program = _program()
    with asynctrace.tracing(virtual_time=virtual) as tracing:
        out = program["run_threads"](4)
    assert sorted(out) == list(TAGS)
    assert out["T2"] == ["T2-0", "T2-1", "T2-2", "T2-3", "T2-99"]
    trace = tracing.trace
    mains = check_threads_kept_apart(trace, TAGS)
    assert {tag: m.attributes["thread.name"] for tag, m in mains.items()} == {
        tag: f"loop-{tag}" for tag in TAGS
    }
    jobs = trace.spans_matching(kind="thread")
    assert len(jobs) == 4
    assert {_main_task(job).span_id for job in jobs} == {m.span_id for m in mains.values()}
    if virtual:
        # Each loop's spans read that loop's own clock: sleeps are exact, whatever the other
        # loops in the other threads did meanwhile.
        for main in mains.values():
            sleeps = [
                s for s in trace if s.name == "asyncio.sleep(0.002)" and s.track == main.track
            ]
            assert len(sleeps) == 1
            assert sleeps[0].duration == pytest.approx(0.002, abs=1e-9)
            leaves = [
                s
                for s in trace
                if s.kind == "task"
                and s.parent is not None
                and _main_task(s) is main
                and s.name == "leaf"
            ]
            assert sorted(round(s.duration, 9) for s in leaves) == [0.0, 0.0, 0.0, 0.001, 0.002]
        # The run covers every loop.
        (run,) = trace.spans_matching(kind="run")
        assert all(main.end <= run.end for main in mains.values())


def test_sequential_asyncio_runs_continue_the_same_timeline_on_virtual_time() -> None:
    async def main(n: int) -> int:
        await asyncio.sleep(n)
        return n

    with asynctrace.tracing(virtual_time=True) as tracing:
        results = [asyncio.run(main(n)) for n in (1, 2, 3)]
    assert results == [1, 2, 3]
    trace = tracing.trace
    mains = sorted(trace.spans_matching("main", kind="task"), key=lambda s: s.start_seq)
    assert [m.duration for m in mains] == [1.0, 2.0, 3.0]
    # The next run starts where the previous one ended: no overlap, no going back.
    assert mains[0].end <= mains[1].start and mains[1].end <= mains[2].start
    assert all(m.parent is not None and m.parent.kind == "run" for m in mains)
    assert {m.track for m in mains} == {m.span_id for m in mains}


def test_sequential_asyncio_runs_on_real_time_are_separate_tasks() -> None:
    async def child() -> None:
        await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(child(), child())

    with asynctrace.tracing() as tracing:
        for _ in range(3):
            asyncio.run(main())
    trace = tracing.trace
    mains = trace.spans_matching("main", kind="task")
    children = trace.spans_matching("child", kind="task")
    assert len(mains) == 3 and len(children) == 6
    for c in children:
        gather = c.parent
        assert gather is not None and gather.kind == "gather"
        assert gather.track in {m.span_id for m in mains}
        assert gather.start >= trace.by_id[gather.track].start


def test_loops_started_from_a_thread_pool_worker() -> None:
    program = _program()

    def in_worker(tag: str) -> list[str]:
        result: list[str] = asyncio.run(program["main_of"](tag))
        return result

    with (
        asynctrace.tracing() as tracing,
        concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool,
    ):
        results = list(pool.map(in_worker, ["T0", "T1", "T2"]))
    assert [r[0] for r in results] == ["T0-0", "T1-0", "T2-0"]
    check_threads_kept_apart(tracing.trace, ("T0", "T1", "T2"))


def test_a_loop_in_a_thread_pool_started_from_a_traced_loop() -> None:
    """``await loop.run_in_executor(None, asyncio.run, ...)``: a thread job running a loop."""
    program = _program()

    async def outer() -> list[str]:
        loop = asyncio.get_running_loop()
        result: list[str] = await loop.run_in_executor(None, asyncio.run, program["main_of"]("T0"))
        return result

    with asynctrace.tracing() as tracing:
        assert asyncio.run(outer())[0] == "T0-0"
    trace = tracing.trace
    (job,) = [s for s in trace if s.kind == "thread" and s.name == "run"]
    inner_mains = [s for s in trace if s.kind == "task" and s.name == "main_of"]
    assert len(inner_mains) == 1
    # The inner loop's main task started inside the job that ran it, off the outer task.
    assert inner_mains[0].parent is not None and inner_mains[0].parent.kind == "run"
    assert job.start <= inner_mains[0].start <= inner_mains[0].end <= job.end
    # The outer loop's spans: its task, the job, the await on the job.
    check_threads_kept_apart(trace, ("T0",), others=3)


def _nested_run_misuse() -> tuple[str, str, list[str]]:
    async def inner() -> int:
        return 1

    async def main() -> tuple[str, str]:
        try:
            asyncio.run(inner())
        except RuntimeError as exc:
            return type(exc).__qualname__, str(exc)
        return "", ""

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kind, message = asyncio.run(main())
        gc.collect()
    # Only this coroutine's warning: a collection here also finalizes other tests' leftovers.
    about_inner = [str(w.message) for w in caught if ".inner' was never" in str(w.message)]
    return kind, message, about_inner


def test_nested_asyncio_run_raises_the_programs_own_error_unchanged() -> None:
    plain = _nested_run_misuse()
    with asynctrace.tracing() as tracing:
        traced = _nested_run_misuse()
    assert plain[0] == "RuntimeError"
    assert "cannot be called from a running event loop" in plain[1]
    assert traced == plain  # same type, message, and "never awaited" warning
    assert traced[2] == ["coroutine '_nested_run_misuse.<locals>.inner' was never awaited"]
    assert [s.name for s in tracing.trace.spans_matching(kind="task")] == ["main"]


def test_no_lock_is_held_while_a_callback_blocks_in_another_loop() -> None:
    """Loop A's callback blocks its thread until loop B, recording all along, sets an event.

    If asynctrace held a lock across the program's code (A's callback), B could not record
    and A would wait for nothing: the event would not be set in time.
    """
    blocking = threading.Event()
    released = threading.Event()
    b_awaits_while_a_blocked: list[int] = []

    def callback() -> None:
        blocking.set()
        released.wait(10)  # the program's own blocking code, in loop A's thread

    async def loop_a() -> None:
        asyncio.get_running_loop().call_soon(callback)
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    async def loop_b() -> None:
        while not blocking.is_set():
            await asyncio.sleep(0.001)
        for _ in range(50):
            await asyncio.sleep(0)
        b_awaits_while_a_blocked.append(50)
        released.set()

    with asynctrace.tracing(blocked_threshold=0.05) as tracing:
        a = threading.Thread(target=asyncio.run, args=(loop_a(),))
        b = threading.Thread(target=asyncio.run, args=(loop_b(),))
        started = time.monotonic()
        a.start()
        b.start()
        a.join(20)
        b.join(20)
    assert released.is_set() and b_awaits_while_a_blocked == [50]
    assert time.monotonic() - started < 5  # released by B, not by the 10 s timeout
    trace = tracing.trace
    (task_b,) = trace.spans_matching("loop_b", kind="task")
    zero_sleeps = [s for s in trace if s.name == "asyncio.sleep(0)" and s.track == task_b.span_id]
    assert len(zero_sleeps) == 50  # B recorded while A was blocked


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("PYTHONWARNINGS", "PYTHONASYNCIODEBUG", "PYTHONDEVMODE"):
        env.pop(key, None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@pytest.mark.parametrize(
    ("virtual", "pure"),
    [(False, False), (True, False), (False, True)],
    ids=["real", "virtual", "real-without-C"],
)
def test_loops_in_threads_under_asynctrace_run(tmp_path: Path, virtual: bool, pure: bool) -> None:
    script = tmp_path / "threads.py"
    script.write_text(PROGRAM)
    plain = subprocess.run(
        [sys.executable, str(script)], capture_output=True, env=_env(), timeout=60, check=False
    )
    json_path = tmp_path / "t.json"
    flags = ["--virtual-time"] if virtual else []
    env = _env()
    if pure:  # the pure-Python recording, build and JSON writer
        env["ASYNCTRACE_NO_SPEEDUPS"] = "1"
    traced = subprocess.run(
        [
            sys.executable,
            "-m",
            "asynctrace",
            "run",
            "--no-timeline",
            *flags,
            "--json",
            str(json_path),
            str(script),
        ],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert traced.returncode == plain.returncode == 0, traced.stderr
    assert traced.stdout == plain.stdout
    assert plain.stdout.decode().count("T3 ['T3-0'") == 1
    trace = read_chrome_json(json_path)
    mains = check_threads_kept_apart(trace, TAGS, eps=2e-6)
    rows = [
        event["args"]["name"]
        for event in json.loads(json_path.read_text())["traceEvents"]
        if event.get("name") == "thread_name"
    ]
    for tag in TAGS:
        assert f"{tag}:extra leaf() @loop-{tag}" in rows, rows
    assert "run threads.py" in rows
    if virtual:
        for main in mains.values():
            sleeps = [
                s for s in trace if s.name == "asyncio.sleep(0.002)" and s.track == main.track
            ]
            assert len(sleeps) == 1
            assert sleeps[0].duration == pytest.approx(0.002, abs=1e-6)


NESTED = """
import asyncio

async def inner():
    return 1

async def main():
    try:
        asyncio.run(inner())
    except RuntimeError as exc:
        print("caught", type(exc).__name__, exc)
    asyncio.run(inner())

asyncio.run(main())
"""


def test_nested_asyncio_run_under_asynctrace_run_is_unchanged(tmp_path: Path) -> None:
    script = tmp_path / "nested.py"
    script.write_text(NESTED)
    plain = subprocess.run(
        [sys.executable, str(script)], capture_output=True, env=_env(), timeout=60, check=False
    )
    traced = subprocess.run(
        [
            sys.executable,
            "-m",
            "asynctrace",
            "run",
            "--no-timeline",
            "--json",
            str(tmp_path / "n.json"),
            str(script),
        ],
        capture_output=True,
        env=_env(),
        timeout=60,
        check=False,
    )
    assert plain.returncode == traced.returncode == 1
    assert traced.stdout == plain.stdout
    assert b"caught RuntimeError asyncio.run() cannot be called" in plain.stdout
    ours = [ln for ln in traced.stderr.splitlines() if ln.startswith(b"asynctrace:")]
    theirs = sorted(ln for ln in traced.stderr.splitlines() if not ln.startswith(b"asynctrace:"))
    assert theirs == sorted(plain.stderr.splitlines())  # traceback and warnings alike
    assert len(ours) == 1 and b"JSON timeline" in ours[0]
