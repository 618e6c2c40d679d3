"""wait_for and asyncio.timeout() expiry, and the happy paths."""

import asyncio


async def slow(n):
    await asyncio.sleep(n)
    return f"slept {n}"


async def main():
    print(await asyncio.wait_for(slow(0.01), timeout=1))
    try:
        await asyncio.wait_for(slow(5), timeout=0.02)
    except TimeoutError as exc:
        print("wait_for timed out:", type(exc).__name__, isinstance(exc, asyncio.TimeoutError))
    try:
        async with asyncio.timeout(0.02) as cm:
            await slow(5)
    except TimeoutError:
        print("asyncio.timeout expired:", cm.expired())
    async with asyncio.timeout(1) as cm:
        print(await slow(0.01), "expired:", cm.expired())
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout_at(loop.time() + 0.02):
            await asyncio.sleep(5)
    except TimeoutError:
        print("timeout_at expired")
    task = asyncio.create_task(slow(5), name="slow-task")
    try:
        await asyncio.wait_for(task, 0.01)
    except TimeoutError:
        await asyncio.sleep(0)
        print("task cancelled by wait_for:", task.cancelled())


asyncio.run(main())
