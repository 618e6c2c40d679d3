"""Service A of the distributed-trace example: an aiohttp client that OpenTelemetry instruments.

    asynctrace run --otlp=localhost:4317 --service-name service-a service_a_aiohttp.py URL

Fetches items 1, 2 and 3 from service B at URL (http://127.0.0.1:PORT), side by side. The
instrumentation's client spans carry the trace to B in a ``traceparent`` header.
"""

import asyncio
import sys
from typing import Any

import aiohttp
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor

AioHttpClientInstrumentor().instrument()  # before the session is made


async def fetch(session: aiohttp.ClientSession, n: int) -> Any:
    async with session.get(f"/item/{n}") as response:
        response.raise_for_status()
        return await response.json()


async def main(url: str) -> None:
    async with aiohttp.ClientSession(url, timeout=aiohttp.ClientTimeout(total=10)) as session:
        items = await asyncio.gather(fetch(session, 1), fetch(session, 2), fetch(session, 3))
    for row in items:
        print(row["name"])


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
