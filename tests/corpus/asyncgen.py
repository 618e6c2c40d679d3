"""Async generators (async for, asend, athrow, aclose) and async context managers."""

import asyncio
import contextlib


async def ticker(n):
    try:
        for i in range(n):
            await asyncio.sleep(0.001)
            yield i
    finally:
        print("ticker finally")


async def echo():
    value = None
    while True:
        try:
            value = yield f"echo {value}"
        except ValueError as exc:
            value = f"caught {exc}"


@contextlib.asynccontextmanager
async def resource(name):
    print("open", name)
    await asyncio.sleep(0.001)
    try:
        yield name.upper()
    finally:
        await asyncio.sleep(0.001)
        print("close", name)


class Connection:
    async def __aenter__(self):
        await asyncio.sleep(0.001)
        print("Connection.__aenter__")
        return self

    async def __aexit__(self, *exc_info):
        await asyncio.sleep(0.001)
        print("Connection.__aexit__", exc_info[0].__name__ if exc_info[0] else None)
        return exc_info[0] is KeyError

    def __aiter__(self):
        self.i = 0
        return self

    async def __anext__(self):
        self.i += 1
        if self.i > 3:
            raise StopAsyncIteration
        await asyncio.sleep(0)
        return self.i


async def main():
    print([i async for i in ticker(3)])
    gen = ticker(10)
    async for i in gen:
        if i == 1:
            break
    await gen.aclose()
    print("aclosed")
    e = echo()
    print(await e.asend(None))
    print(await e.asend("hi"))
    print(await e.athrow(ValueError("thrown")))
    await e.aclose()
    async with resource("db") as r:
        print("using", r)
    try:
        async with resource("failing"):
            raise RuntimeError("inside")
    except RuntimeError as exc:
        print("propagated", exc)
    async with Connection() as conn:
        print([i async for i in conn])
    async with Connection():
        raise KeyError("suppressed")
    print("after suppressed")
    async with contextlib.AsyncExitStack() as stack:
        print(await stack.enter_async_context(resource("stacked")))


asyncio.run(main())
