"""uvloop as the loop, through uvloop.run, with an uncaught error at the end."""

import asyncio

import uvloop


async def child(n):
    await asyncio.sleep(0.001 * n)
    return n * 2


async def main():
    print("loop module:", type(asyncio.get_running_loop()).__module__)
    print(await asyncio.gather(child(1), child(2)))
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(child(n), name=f"tg-{n}") for n in range(3)]
    print([t.result() for t in tasks], [t.get_name() for t in tasks])
    await child(1)
    raise LookupError("uvloop failure")


uvloop.run(main())
