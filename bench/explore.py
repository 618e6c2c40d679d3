"""Schedule exploration against simloop: ``python -m bench.explore [--quick] [--runs N]``.

Two questions, each answered in one process:

1. Which races each explorer finds, and in how many runs: the race programs of
   ``tests/race_programs`` under ``asynctrace.testing.explore`` and under simloop 0.2's
   ``explore`` with its ``random`` and ``pct`` policies (the same ``async def``, no edits), plus
   simloop's own README lost update (two clients incrementing a counter over its simulated
   network, which only simloop's loop has; its port to plain waits runs under asynctrace).
   "runs" is the 1-based run that failed first; ``-`` is "not found in N runs".
2. What an explored run costs: the fixed programs (every schedule passes) run N times under
   exploration, against N plain virtual-time runs (``asyncio.Runner`` on a
   ``VirtualTimeLoop``) and N simloop runs, as medians over rounds of the time per run.

simloop needs Python 3.12+: on 3.11 its columns say so.  Run it on the CI's 3.14 with
``bash .ci/pythons --exec 3.14 -- python -m bench.explore``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asynctrace import VirtualTimeLoop
from asynctrace._schedules._explore import Schedule
from asynctrace._schedules._explore_search import run_schedule
from asynctrace.testing import ExploreFailure, explore
from tests.race_programs import bank, cache, counter, deadline, fifo, ties

Program = Callable[[], Coroutine[Any, Any, None]]

RACES: list[tuple[str, Program, float]] = [
    ("lost update (issue): ledger call outlasts 2nd start", bank.race, 0.5),
    ("cache filled by the first of two fetches", cache.race, 0.5),
    ("wait_for timeout that only sometimes fires", deadline.race, 0.5),
    ("two timers due at once (tie order)", ties.race, 0.5),
    ("simloop's lost update, ported to waits", counter.race, counter.JITTER),
    ("relies on call_soon FIFO (guaranteed by asyncio)", fifo.race, 0.5),
]
FIXED: list[tuple[str, Program]] = [
    ("lost update, with a Lock", bank.fixed),
    ("cache, primary preferred", cache.fixed),
    ("wait_for, released on timeout", deadline.fixed),
    ("timer tie, with an Event", ties.fixed),
]


def _simloop() -> Any:
    try:
        import simloop
    except ImportError:
        return None
    return simloop


def _ours_finds(program: Program, runs: int, jitter: float) -> tuple[int | None, int]:
    """The first failing run of ``explore``, and how many of the ``runs`` schedules fail."""
    first = None
    try:
        explore(program, runs=runs, jitter=jitter)
    except ExploreFailure as failure:
        first = failure.seed + 1
    failing = sum(
        run_schedule(program, Schedule(seed, jitter)).error is not None for seed in range(runs)
    )
    return first, failing


def _simloop_finds(
    simloop: Any, program: Program, runs: int, policy: str
) -> tuple[int | None, int]:
    report = simloop.explore(program, range(runs), policy=policy)
    first = None if report is None else int(report.seeds_passed) + 1
    failing = sum(
        simloop.explore(program, [seed], policy=policy) is not None for seed in range(runs)
    )
    return first, failing


async def _simloop_readme_counter() -> None:
    """simloop's README example: two increments over its simulated network."""
    loop: Any = asyncio.get_running_loop()
    loop.net.set_defaults(latency=(0.001, 0.050))
    count = 0

    async def serve() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal count
            line = await reader.readline()
            if line == b"get\n":
                writer.write(b"%d\n" % count)
            else:
                count = int(line)
                writer.write(b"ok\n")
            writer.close()

        server = await asyncio.start_server(handle, port=8080)
        async with server:
            await server.serve_forever()

    async def call(line: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("counter", 8080)
        writer.write(line)
        reply = await reader.readline()
        writer.close()
        return reply

    async def increment() -> None:
        seen = int(await call(b"get\n"))
        await call(b"%d\n" % (seen + 1))

    loop.net.host("counter").create_task(serve())
    await asyncio.sleep(1.0)
    first = loop.net.host("a").create_task(increment())
    await asyncio.sleep(0.2)
    second = loop.net.host("b").create_task(increment())
    await asyncio.gather(first, second)
    assert count == 2


def _cell(found: tuple[int | None, int]) -> str:
    first, failing = found
    return f"{'-' if first is None else first} ({failing})"


def races(runs: int) -> None:
    simloop = _simloop()
    print(
        f"Races: the run that failed first, and (in brackets) how many of {runs} schedules fail;"
        " '-': none failed"
    )
    print(f"{'program':<52} {'asynctrace':>11} {'simloop':>11} {'simloop':>11}")
    print(f"{'':<52} {'explore':>11} {'random':>11} {'pct':>11}")
    for name, program, jitter in RACES:
        ours = _cell(_ours_finds(program, runs, jitter))
        theirs = ["n/a", "n/a"]
        if simloop is not None:
            theirs = [_cell(_simloop_finds(simloop, program, runs, p)) for p in ("random", "pct")]
        print(f"{name:<52} {ours:>11} {theirs[0]:>11} {theirs[1]:>11}")
    if simloop is not None:
        theirs = [
            _cell(_simloop_finds(simloop, _simloop_readme_counter, runs, p))
            for p in ("random", "pct")
        ]
        name = "simloop's README lost update (its network)"
        print(f"{name:<52} {'n/a':>11} {theirs[0]:>11} {theirs[1]:>11}")
    else:
        print("simloop: not installed (it needs Python 3.12+; pip install simloop)")


def _per_run(fn: Callable[[], None], runs: int) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) / runs


def cost(runs: int, rounds: int) -> None:
    simloop = _simloop()
    print()
    print(f"Cost per run: median over {rounds} rounds of {runs} runs, ms per run")
    print(
        f"{'program':<34} {'virtual':>9} {'explored':>9} {'ratio':>6} {'simloop':>9} {'ratio':>6}"
    )
    for name, program in FIXED:

        def plain(program: Program = program) -> None:
            for _ in range(runs):
                with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
                    runner.run(program())

        def ours(program: Program = program) -> None:
            explore(program, runs=runs)

        def theirs(program: Program = program) -> None:
            assert simloop.explore(program, range(runs)) is None

        ways: dict[str, list[float]] = {"plain": [], "ours": [], "theirs": []}
        for _ in range(rounds):
            ways["plain"].append(_per_run(plain, runs))
            ways["ours"].append(_per_run(ours, runs))
            if simloop is not None:
                ways["theirs"].append(_per_run(theirs, runs))
        base = statistics.median(ways["plain"])
        mine = statistics.median(ways["ours"])
        row = f"{name:<34} {base * 1e3:>9.3f} {mine * 1e3:>9.3f} {mine / base:>5.2f}x"
        if ways["theirs"]:
            other = statistics.median(ways["theirs"])
            row += f" {other * 1e3:>9.3f} {other / base:>5.2f}x"
        else:
            row += f" {'n/a':>9} {'':>6}"
        print(row)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.explore", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs and rounds")
    parser.add_argument("--runs", type=int, default=None, help="schedules per race (200)")
    options = parser.parse_args(argv)
    runs = options.runs or (50 if options.quick else 200)
    print(f"Python {sys.version.split()[0]}")
    races(runs)
    cost(20 if options.quick else 100, 3 if options.quick else 7)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
