"""An uncaught exception, chained, from nested coroutines: exit 1 and the traceback."""

import asyncio


async def parse(text):
    await asyncio.sleep(0.001)
    return int(text)


async def load(text):
    try:
        return await parse(text)
    except ValueError as exc:
        raise RuntimeError(f"cannot load {text!r}") from exc


async def main():
    print("loading")
    task = asyncio.create_task(load("42"), name="loader")
    print("loaded", await task)
    await load("not a number")


asyncio.run(main())
