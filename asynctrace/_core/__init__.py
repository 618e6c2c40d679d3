"""Record and instrument: the clock, the records appended on the loop, each task's wrapped
coroutine, the decorator, asyncio's functions wrapped, the virtual-time loop.  What runs on
every await lives here (with the C accelerator at the package's top).

Nothing is imported here: each module is imported where it is used.
"""
