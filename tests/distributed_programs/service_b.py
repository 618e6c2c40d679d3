"""Service B of the distributed-trace example: an aiohttp server that OpenTelemetry instruments.

    asynctrace run --otlp=localhost:4317 --service-name service-b service_b.py REQUESTS [SECONDS]

``GET /item/{n}`` reads an item: a database query and a cache read, side by side. The server
listens on 127.0.0.1, on a free port that it prints as the first line of its output, and exits
by itself after serving REQUESTS requests (or after SECONDS seconds, 30 by default, with status
1), so that its spans are sent at a normal exit.

The program sets no TracerProvider: the instrumentation's server spans go where `asynctrace run`
sends its own, and the handler's spans join the server span's trace, under it.
"""

import asyncio
import sys
from typing import Any

from aiohttp import web
from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor

AioHttpServerInstrumentor().instrument()  # before the app is made: it wraps web.Application

SERVED = web.AppKey("served", asyncio.Queue[int])  # the items served


async def query(n: int) -> dict[str, Any]:
    await asyncio.sleep(0.05)  # the database
    return {"id": n, "name": f"item {n}"}


async def cache_read(n: int) -> dict[str, Any] | None:
    await asyncio.sleep(0.02)  # the cache: a miss
    return None


async def item(request: web.Request) -> web.Response:
    n = int(request.match_info["n"])
    row, cached = await asyncio.gather(query(n), cache_read(n))
    request.app[SERVED].put_nowait(n)
    return web.json_response({**row, "cached": cached is not None})


async def main(requests: int, seconds: float) -> int:
    app = web.Application()
    app[SERVED] = asyncio.Queue()
    app.router.add_get("/item/{n}", item)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(runner.addresses[0][1], flush=True)  # the port
    try:
        async with asyncio.timeout(seconds):
            for _ in range(requests):
                await app[SERVED].get()
    except TimeoutError:
        print(f"service_b: not {requests} requests in {seconds} s", file=sys.stderr)
        return 1
    finally:
        await runner.cleanup()  # lets the requests being answered finish
    return 0


if __name__ == "__main__":
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
    sys.exit(asyncio.run(main(int(sys.argv[1]), seconds)))
