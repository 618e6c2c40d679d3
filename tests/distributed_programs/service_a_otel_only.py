"""Service A of the distributed-trace example, traced by OpenTelemetry alone (no asynctrace).

    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 python service_a_otel_only.py URL

The aiohttp client of service_a_aiohttp.py, with the program's own SDK TracerProvider: its spans
(``main`` and the instrumentation's client spans) go to the OTLP endpoint of the standard
variables. Service B, run under `asynctrace run`, records its handler under its server span,
which is the child of this program's client span: one trace across the two services.
"""

import asyncio
import sys
from typing import Any

import aiohttp
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

provider = TracerProvider(resource=Resource.create({"service.name": "service-a"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)
AioHttpClientInstrumentor().instrument()  # before the session is made
tracer = trace.get_tracer("service-a")


async def fetch(session: aiohttp.ClientSession, n: int) -> Any:
    async with session.get(f"/item/{n}") as response:
        response.raise_for_status()
        return await response.json()


async def main(url: str) -> None:
    with tracer.start_as_current_span("main"):
        async with aiohttp.ClientSession(url, timeout=aiohttp.ClientTimeout(total=10)) as session:
            items = await asyncio.gather(fetch(session, 1), fetch(session, 2), fetch(session, 3))
    for row in items:
        print(row["name"])


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1]))
    finally:
        provider.shutdown()  # sends the spans still in the batch
