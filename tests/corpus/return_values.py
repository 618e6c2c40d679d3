"""Return values through gather, create_task, to_thread, run_in_executor, ensure_future."""

import asyncio
import concurrent.futures
import functools


class Box:
    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return f"Box({self.value!r})"


def blocking(x, y=1):
    return Box(x * y)


async def make(x):
    await asyncio.sleep(0)
    return Box(x)


async def nothing():
    await asyncio.sleep(0)


async def main():
    sentinel = Box("same object")

    async def give():
        await asyncio.sleep(0)
        return sentinel

    print(await asyncio.gather(make(1), make("two"), nothing()))
    task = asyncio.create_task(make([3]))
    print(await task, task.result())
    print("identity kept:", (await asyncio.create_task(give())) is sentinel)
    print("identity via gather:", (await asyncio.gather(give()))[0] is sentinel)
    print(await asyncio.to_thread(blocking, 4, y=5))
    loop = asyncio.get_running_loop()
    print(await loop.run_in_executor(None, blocking, 6))
    print(await loop.run_in_executor(None, functools.partial(blocking, 7, y=2)))
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        print(await loop.run_in_executor(pool, blocking, 8))
    print(await asyncio.ensure_future(make(9)))
    print(await loop.create_task(make(10)))
    fut = loop.create_future()
    loop.call_soon(fut.set_result, Box("future"))
    print(await fut)
    print(await nothing())
    return sentinel


print("asyncio.run returned:", asyncio.run(main()))
