"""Two timers due at the same moment: the log assumes the writer's fires first.

Both tasks sleep exactly 0.010 s; asyncio documents that callbacks scheduled for the same
time run in an undefined order, so the reader can run before the writer.
"""

from __future__ import annotations

import asyncio


async def race() -> None:
    shared: dict[str, str] = {}
    seen: list[str] = []

    async def writer() -> None:
        await asyncio.sleep(0.010)
        shared["config"] = "loaded"

    async def reader() -> None:
        await asyncio.sleep(0.010)
        seen.append(shared.get("config", "missing"))

    await asyncio.gather(writer(), reader())
    assert seen == ["loaded"], f"the reader saw {seen[0]!r}"


async def fixed() -> None:
    shared: dict[str, str] = {}
    seen: list[str] = []
    loaded = asyncio.Event()

    async def writer() -> None:
        await asyncio.sleep(0.010)
        shared["config"] = "loaded"
        loaded.set()

    async def reader() -> None:
        await asyncio.sleep(0.010)
        await loaded.wait()
        seen.append(shared["config"])

    await asyncio.gather(writer(), reader())
    assert seen == ["loaded"], f"the reader saw {seen[0]!r}"
