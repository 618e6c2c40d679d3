"""A plain program for tests/test_attach.py that checks, at its end, that it was left as found.

It makes a short task every 0.1 s (tasks made while attached are recorded whole), and at the
end prints whether asyncio's functions, sys.path, sys.monitoring, its threads and its tasks'
coroutines are what they were before any attach.  Its output is the same, attached or not.
"""

import asyncio
import sys
import threading
import time
import types

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 6.0


def state(loop: asyncio.AbstractEventLoop) -> dict[str, object]:
    return {
        "create_task": asyncio.BaseEventLoop.create_task,
        "run_in_executor": asyncio.BaseEventLoop.run_in_executor,
        "gather": asyncio.gather,
        "Task": asyncio.Task,
        "to_thread": asyncio.to_thread,
        "new_event_loop": asyncio.new_event_loop,
        "task_factory": loop.get_task_factory(),
        "sys.path": list(sys.path),
        "monitoring": [sys.monitoring.get_tool(tool) for tool in range(6)],
        "threads": threading.active_count(),
    }


async def job(n: int) -> int:
    await asyncio.sleep(0.05)
    return n


async def main() -> None:
    loop = asyncio.get_running_loop()
    before = state(loop)
    print("ready", flush=True)
    jobs = []
    end = time.monotonic() + SECONDS
    n = 0
    while time.monotonic() < end:
        jobs.append(asyncio.create_task(job(n)))
        n += 1
        await asyncio.sleep(0.1)
    print("jobs", len(await asyncio.gather(*jobs)) > 0)
    after = state(loop)
    changed = [key for key in before if before[key] != after[key]]
    print("changed:", changed)
    wrapped = [t for t in asyncio.all_tasks() if not isinstance(t.get_coro(), types.CoroutineType)]
    print("wrapped tasks:", len(wrapped))


asyncio.run(main())
