"""A plain producer/consumer program for tests/test_attach.py: started with plain python.

It prints what it consumed and exits with status 3, the same whether it was attached or not.
"""

import asyncio
import sys

ITEMS = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
DELAY = float(sys.argv[2]) if len(sys.argv) > 2 else 0.005


async def producer(queue: asyncio.Queue[int | None]) -> None:
    for item in range(ITEMS):
        await asyncio.sleep(DELAY)
        await queue.put(item)
    await queue.put(None)


async def consumer(queue: asyncio.Queue[int | None]) -> int:
    total = 0
    while (item := await queue.get()) is not None:
        total += item
        if item % 250 == 0:
            print("consumed", item, flush=True)
    return total


async def main() -> int:
    queue: asyncio.Queue[int | None] = asyncio.Queue()
    print("ready", flush=True)
    _, total = await asyncio.gather(producer(queue), consumer(queue))
    print("total", total)
    return 3


sys.exit(asyncio.run(main()))
