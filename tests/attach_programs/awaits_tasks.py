"""A main task that awaits its tasks one after the other, for tests/test_attach.py."""

import asyncio


async def worker(n: int) -> int:
    for _ in range(n * 15):
        await asyncio.sleep(0.1)
    return n


async def main() -> None:
    tasks = [asyncio.create_task(worker(n), name=f"worker-{n}") for n in (1, 2, 3)]
    print("ready", flush=True)
    for task in tasks:
        print(await task)


asyncio.run(main())
