"""Code that relies on asyncio's documented FIFO order of ``call_soon`` callbacks.

Not a race on asyncio: ``loop.call_soon`` runs callbacks in the order they were registered.
A scheduler that reorders ready callbacks freely reports it as one.
"""

from __future__ import annotations

import asyncio


async def race() -> None:
    loop = asyncio.get_running_loop()
    log: list[str] = []
    loop.call_soon(log.append, "deposit")
    loop.call_soon(log.append, "audit")
    await asyncio.sleep(0.001)
    assert log == ["deposit", "audit"], f"callbacks ran as {log}"
