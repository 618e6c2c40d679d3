"""uvloop as the loop, through uvloop.install() and asyncio.run."""

import asyncio

import uvloop


async def child(n):
    await asyncio.sleep(0.001 * n)
    if n == 3:
        raise ValueError("three")
    return n


async def main():
    loop = asyncio.get_running_loop()
    print("loop module:", type(loop).__module__)
    print(await asyncio.gather(child(1), child(2), child(3), return_exceptions=True))
    task = asyncio.create_task(child(50))
    await asyncio.sleep(0)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        print("cancelled:", task.cancelled())
    try:
        await asyncio.wait_for(child(100), 0.005)
    except TimeoutError:
        print("timed out")
    print("to_thread:", await asyncio.to_thread(sum, [1, 2, 3]))
    return "uvloop result"


uvloop.install()
print(asyncio.run(main()))
