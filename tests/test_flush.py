"""The JSON file is streamed while the run goes: a kill loses at most one flush interval, and a
run that outgrows ``max_spans`` is written whole to the file with bounded memory."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import asynctrace
from asynctrace._export._chrome_read import read_chrome_json

SERVER = """
import asyncio, sys

async def handle(i):
    await asyncio.sleep(0.005)
    return i

async def main():
    n = 0
    while True:
        await asyncio.gather(*(handle(i) for i in range(5)))
        n += 1
        print(n, flush=True)

asyncio.run(main())
"""


def _run(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    command = [sys.executable, "-m", "asynctrace", "run", "--no-timeline", *args, str(script)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _gathers(path: Path) -> int:
    """Gather spans in a stream file, reading whole lines only (what survived the kill)."""
    count = 0
    for line in path.read_bytes().split(b"\n")[1:]:
        try:
            event = json.loads(line.rstrip(b","))
        except json.JSONDecodeError:
            continue  # the line the kill cut
        count += event.get("cat") == "gather"
    return count


def test_sigkill_loses_at_most_the_last_flush_interval(tmp_path: Path) -> None:
    trace = tmp_path / "server.trace.json"
    child = _run(tmp_path, "--json", str(trace), "--flush-interval", "0.2")
    assert child.stdout is not None
    done = 0
    deadline = time.monotonic() + 60
    while done < 150 and time.monotonic() < deadline:  # about 1.5 s of work, 7 flushes
        done = int(child.stdout.readline())
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    streamed = _gathers(trace)
    # One iteration takes >= 5 ms, so 0.2 s holds at most 40 of them; 20 more for the time
    # the kill took to land after the count was read, and for a loaded machine.
    assert done - 60 <= streamed <= done + 60, (done, streamed)
    assert trace.read_bytes().startswith(b"[\n")


def test_sigkill_file_opens_in_asynctrace_view(tmp_path: Path) -> None:
    trace = tmp_path / "server.trace.json"
    child = _run(tmp_path, "--json", str(trace), "--flush-interval", "0.1")
    assert child.stdout is not None
    for _ in range(60):
        child.stdout.readline()
    time.sleep(0.3)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    view = subprocess.run(
        [sys.executable, "-m", "asynctrace", "view", "--width", "80", str(trace)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert view.returncode == 0, view.stderr
    assert "gather(handle × 5)" in view.stdout + view.stderr
    assert "Task-1 main()" in view.stdout + view.stderr


async def _batches(count: int, records_seen: list[int], recorder: object) -> None:
    async def handle(i: int) -> int:
        await asyncio.sleep(0)
        return i

    for _ in range(count):
        await asyncio.gather(*(handle(i) for i in range(10)))
        records_seen.append(len(recorder.records))  # type: ignore[attr-defined]
        await asyncio.sleep(0.001)


def _traced(path: Path, count: int, **options: object) -> tuple[asynctrace.Trace, list[int]]:
    seen: list[int] = []
    with asynctrace.tracing(json=str(path), otel=False, **options) as tracing:  # type: ignore[arg-type]
        asyncio.run(_batches(count, seen, tracing.recorder))
    return tracing.trace, seen


def test_a_run_that_outgrows_max_spans_is_streamed_whole_in_bounded_memory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole, _ = _traced(tmp_path / "whole.json", 300, flush_interval=0.05)
    assert "outgrew" not in capsys.readouterr().err
    streamed_path = tmp_path / "streamed.json"
    last, seen = _traced(streamed_path, 300, flush_interval=0.05, max_spans=500)
    err = capsys.readouterr().err
    assert "outgrew max_spans=500" in err
    assert err.count("asynctrace:") == 1
    # memory: max_spans plus what one interval adds (about 50 ms of a ~1 ms loop: ~1,500)
    assert max(seen) < 500 + 3000, max(seen)
    assert len(last.spans) < len(whole.spans)
    streamed = read_chrome_json(streamed_path)
    assert json.loads(streamed_path.read_bytes())  # finished: plain JSON

    def shape(trace: asynctrace.Trace) -> list[tuple[str, str, str]]:
        # a loop step slowed past blocked_threshold by a loaded machine is one more span
        return sorted((s.kind, s.name, s.status) for s in trace.spans if s.kind != "blocked")

    assert shape(streamed) == shape(whole)
    tasks = streamed.spans_matching("handle", "task")
    assert len(tasks) == 3000
    assert all(s.parent is not None and s.parent.kind == "gather" for s in tasks)


def test_a_run_that_fits_is_rewritten_whole_with_arrows_and_counter(tmp_path: Path) -> None:
    path = tmp_path / "fits.json"
    _traced(path, 100, flush_interval=0.02)
    document = json.loads(path.read_bytes())
    assert isinstance(document, dict)
    phases = {event["ph"] for event in document["traceEvents"]}
    assert {"s", "f", "C"} <= phases
    assert os.listdir(tmp_path) == ["fits.json"]  # nothing left aside


def test_flush_interval_zero_writes_at_stop_only(tmp_path: Path) -> None:
    async def main() -> None:
        await asyncio.sleep(0.05)

    path = tmp_path / "once.json"
    with asynctrace.tracing(json=str(path), otel=False, flush_interval=0):
        asyncio.run(main())
        assert not path.exists()
    assert read_chrome_json(path).spans_matching("asyncio.sleep(0.05)")


def test_a_bad_flush_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="flush_interval=-1"):
        asynctrace.Tracing(flush_interval=-1)
    cli = subprocess.run(
        [sys.executable, "-m", "asynctrace", "run", "--flush-interval", "-1", "x.py"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 2
    assert cli.stderr.count("\n") == 1
    assert "--flush-interval -1.0 must be 0" in cli.stderr


def test_a_file_that_stops_growing_is_reported_once_and_the_program_goes_on(
    tmp_path: Path,
) -> None:
    """A full disk, simulated with a file size limit (EFBIG where ENOSPC would be)."""
    import resource

    script = tmp_path / "worker.py"
    script.write_text(
        "import asyncio\n"
        "async def step(i):\n    await asyncio.sleep(0.001)\n    return i\n"
        "async def main():\n"
        "    total = 0\n"
        "    for _ in range(300):\n"
        "        total += sum(await asyncio.gather(*(step(i) for i in range(5))))\n"
        "    print(total)\n"
        "asyncio.run(main())\n"
    )

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    command = [sys.executable, "-m", "asynctrace", "run", "--no-timeline", "--flush-interval"]
    command += ["0.05", "--json", str(tmp_path / "w.json"), str(script)]
    traced = subprocess.run(
        command, capture_output=True, text=True, timeout=120, preexec_fn=limit_file_size
    )
    assert traced.returncode == 0, traced.stderr
    assert traced.stdout == "3000\n"
    complaints = [line for line in traced.stderr.splitlines() if "could not write" in line]
    assert len(complaints) == 1, traced.stderr
    assert "w.json" in complaints[0] and "too large" in complaints[0]
    assert "JSON timeline: " not in traced.stderr


def test_reading_the_live_tasks_from_another_thread_never_fails() -> None:
    """The flusher reads the running tasks while the loop starts new ones (a WeakSet's own
    iteration raises "Set changed size during iteration" there)."""
    from asynctrace._model._build import open_codes

    errors: list[BaseException] = []
    done = threading.Event()

    def read_while_running(recorder: object) -> None:
        while not done.is_set():
            try:
                open_codes(recorder)  # type: ignore[arg-type]
            except Exception as exc:
                errors.append(exc)

    async def child() -> None:
        await asyncio.sleep(0)

    async def main(recorder: object) -> None:
        reader = threading.Thread(target=read_while_running, args=(recorder,))
        reader.start()
        try:
            for _ in range(500):
                await asyncio.gather(*(child() for _ in range(50)))
        finally:
            done.set()
            reader.join()

    with asynctrace.tracing(flush_interval=0, otel=False) as tracing:
        asyncio.run(main(tracing.recorder))
    assert not errors


def test_a_run_that_ends_before_its_first_flush_is_built_once_and_written_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asynctrace._model import _build
    from asynctrace._stream import _chrome_stream

    built: list[int] = []
    real_build = _build.SpanBuilder.build

    def counting_build(self: _build.SpanBuilder, records: Any, *args: Any, **kw: Any) -> Any:
        built.append(len(records))
        return real_build(self, records, *args, **kw)

    streamed: list[int] = []
    real_write = _chrome_stream.ChromeStream.write

    def counting_write(self: Any, spans: Any, labels: Any) -> bool:
        spans = list(spans)
        streamed.append(len(spans))
        return real_write(self, spans, labels)

    monkeypatch.setattr(_build.SpanBuilder, "build", counting_build)
    monkeypatch.setattr(_chrome_stream.ChromeStream, "write", counting_write)

    async def main() -> None:
        await asyncio.gather(*(asyncio.sleep(0) for _ in range(50)))

    path = tmp_path / "short.json"
    with asynctrace.tracing(json=str(path), otel=False, flush_interval=60) as t:
        asyncio.run(main())
    assert built == [len(t.trace.spans)]  # one build of every span, no batch before it
    assert streamed == []  # nothing appended to the stream: the file was written once, whole
    assert isinstance(json.loads(path.read_bytes()), dict)  # the whole form, with arrows
    assert os.listdir(tmp_path) == ["short.json"]


def test_a_task_being_created_can_be_named_from_the_flushers_thread() -> None:
    # The flusher names the rows of live tasks; a task still inside create_task has only its
    # creation-time name getter, which asked asyncio for the running loop, in a thread that
    # has none: "could not stream the trace (a bug): RuntimeError('no running event loop')".
    from asynctrace._core import _instrument

    names: list[str] = []
    reader = threading.Thread(target=lambda: names.append(_instrument._eager_task_name()))
    reader.start()
    reader.join()
    assert names == [""]
