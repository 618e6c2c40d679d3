"""The blog examples tested as a user of the `atrace` fixture would: virtual time, no sleeps.

Each example module is imported as it is (no decorators in it); the fixture traces its
coroutine functions for the test.  All of these together take well under a second.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


blog_gather = load("gather")
blog_async = load("async_tasks")
blog_coroutine = load("coroutine")
blog_event_loop = load("event_loop")

pytestmark = [pytest.mark.asyncio, pytest.mark.asynctrace(virtual_time=True)]


async def test_gather_runs_task1_and_task2_together_then_task3(atrace: Any) -> None:
    await blog_gather.main()
    atrace.assert_overlap("task1", "task2")
    atrace.assert_sequential("task1", "task3")
    atrace.assert_sequential("task2", "task3")
    atrace.assert_max_concurrency("task*", 2)
    atrace.assert_duration("main", 5.0)
    atrace.assert_tree("""
        main
          gather(task1, task2)
          task3
            asyncio.sleep(3)
    """)


async def test_async_tasks_take_3s_not_5(atrace: Any) -> None:
    await blog_async.main()
    atrace.assert_overlap("task1", "task2")
    atrace.assert_duration("main", 3.0)
    atrace.assert_within("task2", "task1")


async def test_a_coroutine_pauses_at_its_await(atrace: Any) -> None:
    await blog_coroutine.my_coroutine()
    atrace.assert_duration("asyncio.sleep(2)", 2.0)
    atrace.assert_within("asyncio.sleep(2)", "my_coroutine")


async def test_the_event_loop_runs_the_task_to_completion(atrace: Any) -> None:
    await blog_event_loop.task()
    atrace.assert_duration("task", 1.0)
    atrace.assert_max_concurrency("task", 1)
