"""simloop's README lost update (two clients increment a counter over the network), with
each network leg written as the wait it is: a latency of 0.001 to 0.050 s (mean 0.0255 s,
explored with jitter 0.96).  A call is a connection round trip, the request and the reply.
"""

from __future__ import annotations

import asyncio

LEG = 0.0255
JITTER = 0.96


class Counter:
    def __init__(self) -> None:
        self.count = 0

    async def call(self, line: str) -> int:
        await asyncio.sleep(LEG)  # SYN
        await asyncio.sleep(LEG)  # SYN-ACK
        await asyncio.sleep(LEG)  # the request reaches the server
        if line == "get":
            reply = self.count
        else:
            self.count = int(line)
            reply = 0
        await asyncio.sleep(LEG)  # the reply
        return reply


async def increment(counter: Counter) -> None:
    seen = await counter.call("get")
    await counter.call(str(seen + 1))


async def race() -> None:
    counter = Counter()
    await asyncio.sleep(1.0)
    first = asyncio.create_task(increment(counter))
    await asyncio.sleep(0.2)
    second = asyncio.create_task(increment(counter))
    await asyncio.gather(first, second)
    assert counter.count == 2, f"lost update: count is {counter.count}, expected 2"
