"""The blog's event loop example: the loop runs a task until it completes."""

import asyncio


async def task():
    print("Task started")
    await asyncio.sleep(1)
    print("Task completed")


if __name__ == "__main__":
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(task())
    finally:
        loop.close()
