"""Requests served under spans of the program's own, traced in-process by asynctrace.

``python requests.py MODE MAX_TRACE_SPANS``: each request runs under a server span of a new
trace (as an HTTP server instrumentation makes one); a callback outside any task starts a
task; main starts tasks of its own.  The handler blocks the loop, runs a thread job, and injects
the trace context an outbound call would carry.  Prints every finished span (the program's and
asynctrace's, handed to the program's provider) and asynctrace's timeline spans, as JSON.
"""

import asyncio
import json
import sys
import time

from opentelemetry import baggage, trace
from opentelemetry.context import Context, attach, detach
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import asynctrace

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("program")
outbound = []


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
    time.sleep(0.15)  # blocks the loop: a blocked span
    await asyncio.to_thread(time.sleep, 0.01)  # a thread job
    headers = {}
    inject(headers)  # what an outbound HTTP call from here would carry
    outbound.append({"n": n, **headers})


@asynctrace.trace
async def request(n):
    # a trace of its own, continuing a caller's traceparent with a tracestate, and baggage
    caller = {"traceparent": f"00-{n:032x}-{n:016x}-01", "tracestate": f"vendor=v{n}"}
    token = attach(baggage.set_baggage("tenant", f"t{n}", extract(caller, context=Context())))
    try:
        with tracer.start_as_current_span(f"server {n}"):
            await handler(n)
    finally:
        detach(token)


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
    name="requests.py", trace_per=mode, max_trace_spans=max_trace_spans
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
            "outbound": outbound,
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
