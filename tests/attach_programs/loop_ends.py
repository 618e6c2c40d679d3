"""A program whose event loop ends while attached, then goes on without one, for
tests/test_attach.py: it checks at the end that it was left as found."""

import asyncio
import sys
import time


def state() -> list[object]:
    return [asyncio.BaseEventLoop.create_task, asyncio.gather, list(sys.path)] + [
        sys.monitoring.get_tool(tool) for tool in range(6)
    ]


async def main() -> None:
    print("ready", flush=True)
    await asyncio.sleep(2.5)


before = state()
asyncio.run(main())
end = time.monotonic() + 9
while time.monotonic() < end:  # Python code, no loop: the abort script runs here
    time.sleep(0.01)
print("changed:", before != state())
