"""asyncio.shield, asyncio.wait and asyncio.as_completed."""

import asyncio


async def job(name, delay, fail=False):
    await asyncio.sleep(delay)
    if fail:
        raise OSError(f"{name} failed")
    return name


async def main():
    inner = asyncio.create_task(job("shielded", 0.02), name="shielded-job")
    try:
        await asyncio.wait_for(asyncio.shield(inner), 0.005)
    except TimeoutError:
        print("outer timed out; inner cancelled?", inner.cancelled())
    print("inner result:", await inner)

    outer = asyncio.ensure_future(asyncio.shield(job("shield2", 0.01)))
    await asyncio.sleep(0)
    outer.cancel()
    try:
        await outer
    except asyncio.CancelledError:
        print("shield outer cancelled:", outer.cancelled())

    tasks = {asyncio.create_task(job(n, d), name=n) for n, d in (("a", 0.01), ("b", 0.03))}
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    print("wait first:", sorted(t.result() for t in done), sorted(t.get_name() for t in pending))
    done, pending = await asyncio.wait(pending, timeout=0.001)
    print("wait timeout:", len(done), len(pending))
    done, pending = await asyncio.wait(pending)
    print("wait all:", sorted(t.result() for t in done), len(pending))

    tasks = [asyncio.create_task(job("x", 0.01, fail=True)), asyncio.create_task(job("y", 0.02))]
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    print("first exception:", [repr(t.exception()) for t in done])
    await asyncio.gather(*tasks, return_exceptions=True)

    order = []
    for fut in asyncio.as_completed([job("slow", 0.03), job("fast", 0.01), job("mid", 0.02)]):
        order.append(await fut)
    print("as_completed:", order)
    try:
        for fut in asyncio.as_completed([job("never", 1)], timeout=0.005):
            await fut
    except TimeoutError:
        print("as_completed timed out")


asyncio.run(main())
