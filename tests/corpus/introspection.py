"""What the program sees of its own tasks and functions: names, coroutines, reprs.

Known differences under asynctrace, left out here and documented in docs/instrumentation.md:
``task.get_coro()`` is asynctrace's wrapper (``asyncio.iscoroutine`` is true of it,
``inspect.iscoroutine`` is not), a task's coroutine before its first step and its stack show
asynctrace's wrapper frame, and a traced function's ``__code__`` is the wrapper's.
"""

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
    coro = task.get_coro()
    print("asyncio.iscoroutine:", asyncio.iscoroutine(coro))
    print("get_coro repr:", clean(repr(coro)))
    print("coro __name__/__qualname__:", coro.__name__, coro.__qualname__)
    print("cr_frame function:", coro.cr_frame.f_code.co_name)
    print("cr_running:", coro.cr_running)
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
    print("getsource first line:", inspect.getsource(worker).splitlines()[0])
    c = worker(3)
    print("direct call type:", type(c).__name__, clean(repr(c)))
    print("direct call cr_code is worker's:", c.cr_code is worker.__code__)
    print("direct call awaited:", await c)


asyncio.run(main())
