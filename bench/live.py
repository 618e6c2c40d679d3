"""``python -m bench.live``: what the live view costs the traced program.

Two measures, printed; nothing is asserted (docs/live.md quotes them):

- Whole process: a program with ``--idle`` tasks waiting on an event and a working part
  (``--rounds`` rounds of 20 gathered tasks, 10 ``sleep(0)`` each, then a ``sleep(--pause)``:
  a server with headroom, about 40,000 spans a second) times its working part itself; run
  plain, under ``asynctrace run --json`` (the stream, with its in-flight events), and under
  ``run --live`` (stderr not a terminal: a line a second, the same reading of the stream as a
  screen).  Medians of ``--repeat`` runs, as ratios to the plain run's median.
- What the live view's thread and the flusher hold the interpreter for: reading the last
  run's stream (ms per MB), one redraw of the screen over it, and one flush's in-flight event
  with ``--idle`` tasks waiting.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROGRAM = """
import asyncio, sys, time

async def idle(event):
    await event.wait()

async def step():
    for _ in range(10):
        await asyncio.sleep(0)

async def main(idle_tasks, rounds, pause):
    event = asyncio.Event()
    waiting = [asyncio.create_task(idle(event)) for _ in range(idle_tasks)]
    await asyncio.sleep(0)
    t0 = time.perf_counter()
    for _ in range(rounds):
        await asyncio.gather(*(step() for _ in range(20)))
        await asyncio.sleep(pause)
    elapsed = time.perf_counter() - t0
    event.set()
    await asyncio.gather(*waiting)
    print(elapsed)

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
"""


def _busy_seconds(command: list[str], cwd: str) -> float:
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=600, check=True)
    return float(done.stdout.split()[-1])


def whole_process(
    tmp: str, idle: int, rounds: int, pause: float, repeat: int
) -> tuple[dict[str, float], Path]:
    """Median busy seconds of each mode, and the stream the last run left."""
    script = Path(tmp) / "live_load.py"
    script.write_text(PROGRAM)
    trace = Path(tmp) / "t.json"
    # --max-spans 1000: the stream is finished in place, as a long run's is
    run = [sys.executable, "-m", "asynctrace", "run", "--no-timeline", "--max-spans", "1000"]
    run += ["--json", str(trace)]
    modes = {
        "untraced": [sys.executable, str(script)],
        "run --json (stream)": [*run, str(script)],
        "run --json --live": [*run, "--live", str(script)],
    }
    times: dict[str, list[float]] = {name: [] for name in modes}
    for _ in range(repeat):  # interleaved: a load that comes and goes hits every mode
        for name, command in modes.items():
            args = [*command, str(idle), str(rounds), str(pause)]
            times[name].append(_busy_seconds(args, tmp))
    return {name: statistics.median(values) for name, values in times.items()}, trace


def reading(path: Path, repeat: int) -> tuple[float, int, float]:
    """Following ``path`` from its start: ms per MB, spans, and the median ms of a redraw."""
    from asynctrace._stream._follow import Follower
    from asynctrace._stream._live import LiveState

    follower = Follower(path)
    state = LiveState()
    t0 = time.perf_counter()
    while events := follower.poll().events:
        state.add(events)
    per_mb = (time.perf_counter() - t0) * 1e3 / (path.stat().st_size / 1e6)
    screens = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        state.screen(time.time_ns(), "", 120, 40, True)
        screens.append((time.perf_counter() - t0) * 1e3)
    return per_mb, state.spans, statistics.median(screens)


async def _in_flight_ms(idle: int, repeat: int) -> float:
    """Median ms of one flush's in-flight event, changed each time, with ``idle`` tasks."""
    import asynctrace

    with tempfile.TemporaryDirectory() as tmp:
        event = asyncio.Event()
        times = []
        with asynctrace.tracing(json=str(Path(tmp) / "t.json"), flush_interval=3600) as traced:
            waiting = [asyncio.create_task(event.wait()) for _ in range(idle)]
            await asyncio.sleep(0)
            flusher = traced._flusher  # the bench times the flusher's own step
            assert flusher is not None and flusher.stream is not None
            for _ in range(repeat):
                flusher._in_flight = None  # as if it changed
                t0 = time.perf_counter()
                flusher._write_in_flight(flusher.stream)
                times.append((time.perf_counter() - t0) * 1e3)
            event.set()
            await asyncio.gather(*waiting)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.live")
    parser.add_argument("--idle", type=int, default=2000, help="tasks waiting all along")
    parser.add_argument("--rounds", type=int, default=600, help="rounds of 200 awaits")
    parser.add_argument("--pause", type=float, default=0.005, help="seconds between rounds")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} (1-minute average)")
    with tempfile.TemporaryDirectory() as tmp:
        busy, trace = whole_process(tmp, args.idle, args.rounds, args.pause, args.repeat)
        base = busy["untraced"]
        print(
            f"whole process, {args.idle:,} idle tasks, {args.rounds} rounds,"
            f" median of {args.repeat}:"
        )
        for name, seconds in busy.items():
            print(f"  {name:<24} {seconds * 1e3:8.1f} ms  {seconds / base:5.2f}x")
        per_mb, spans, screen_ms = reading(trace, args.repeat)
        size = trace.stat().st_size / 1e6
        print(f"reading the stream ({size:.1f} MB, {spans:,} spans): {per_mb:.1f} ms per MB")
        print(f"one live screen (120x40) over it: {screen_ms:.1f} ms")
    flush_ms = asyncio.run(_in_flight_ms(args.idle, args.repeat * 4))
    print(f"in-flight event, {args.idle:,} tasks waiting: {flush_ms:.2f} ms per flush")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
