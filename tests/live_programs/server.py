"""A small long-running asyncio program for the live view's tests: a producer, consumers that
wait on a queue, a watchdog in a long sleep, a failing job now and then, and a blocked step.

Usage: python server.py [SECONDS]  (default: run until killed); prints a line a second.
"""

import asyncio
import sys
import time


async def consumer(queue: asyncio.Queue[int]) -> None:
    while True:
        item = await queue.get()
        await asyncio.sleep(0.02 * (item % 3))


async def watchdog() -> None:
    while True:
        await asyncio.sleep(30)


async def failing_job(n: int) -> None:
    await asyncio.sleep(0.01)
    raise ValueError(f"job {n} failed")


async def producer(queue: asyncio.Queue[int], seconds: float) -> int:
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await queue.put(n)
        if n % 10 == 0:
            job = asyncio.create_task(failing_job(n))
            await asyncio.gather(job, return_exceptions=True)
        if n % 25 == 24:
            time.sleep(0.15)  # a blocked loop step
            print(f"tick {n}", flush=True)
        n += 1
        await asyncio.sleep(0.04)
    return n


async def main(seconds: float) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    workers = [asyncio.create_task(consumer(queue), name=f"consumer-{i}") for i in range(3)]
    guard = asyncio.create_task(watchdog(), name="watchdog")
    n = await producer(queue, seconds)
    for task in [*workers, guard]:
        task.cancel()
    await asyncio.gather(*workers, guard, return_exceptions=True)
    print(f"done {n}", flush=True)


asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else float("inf")))
