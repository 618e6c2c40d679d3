"""Exceptions inside asyncio.gather, with and without return_exceptions."""

import asyncio


async def ok(n):
    await asyncio.sleep(0.01 * n)
    return n * 10


async def boom(n):
    await asyncio.sleep(0.01 * n)
    raise ValueError(f"boom {n}")


async def main():
    try:
        await asyncio.gather(ok(1), boom(2), ok(3))
    except ValueError as exc:
        print("gather raised", type(exc).__name__, exc)
    results = await asyncio.gather(ok(1), boom(2), ok(3), return_exceptions=True)
    print("return_exceptions:", [repr(r) for r in results])
    fut = asyncio.gather(ok(5), ok(6))
    await asyncio.sleep(0.01)
    fut.cancel()
    try:
        await fut
    except asyncio.CancelledError:
        print("gather cancelled:", fut.cancelled())
    print("empty gather:", await asyncio.gather())
    return results


if __name__ == "__main__":
    print("result types:", [type(r).__name__ for r in asyncio.run(main())])
