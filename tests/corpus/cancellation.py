"""Cancelling tasks: what the awaiting code sees."""

import asyncio


async def sleeper(name):
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError as exc:
        print(name, "saw CancelledError args", exc.args)
        raise


async def stubborn():
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        print("stubborn caught the cancel and returns")
        return "stubborn result"


async def main():
    task = asyncio.create_task(sleeper("a"), name="victim")
    await asyncio.sleep(0.01)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError as exc:
        print("awaiter saw", type(exc).__name__, exc.args, "cancelled()", task.cancelled())

    task = asyncio.create_task(sleeper("b"))
    await asyncio.sleep(0)
    task.cancel("with a message")
    try:
        await task
    except asyncio.CancelledError as exc:
        print("awaiter saw message", exc.args)

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    task.cancel()
    print("stubborn result:", await task, "cancelled()", task.cancelled())

    task = asyncio.create_task(sleeper("c"))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    print("done", task.done(), "cancelled", task.cancelled())
    try:
        task.result()
    except asyncio.CancelledError:
        print("result() raised CancelledError")

    current = asyncio.current_task()
    inner = asyncio.create_task(asyncio.sleep(0.01))
    current.cancel()
    try:
        await inner
    except asyncio.CancelledError:
        print("main cancelled itself; cancelling() =", current.cancelling())
        print("uncancel ->", current.uncancel())
    print("inner cancelled with it:", inner.cancelled())
    return "main survived"


print(asyncio.run(main()))
