"""What stopping costs: the trace is built and written with the garbage collector paused."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

import asynctrace


async def many_tasks() -> None:
    async def worker() -> None:
        for _ in range(3):
            await asyncio.sleep(0)

    await asyncio.gather(*(worker() for _ in range(1000)))


def test_no_collection_while_the_trace_is_built_and_written(tmp_path: Path) -> None:
    """Every span built at stop stays live until the outputs are out: a collection then only
    scans them all again (at 220,000 spans a third of the stop's time went to that)."""
    collections: list[str] = []

    def note(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collections.append(phase)

    tracing = asynctrace.tracing(json=str(tmp_path / "t.json"), virtual_time=True)
    tracing.start()
    asyncio.run(many_tasks())
    gc.callbacks.append(note)
    try:
        trace = tracing.stop()
    finally:
        gc.callbacks.remove(note)
    assert len(trace.spans) > 4000 and (tmp_path / "t.json").stat().st_size > 0
    assert len(collections) <= 1, collections  # the one when the collector is back
    assert gc.isenabled()  # and the collector is back afterwards
