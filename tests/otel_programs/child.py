import asyncio


async def work():
    await asyncio.sleep(0)


asyncio.run(work())
