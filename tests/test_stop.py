"""What stopping costs: the trace is built and written with the garbage collector paused."""

from __future__ import annotations

import asyncio
import gc
import os
from pathlib import Path
from typing import Any

import pytest

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


def test_a_run_without_outputs_builds_its_trace_only_when_read(tmp_path: Path) -> None:
    """``asynctrace run --no-json --no-timeline``: nothing reads the trace, none is built;
    read later, it is the trace stop() gives (critical path marked), built once."""
    from asynctrace._model._critical import CRITICAL

    lazy = asynctrace.tracing(virtual_time=True, otel=False).start()
    asyncio.run(many_tasks())
    lazy.stop_recording()
    assert not lazy.built
    eager = asynctrace.tracing(json=str(tmp_path / "e.json"), virtual_time=True, otel=False)
    eager.start()
    asyncio.run(many_tasks())
    eager.stop_recording()
    assert eager.built
    trace = lazy.trace
    assert lazy.built and lazy.trace is trace
    assert len(trace) > 4000

    def marks(t: Any) -> list[tuple[str, str, object]]:
        return [(s.kind, s.name, s.attributes.get(CRITICAL)) for s in t]

    assert marks(trace) == marks(eager.trace) and any(m[2] for m in marks(trace))
    assert asynctrace.tracing(json=str(tmp_path / "t.json")).start().stop_recording() is None


def test_the_json_file_is_written_in_a_thread_until_waited_for(
    tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    """``asynctrace run`` draws the terminal timeline while the file's bytes go to the kernel:
    stop_recording(wait=False) leaves the write to a thread, wait_exports() completes it."""
    import json
    import threading

    from asynctrace._export import _files

    writers: list[str] = []
    write_rest = _files._write_rest

    def noted(*args: Any) -> None:
        writers.append(threading.current_thread().name)
        write_rest(*args)

    monkeypatch.setattr(_files, "_write_rest", noted)
    path = tmp_path / "t.json"
    tracing = asynctrace.tracing(json=str(path), virtual_time=True, otel=False).start()
    asyncio.run(many_tasks())
    tracing.stop_recording(wait=False)
    assert tracing.wait_exports() == [] and writers == ["asynctrace-write"]
    assert json.loads(path.read_text())["otherData"]["spans"] == len(tracing.trace)
    assert not tracing.json_failed and capsys.readouterr().err == ""


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_a_write_that_fails_in_the_thread_is_said_once_when_waited_for(capsys: Any) -> None:
    full = asynctrace.tracing(json="/dev/full", virtual_time=True, otel=False).start()
    asyncio.run(many_tasks())
    full.stop_recording(wait=False)
    assert not full.json_failed  # opened; its bytes are still being written
    full.wait_exports()
    full.wait_exports()
    assert full.json_failed
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 1 and "could not write the JSON timeline '/dev/full'" in errors[0]
