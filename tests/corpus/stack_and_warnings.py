"""What a coroutine sees of the stack: warnings and tracebacks of caught errors.

Known difference under asynctrace, left out here and documented in docs/instrumentation.md: a
traced coroutine runs inside a wrapper frame, so ``warnings.warn(..., stacklevel=2)`` from a
coroutine points at that frame instead of the awaiting line.
"""

import asyncio
import sys
import traceback
import warnings


async def deprecated_api():
    warnings.warn("deprecated_api is deprecated", DeprecationWarning, stacklevel=1)
    await asyncio.sleep(0)
    return 1


async def fails():
    await asyncio.sleep(0)
    raise ValueError("caught later")


async def middle():
    return await fails()


def program_frames():
    """Names of the frames of this file on the stack (asyncio's own are the same both ways)."""
    return [f.name for f in traceback.extract_stack() if f.filename == __file__]


async def deep():
    await asyncio.sleep(0)
    return program_frames()


async def main():
    warnings.simplefilter("always")
    await deprecated_api()
    try:
        await middle()
    except ValueError:
        traceback.print_exc(file=sys.stdout)
    print("frames of this file:", await deep())
    print("caller of deep:", sys._getframe(0).f_code.co_name)


asyncio.run(main())
