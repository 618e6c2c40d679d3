"""When a finished coroutine's objects are freed: with the garbage collector off, reference
counting alone frees them, at the moment each call returns, as without the tracer.  A cycle
through a call's frame would free them later (at exit) or never, and these lines would move."""

import asyncio
import gc


class Noisy:
    def __init__(self, name):
        self.name = name

    def __del__(self):
        print(f"freed {self.name}")


async def hold(name, steps):
    thing = Noisy(name)
    for _ in range(steps):
        await asyncio.sleep(0)
    return thing.name


async def wrapper(name):
    held = Noisy(f"{name} (wrapper)")
    result = await hold(name, 2)
    print(f"{held.name} got {result}")
    return result


async def main():
    names = await asyncio.gather(hold("a", 1), hold("b", 3), wrapper("c"))
    print("gathered", names)
    task = asyncio.create_task(hold("d", 2))
    print("task returned", await task)
    del task
    print("main ends")


gc.disable()
asyncio.run(main())
print("after run")
