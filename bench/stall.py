"""What the flusher's thread costs the event loop: ``python -m bench.stall [--quick]``.

While a traced program runs, a daemon thread builds and encodes the new spans every flush
interval (``_flush.py``).  It shares the GIL with the loop thread, so every stretch it holds
the GIL is time the loop cannot run.  This bench runs one program three ways in one process,
interleaved over rounds: untraced, traced without streaming (``flush_interval=0``: the spans
stay in memory), and traced while streaming to a JSON file every 0.05 s (20 times the default
rate, so that the flusher works through the whole run).  The program: batches of 1,000 tasks
that each await ``sleep(0)`` ten times, and a watchdog task that measures the gap between its
own turns of the loop.

Printed, per way, as medians over rounds: the wall time of ``main()`` against untraced, and
the longest gap the watchdog saw (how long the loop could not turn: a step of the loop, plus
whatever the flusher held).  The difference between the two traced ways is what streaming
costs the loop.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time

import asynctrace


async def _program(batches: int) -> float:
    """Run the batches beside a watchdog; return the watchdog's longest gap (seconds)."""
    done = False
    longest = 0.0

    async def watchdog() -> None:
        nonlocal longest
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0)
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now

    async def worker() -> None:
        for _ in range(10):
            await asyncio.sleep(0)

    watching = asyncio.ensure_future(watchdog())
    for _ in range(batches):
        await asyncio.gather(*(worker() for _ in range(1000)))
    done = True
    await watching
    return longest


def _run(way: str, batches: int, path: str) -> tuple[float, float]:
    """(wall seconds of the program, longest loop gap) for one way of running it."""
    gc.collect()  # the last round's trace is garbage now: not this round's pause
    if way == "untraced":
        t0 = time.perf_counter()
        gap = asyncio.run(_program(batches))
        return time.perf_counter() - t0, gap
    interval = 0.05 if way == "streaming" else 0.0
    with asynctrace.tracing(json=path, otel=False, flush_interval=interval, max_spans=10**7):
        t0 = time.perf_counter()
        gap = asyncio.run(_program(batches))
        wall = time.perf_counter() - t0
    return wall, gap


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.stall", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small, 1 round (smoke test)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    batches = 2 if args.quick else 20
    ways = ["untraced", "in memory", "streaming"]
    walls: dict[str, list[float]] = {w: [] for w in ways}
    gaps: dict[str, list[float]] = {w: [] for w in ways}
    ratios: dict[str, list[float]] = {w: [] for w in ways}
    with tempfile.TemporaryDirectory(prefix="asynctrace-bench-stall-") as scratch:
        path = os.path.join(scratch, "run.trace.json")
        for r in range(rounds):
            order = ways[r % 3 :] + ways[: r % 3]
            got = {way: _run(way, batches, path) for way in order}
            for way in ways:
                walls[way].append(got[way][0])
                gaps[way].append(got[way][1])
                ratios[way].append(got[way][0] / got["untraced"][0])
    spans = batches * 1000 * 11
    print(
        f"# bench.stall: Python {sys.version.split()[0]}, {batches} batches of 1,000 tasks "
        f"(about {spans:,} spans), {rounds} rounds, flush every 0.05 s when streaming"
    )
    print()
    print("| way | main() wall ms | vs untraced | longest loop gap ms |")
    print("|---|---|---|---|")
    for way in ways:
        print(
            f"| {way} | {statistics.median(walls[way]) * 1e3:.0f} "
            f"| {statistics.median(ratios[way]):.2f}x "
            f"| {statistics.median(gaps[way]) * 1e3:.1f} |"
        )
    lost = statistics.median(walls["streaming"]) - statistics.median(walls["in memory"])
    print()
    per_span = lost / spans * 1e6
    print(f"streaming costs the loop {lost * 1e3:.0f} ms over the run ({per_span:.2f} us per span)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
