"""A sibling module imported by other corpus programs (not a program itself)."""

import asyncio
import inspect


async def double(x):
    await asyncio.sleep(0.001)
    return 2 * x


def describe():
    return f"{__name__} coroutine function: {inspect.iscoroutinefunction(double)}"
