"""The blog's asynchronous example: both tasks wait at once, about 3 s in all, not 5."""

import asyncio


async def task1():
    print("Starting task 1")
    await asyncio.sleep(3)
    print("Task 1 complete")


async def task2():
    print("Starting task 2")
    await asyncio.sleep(2)
    print("Task 2 complete")


async def main():
    await asyncio.gather(task1(), task2())


if __name__ == "__main__":
    asyncio.run(main())
