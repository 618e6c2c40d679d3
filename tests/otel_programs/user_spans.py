"""A program with its own OpenTelemetry SDK provider, traced in-process by asynctrace."""

import asyncio
import json

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import asynctrace

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("user")


@asynctrace.trace
async def handler():
    with tracer.start_as_current_span("db.query"):
        await asyncio.sleep(0.01)


async def main():
    await asyncio.gather(handler(), handler())


with tracer.start_as_current_span("outer"), asynctrace.tracing(name="user_spans.py"):
    asyncio.run(main())

print(
    json.dumps(
        [
            {
                "name": s.name,
                "id": s.context.span_id,
                "trace": s.context.trace_id,
                "parent": s.parent.span_id if s.parent else None,
                "kind": (s.attributes or {}).get("asynctrace.kind"),
            }
            for s in exporter.get_finished_spans()
        ]
    )
)
