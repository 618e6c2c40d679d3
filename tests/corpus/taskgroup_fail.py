"""A failing TaskGroup: siblings are cancelled, the ExceptionGroup is uncaught.

TaskGroup cancels its tasks in the order of a set of tasks, which hash by address: that order
is the program's own nondeterminism, so cancellations are printed sorted.
"""

import asyncio

cancelled = []


async def worker(n):
    try:
        await asyncio.sleep(n * 0.05)
        if n == 2:
            raise KeyError(f"worker {n}")
        print("worker", n, "done")
        return n
    except asyncio.CancelledError:
        cancelled.append(n)
        raise


async def caught():
    try:
        async with asyncio.TaskGroup() as tg:
            for n in (1, 2):
                tg.create_task(worker(n))
            tg.create_task(worker(5))
    except ExceptionGroup as group:
        print("caught", repr(group), [repr(e) for e in group.exceptions])


async def uncaught():
    async with asyncio.TaskGroup() as tg:
        tg.create_task(worker(1))
        tg.create_task(worker(2))
        tg.create_task(worker(7))
        tg.create_task(bad_type())


async def bad_type():
    await asyncio.sleep(0.075)
    raise TypeError("bad type in group")


async def main():
    await caught()
    print("cancelled:", sorted(cancelled))
    cancelled.clear()
    try:
        await uncaught()
    finally:
        print("cancelled:", sorted(cancelled))


asyncio.run(main())
