"""The blog's coroutine example: a coroutine that pauses at an await."""

import asyncio


async def my_coroutine():
    print("Coroutine started")
    await asyncio.sleep(2)
    print("Coroutine ended")


if __name__ == "__main__":
    asyncio.run(my_coroutine())
