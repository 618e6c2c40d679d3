"""sys.exit(3) from inside a coroutine."""

import asyncio
import sys


async def inner():
    await asyncio.sleep(0.001)
    print("exiting with 3")
    sys.stdout.flush()
    sys.exit(3)


async def main():
    try:
        await inner()
    finally:
        print("finally in main")


asyncio.run(main())
print("never printed")
