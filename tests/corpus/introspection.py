"""What the program sees of its own tasks and functions: names, coroutines, reprs."""

import asyncio
import inspect
import re


def clean(text):
    """Addresses differ from run to run: hide them."""
    return re.sub(r"0x[0-9a-f]+", "0x…", text)


async def worker(n):
    await asyncio.sleep(0.01)
    return n


async def main():
    task = asyncio.create_task(worker(1), name="my-worker")
    other = asyncio.create_task(worker(2))
    await asyncio.sleep(0)
    print("get_name:", task.get_name(), other.get_name())
    print("repr pending:", clean(repr(task)))
    coro = task.get_coro()
    print("get_coro repr:", clean(repr(coro)))
    print("get_coro type:", type(coro).__name__)
    print("inspect.iscoroutine:", inspect.iscoroutine(coro), asyncio.iscoroutine(coro))
    print("coro __name__/__qualname__:", coro.__name__, coro.__qualname__)
    print("cr_code is worker's:", coro.cr_code is worker.__code__)
    print("cr_frame function:", coro.cr_frame.f_code.co_name)
    print("cr_running:", coro.cr_running)
    print("get_stack:", [f.f_code.co_name for f in task.get_stack()])
    await task
    print("repr done:", clean(repr(task)))
    print("current task:", clean(repr(asyncio.current_task())))
    print("all_tasks:", sorted(t.get_name() for t in asyncio.all_tasks()))
    await other
    print(
        "iscoroutinefunction:",
        inspect.iscoroutinefunction(worker),
        asyncio.iscoroutinefunction(worker),
        inspect.iscoroutinefunction(main),
    )
    print("function names:", worker.__name__, worker.__qualname__, worker.__module__)
    print("signature:", inspect.signature(worker))
    print("has __wrapped__:", hasattr(worker, "__wrapped__"))
    print("code:", worker.__code__.co_name, worker.__code__.co_firstlineno)
    print("getsourcefile is this file:", inspect.getsourcefile(worker) == __file__)
    print("getsource first line:", inspect.getsource(worker).splitlines()[0])
    c = worker(3)
    print("direct call type:", type(c).__name__, clean(repr(c)))
    print("direct call cr_code is worker's:", c.cr_code is worker.__code__)
    print("direct call awaited:", await c)


asyncio.run(main())
