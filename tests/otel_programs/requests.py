"""Requests served under spans of the program's own, traced in-process by asynctrace.

``python requests.py MODE MAX_TRACE_SPANS``: each request runs under a server span of a new
trace (as an HTTP server instrumentation makes one); a callback outside any task starts a
task; main starts tasks of its own.  Prints every finished span (the program's and
asynctrace's, handed to the program's provider) and asynctrace's timeline spans, as JSON.
"""

import asyncio
import json
import sys

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import asynctrace

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("program")


@asynctrace.trace
async def query():
    await asyncio.sleep(0.05)


@asynctrace.trace
async def cache_read():
    await asyncio.sleep(0.02)


@asynctrace.trace
async def handler(n):
    trace.get_current_span().set_attribute("request.n", n)  # reaches the server span
    with tracer.start_as_current_span("db.client"):
        await asyncio.sleep(0.001)
    await asyncio.gather(query(), cache_read())


@asynctrace.trace
async def request(n):
    with tracer.start_as_current_span(f"server {n}", context=Context()):  # a trace of its own
        await handler(n)


@asynctrace.trace
async def background():
    await asyncio.sleep(0.01)


@asynctrace.trace
async def main():
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.call_soon(lambda: done.set_result(loop.create_task(background())))
    await asyncio.gather(request(1), request(2), *(background() for _ in range(3)))
    await await_task(await done)


async def await_task(task):
    await task


mode, max_trace_spans = sys.argv[1], int(sys.argv[2])
with asynctrace.tracing(
    name="requests.py", trace_per=mode, max_trace_spans=max_trace_spans, virtual_time=True
) as tracing:
    asyncio.run(main())


def context(ctx):
    return None if ctx is None else [f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"]


print(
    json.dumps(
        {
            "otel": [
                {
                    "name": s.name,
                    "context": context(s.context),
                    "parent": context(s.parent),
                    "links": [context(link.context) for link in s.links],
                    "kind": (s.attributes or {}).get("asynctrace.kind"),
                    "attributes": {k: v for k, v in (s.attributes or {}).items() if "." in k},
                    "start": s.start_time,
                    "end": s.end_time,
                }
                for s in exporter.get_finished_spans()
            ],
            "timeline": [
                {
                    "id": s.span_id,
                    "parent": s.parent_id,
                    "name": s.name,
                    "kind": s.kind,
                    "trace": s.attributes.get("otel.trace_id"),
                    "span": s.attributes.get("otel.span_id"),
                }
                for s in tracing.trace.spans
            ],
        }
    )
)
