"""Tasks that end while attached, for tests/test_attach.py: one fails (its exception is never
retrieved: asyncio logs it), one blocks the loop, then ends."""

import asyncio
import gc
import time


async def fails() -> None:
    await asyncio.sleep(2.0)
    raise ValueError("boom")


async def blocks() -> str:
    await asyncio.sleep(1.6)
    time.sleep(0.3)  # holds the loop: a blocked step
    await asyncio.sleep(0.1)
    return "ok"


async def main() -> None:
    failing = asyncio.create_task(fails())
    blocking = asyncio.create_task(blocks())
    print("ready", flush=True)
    print(await blocking)
    await asyncio.sleep(2.5)
    del failing  # never retrieved: asyncio says so when the task goes
    gc.collect()
    await asyncio.sleep(0.2)
    print("end")


asyncio.run(main())
