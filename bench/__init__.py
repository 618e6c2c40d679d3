"""asynctrace's benchmark suite: ``python -m bench`` (see ``docs/performance.md``).

Problem: asynctrace records every await, so its cost must be measured against the untraced
program and the peers (opentelemetry-instrumentation-asyncio, VizTracer) on the same machine,
in the same process, on a machine whose load changes while the bench runs.

Solution: each mode of each workload runs interleaved with the others, repeated, on a fresh
event loop; the bench reports medians and min-max of both the wall time and the loop thread's
CPU time (``time.thread_time``) spent inside ``run_until_complete``, and ratios to the untraced
run of the same round.
"""
