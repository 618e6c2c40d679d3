"""KeyboardInterrupt raised inside the program."""

import asyncio


async def main():
    print("about to interrupt")
    await asyncio.sleep(0.001)
    raise KeyboardInterrupt


asyncio.run(main())
