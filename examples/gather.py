"""The blog's gather example: two tasks at once, then a third after them."""

import asyncio


async def task1():
    print("Task 1 started")
    await asyncio.sleep(2)
    print("Task 1 complete")


async def task2():
    print("Task 2 started")
    await asyncio.sleep(1)
    print("Task 2 complete")


async def task3():
    print("Task 3 started")
    await asyncio.sleep(3)
    print("Task 3 complete")


async def main():
    await asyncio.gather(task1(), task2())
    await task3()


if __name__ == "__main__":
    asyncio.run(main())
