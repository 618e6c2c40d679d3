"""A ``wait_for`` whose timeout only sometimes fires, and leaks a reservation when it does.

The reservation takes 0.08 s and the deadline is 0.1 s: only a slow reservation times out,
and the buggy caller forgets to release what was held.
"""

from __future__ import annotations

import asyncio
import contextlib


async def reserve(stock: dict[str, int]) -> None:
    stock["held"] += 1
    await asyncio.sleep(0.08)  # the warehouse confirms
    stock["confirmed"] += 1


async def race() -> None:
    stock = {"held": 0, "confirmed": 0}
    with contextlib.suppress(TimeoutError):  # give up on this order
        await asyncio.wait_for(reserve(stock), timeout=0.1)
    assert stock["held"] == stock["confirmed"], f"leaked reservation: {stock}"


async def fixed() -> None:
    stock = {"held": 0, "confirmed": 0}
    try:
        await asyncio.wait_for(reserve(stock), timeout=0.1)
    except TimeoutError:
        stock["held"] -= 1  # give up on this order: release what it held
    assert stock["held"] == stock["confirmed"], f"leaked reservation: {stock}"
