"""asyncio misuse surfaced: tasks destroyed pending, exceptions never retrieved; blocking."""

from __future__ import annotations

import asyncio
import gc
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

import asynctrace
from asynctrace import testing
from asynctrace._model._spans import Trace


def traced_run(main: Callable[[], Coroutine[Any, Any, Any]], **options: Any) -> Trace:
    options.setdefault("virtual_time", True)
    with asynctrace.tracing(**options) as tracing:
        asyncio.run(main())
    return tracing.trace


async def fails() -> None:
    await asyncio.sleep(1)
    raise ValueError("boom")


async def forgets_a_failure() -> None:
    task = asyncio.create_task(fails(), name="lost")
    await asyncio.sleep(2)
    del task  # its exception never retrieved
    gc.collect()
    await asyncio.sleep(0)


async def waits_forever() -> None:
    await asyncio.Event().wait()


async def drops_a_pending_task() -> None:
    asyncio.get_running_loop().create_task(waits_forever())
    await asyncio.sleep(0)


@pytest.mark.parametrize("virtual_time", [True, False])
def test_a_task_exception_never_retrieved_is_a_misuse_span_on_its_task(
    virtual_time: bool, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        trace = traced_run(forgets_a_failure, virtual_time=virtual_time)
    assert "Task exception was never retrieved" in caplog.text  # asyncio still says it
    (misuse,) = testing.find_spans(trace, kind="misuse")
    assert misuse.name == "task exception never retrieved"
    assert misuse.attributes["asynctrace.misuse.detail"] == "ValueError: boom"
    assert misuse.parent is not None and misuse.parent.name == "fails"
    assert misuse.track == misuse.parent.span_id and misuse.duration == 0
    with pytest.raises(testing.TraceAssertionError) as failure:
        testing.assert_no_misuse(trace)
    assert (
        "task exception never retrieved in lost fails() (made in forgets_a_failure):"
        " ValueError: boom"
    ) in str(failure.value)


def test_a_task_destroyed_while_pending_is_a_misuse_span() -> None:
    async def main() -> None:
        await drops_a_pending_task()
        gc.collect()
        await asyncio.sleep(0)

    trace = traced_run(main, virtual_time=False)  # the virtual loop keeps its waiting tasks
    misuse = testing.find_spans(trace, "task destroyed while pending", kind="misuse")
    assert [m.parent.name for m in misuse if m.parent is not None] == ["waits_forever"]


def test_a_clean_run_passes_and_blocking_is_checked() -> None:
    async def main() -> None:
        time.sleep(0.15)  # blocks the loop
        await asyncio.sleep(0.01)

    trace = traced_run(main, virtual_time=False)
    testing.assert_no_misuse(trace)
    testing.assert_no_blocking(trace, threshold=0.5)
    with pytest.raises(testing.TraceAssertionError, match=r"1 step held the loop:\n  0\.1"):
        testing.assert_no_blocking(trace)


def test_a_coroutine_never_awaited_is_a_misuse_span_and_the_warning_is_unchanged(
    tmp_path: Path,
) -> None:
    script = tmp_path / "forgot.py"
    script.write_text(
        "import asyncio\n"
        "async def fetch():\n"
        "    await asyncio.sleep(0)\n"
        "async def main():\n"
        "    fetch()\n"
        "    await asyncio.sleep(0)\n"
        "asyncio.run(main())\n"
    )
    plain = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    traced = subprocess.run(
        [sys.executable, "-m", "asynctrace", "run", "--no-timeline", "--json", "t.json",
         str(script)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert traced.returncode == plain.returncode == 0
    warning = f"{script}:5: RuntimeWarning: coroutine 'fetch' was never awaited"
    assert warning in plain.stderr
    assert traced.stderr.startswith(plain.stderr)  # the same lines, then asynctrace's own
    trace = asynctrace.load(str(tmp_path / "t.json"))
    (misuse,) = testing.find_spans(trace, "coroutine never awaited", kind="misuse")
    assert misuse.attributes["asynctrace.misuse.detail"] == "fetch() at forgot.py:5"
    assert misuse.parent is not None and misuse.parent.name == "main"  # dropped in main
    with pytest.raises(testing.TraceAssertionError, match="coroutine never awaited"):
        testing.assert_no_misuse(trace)


def test_with_asyncios_debug_mode_a_misused_task_says_where_it_was_made() -> None:
    with asynctrace.tracing() as tracing:
        asyncio.run(forgets_a_failure(), debug=True)
    (misuse,) = testing.find_spans(tracing, kind="misuse")
    line = forgets_a_failure.__code__.co_firstlineno + 1  # its create_task
    assert misuse.attributes["asynctrace.misuse.detail"] == (
        f"ValueError: boom; made at test_misuse.py:{line}"
    )
