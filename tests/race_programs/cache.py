"""A cache filled by whichever of two fetches finishes first.

The primary answers in 0.010 s, a stale replica in 0.014 s; the program keeps the first answer.
When the primary is slower than the replica, the cache holds the stale value.
"""

from __future__ import annotations

import asyncio


async def fetch_primary() -> str:
    await asyncio.sleep(0.010)
    return "fresh"


async def fetch_replica() -> str:
    await asyncio.sleep(0.014)
    return "stale"


async def _fill_first(cache: dict[str, str], fetch: object) -> None:
    value = await fetch()  # type: ignore[operator]
    cache.setdefault("user", value)


async def race() -> None:
    cache: dict[str, str] = {}
    await asyncio.gather(_fill_first(cache, fetch_primary), _fill_first(cache, fetch_replica))
    assert cache["user"] == "fresh", f"cache holds {cache['user']!r}, expected 'fresh'"


async def fixed() -> None:
    cache: dict[str, str] = {}
    primary, replica = await asyncio.gather(fetch_primary(), fetch_replica())
    cache["user"] = primary or replica
    assert cache["user"] == "fresh", f"cache holds {cache['user']!r}, expected 'fresh'"
