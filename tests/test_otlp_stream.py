"""OTLP while the run goes: spans reach the receiver batch by batch, a kill loses at most the
last flush interval, and a run that outgrows ``max_spans`` sends every span in bounded memory."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import asynctrace

sys.path.insert(0, str(Path(__file__).parent))
import otlp_receiver

WORKER = """
import asyncio, sys

async def handle(i):
    await asyncio.sleep(0.002)
    return i

async def main(rounds):
    for n in range(rounds):
        await asyncio.gather(*(handle(i) for i in range(5)))
        print(n + 1, flush=True)

asyncio.run(main(int(sys.argv[1])))
"""


@pytest.fixture(params=["grpc", "http/protobuf"])
def receiver(request: pytest.FixtureRequest) -> Iterator[Any]:
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    yield from otlp_receiver.running(request.param)


def _command(tmp_path: Path, receiver: Any, rounds: int, *options: str) -> list[str]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    return [
        sys.executable, "-m", "asynctrace", "run", "--no-timeline", "--no-json",
        f"--otlp={receiver.endpoint}", "--otlp-protocol", receiver.protocol,
        *options, str(script), str(rounds),
    ]  # fmt: skip


def _consistent(spans: list[otlp_receiver.ReceivedSpan]) -> None:
    """One trace; every parent is a received span, except the run's (it has none)."""
    ids = {s.span_id for s in spans}
    assert len(ids) == len(spans), "a span was sent twice"
    assert len({s.trace_id for s in spans}) == 1
    orphans = [s.name for s in spans if s.parent_id is not None and s.parent_id not in ids]
    assert not orphans
    assert [s.name for s in spans if s.parent_id is None] == ["worker.py"]


def test_spans_reach_the_receiver_while_the_program_runs(tmp_path: Path, receiver: Any) -> None:
    command = _command(tmp_path, receiver, 100_000, "--flush-interval", "0.1")
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not receiver.spans and time.monotonic() < deadline:
            assert child.poll() is None, child.communicate()
            time.sleep(0.05)
        assert receiver.spans, "nothing arrived while the program ran"
        assert child.poll() is None  # still running: the spans came as it went
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
        before_kill = len(receiver.spans)
    finally:
        child.kill()
    # a kill loses at most the last interval and what was in flight: no more arrives
    time.sleep(0.3)
    assert len(receiver.spans) == before_kill
    handles = [s for s in receiver.spans if s.name == "handle"]
    assert handles and all(s.parent_id is not None for s in handles)


def test_a_whole_run_sent_in_batches_is_one_consistent_trace(tmp_path: Path, receiver: Any) -> None:
    command = _command(tmp_path, receiver, 150, "--flush-interval", "0.05")
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "150"
    assert len(receiver.requests) > 2  # several batches
    spans = receiver.spans
    _consistent(spans)
    by_id = {s.span_id: s for s in spans}
    handles = [s for s in spans if s.name == "handle"]
    assert len(handles) == 750
    gathers = {h.parent_id for h in handles}
    assert len(gathers) == 150
    assert {by_id[g].name for g in gathers if g is not None} == {"gather(handle × 5)"}
    # the await on each gather nests in it, across batch boundaries too
    awaits_on_gathers = [
        s for s in spans if s.name == "gather(handle × 5)" and s.parent_id in gathers
    ]
    assert len(awaits_on_gathers) == 150


def test_a_run_cut_into_traces_while_streamed_links_each_part_to_the_last(
    tmp_path: Path, receiver: Any
) -> None:
    command = _command(
        tmp_path, receiver, 150, "--flush-interval", "0.05", "--max-trace-spans", "1000"
    )
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(receiver.requests) > 2  # several batches
    spans = receiver.spans
    assert len([s for s in spans if s.name == "handle"]) == 750  # all sent
    by_id = {s.span_id: s for s in spans}
    traces: dict[int, list[otlp_receiver.ReceivedSpan]] = {}
    for span in spans:
        traces.setdefault(span.trace_id, []).append(span)
    assert len(traces) >= 3
    assert max(len(part) for part in traces.values()) <= 1000
    starts = 0
    for span in spans:
        links = list(span.span.links)
        if span.parent_id is not None:  # a parent in the same trace, received
            assert by_id[span.parent_id].trace_id == span.trace_id, span.name
            assert not links
        elif span.name != "worker.py":  # a part's first spans link to their parent before
            assert len(links) == 1, span.name
            linked = by_id[int.from_bytes(links[0].span_id, "big")]
            assert int.from_bytes(links[0].trace_id, "big") == linked.trace_id != span.trace_id
            starts += 1
    assert starts >= len(traces) - 1


def test_an_otlp_only_run_that_outgrows_max_spans_sends_every_span_in_bounded_memory(
    receiver: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    async def handle(i: int) -> int:
        await asyncio.sleep(0)
        return i

    async def main(seen: list[int], records: list[object]) -> None:
        for _ in range(300):
            await asyncio.gather(*(handle(i) for i in range(10)))
            seen.append(len(records))
            await asyncio.sleep(0.001)

    seen: list[int] = []
    with asynctrace.tracing(
        name="worker.py",
        otlp=receiver.endpoint,
        otlp_protocol=receiver.protocol,
        max_spans=500,
        flush_interval=0.05,
        max_trace_spans=0,  # one trace (tests/test_otel_traces.py cuts one)
    ) as tracing:
        asyncio.run(main(seen, tracing.recorder.records))
    err = capsys.readouterr().err
    assert "outgrew max_spans=500: OTLP got all" in err
    assert err.count("asynctrace:") == 1, err
    assert max(seen) < 500 + 3000, max(seen)
    spans = receiver.spans
    _consistent(spans)
    assert len([s for s in spans if s.name == "handle"]) == 3000
    assert len([s for s in spans if s.name.startswith("gather(")]) >= 600  # gathers + awaits
