"""The synchronous tasks as ``async def`` in ``gather``, still calling ``time.sleep``.

Nothing overlaps: ``time.sleep`` blocks the event loop, so task 2 cannot start until task 1
returns.  Under asynctrace each ``time.sleep`` shows as a ``blocked`` span (about 5 s in all).
"""

import asyncio
import time


async def task1():
    print("Starting task 1")
    time.sleep(3)
    print("Task 1 complete")


async def task2():
    print("Starting task 2")
    time.sleep(2)
    print("Task 2 complete")


async def main():
    await asyncio.gather(task1(), task2())


if __name__ == "__main__":
    asyncio.run(main())
