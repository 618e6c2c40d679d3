"""Starts a child Python program under asynctrace, from a traced coroutine."""

import asyncio
import sys


async def spawn(child, child_json):
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "asynctrace",
        "run",
        "--no-json",
        "--no-timeline",
        "--otlp-json",
        child_json,
        child,
    )
    return await process.wait()


async def main():
    print("child exit", await spawn(sys.argv[1], sys.argv[2]))


asyncio.run(main())
