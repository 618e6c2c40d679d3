"""Service A of the distributed-trace example with httpx: a client that OpenTelemetry instruments.

    asynctrace run --otlp=localhost:4317 --service-name service-a service_a_httpx.py URL

Fetches items 1, 2 and 3 from service B at URL (http://127.0.0.1:PORT), side by side. The
instrumentation's client spans carry the trace to B in a ``traceparent`` header.
"""

import asyncio
import sys
from typing import Any

import httpx
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

HTTPXClientInstrumentor().instrument()  # before the client is made


async def fetch(client: httpx.AsyncClient, n: int) -> Any:
    response = await client.get(f"/item/{n}")
    response.raise_for_status()
    return response.json()


async def main(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        items = await asyncio.gather(fetch(client, 1), fetch(client, 2), fetch(client, 3))
    for row in items:
        print(row["name"])


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
