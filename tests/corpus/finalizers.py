"""When a finished coroutine's objects are freed: with the garbage collector off, reference
counting alone frees them, at the moment each call returns, as without the tracer.  A cycle
through a call's frame would free them later (at exit) or never, and these lines would move;
the coroutines left to the collector are counted at the end."""

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


async def nested(depth):
    if depth == 0:
        await asyncio.sleep(0)
        return 0
    return 1 + await nested(depth - 1)


async def main():
    print("nested", await nested(5))
    names = await asyncio.gather(hold("a", 1), hold("b", 3), wrapper("c"))
    print("gathered", names)
    task = asyncio.create_task(hold("d", 2))
    print("task returned", await task)
    del task
    print("main ends")


gc.disable()
asyncio.run(main())
print("after run")
gc.set_debug(gc.DEBUG_SAVEALL)
gc.collect()
left = sum(type(o).__name__ == "coroutine" for o in gc.garbage)
print(f"coroutines left to the collector: {left}")
gc.set_debug(0)
gc.garbage.clear()
