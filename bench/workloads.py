"""The reference workloads of ``shared/PEERS.md`` plus a scale workload.

Each workload is built by a factory taking ``wrap`` (applied to every coroutine function of the
workload, as ``asynctrace run`` does) and ``top`` (applied to the top-level coroutine function
only, as a user's single ``@trace`` would).  The coroutine functions get fixed names so that
opentelemetry-instrumentation-asyncio can be told which ones to trace.  fanout and deep also
come as the source of a standalone script (``Workload.source``), what a user would run, for the
whole-process bench (``bench/process.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

Main = Callable[[], Coroutine[Any, Any, Any]]
Wrap = Callable[[Any], Any]


def _same(fn: Any) -> Any:
    return fn


@dataclass(frozen=True)
class Workload:
    """A named workload: ``build(wrap, top)`` returns the coroutine function to run.

    Args:
        name: the table's name (``fanout``).
        label: the size, for the table (``2000x10``).
        build: the factory.
        coroutine_names: the names of its coroutine functions (for OTel's asyncio instrumentor).
        awaits: how many awaits one run makes.
        program: its coroutine functions as plain Python source (the top one last in
            ``coroutine_names``), for :meth:`traced`.
        source: the same workload as a standalone script (``program`` and ``asyncio.run`` of
            the top one), for the whole-process bench; "" if none.
    """

    name: str
    label: str
    build: Callable[[Wrap, Wrap], Main]
    coroutine_names: tuple[str, ...]
    awaits: int
    cap: int = 0  # the scale workload's max_spans for the capped mode
    program: str = ""
    source: str = ""

    def traced(self) -> Main:
        """The top coroutine function as ``asynctrace run`` compiles it: every ``async def``
        of ``program`` traced by the import hook's transformation."""
        from asynctrace._core._autotrace import compile_traced

        namespace: dict[str, Any] = {}
        exec(compile_traced(self.program, f"<bench {self.name}>"), namespace)
        return namespace[self.coroutine_names[-1]]  # type: ignore[no-any-return]


def fanout(n: int, k: int) -> Workload:
    """``asyncio.gather`` of ``n`` tasks, each ``await asyncio.sleep(0)`` ``k`` times."""

    def build(wrap: Wrap = _same, top: Wrap = _same) -> Main:
        @wrap
        async def worker() -> None:
            for _ in range(k):
                await asyncio.sleep(0)

        @top
        @wrap
        async def fanout_main() -> None:
            await asyncio.gather(*(worker() for _ in range(n)))

        return fanout_main  # type: ignore[no-any-return]

    program = f"""\
import asyncio


async def worker():
    for _ in range({k}):
        await asyncio.sleep(0)


async def fanout_main():
    await asyncio.gather(*(worker() for _ in range({n})))
"""
    source = f"""{program}

asyncio.run(fanout_main())
print("fanout {n}x{k} done")
"""
    names = ("worker", "fanout_main")
    return Workload("fanout", f"{n}x{k}", build, names, n * k, program=program, source=source)


def deep(n: int, k: int) -> Workload:
    """``n`` times a chain of ``k`` nested ``await child()`` calls ending in ``sleep(0)``."""

    def build(wrap: Wrap = _same, top: Wrap = _same) -> Main:
        @wrap
        async def child(depth: int) -> None:
            if depth:
                await child(depth - 1)
            else:
                await asyncio.sleep(0)

        @top
        @wrap
        async def deep_main() -> None:
            for _ in range(n):
                await child(k - 1)

        return deep_main  # type: ignore[no-any-return]

    # k coroutine awaits per chain, plus the sleep, plus the chain's await in main
    program = f"""\
import asyncio


async def child(depth):
    if depth:
        await child(depth - 1)
    else:
        await asyncio.sleep(0)


async def deep_main():
    for _ in range({n}):
        await child({k - 1})
"""
    source = f"""{program}

asyncio.run(deep_main())
print("deep {n}x{k} done")
"""
    names = ("child", "deep_main")
    return Workload("deep", f"{n}x{k}", build, names, n * (k + 1), program=program, source=source)


def blog(s1: float = 0.02, s2: float = 0.01, s3: float = 0.03) -> Workload:
    """The blog's gather example: task1 and task2 gathered, then task3 (short sleeps)."""

    def build(wrap: Wrap = _same, top: Wrap = _same) -> Main:
        @wrap
        async def task1() -> None:
            await asyncio.sleep(s1)

        @wrap
        async def task2() -> None:
            await asyncio.sleep(s2)

        @wrap
        async def task3() -> None:
            await asyncio.sleep(s3)

        @top
        @wrap
        async def blog_main() -> None:
            await asyncio.gather(task1(), task2())
            await task3()

        return blog_main  # type: ignore[no-any-return]

    program = f"""\
import asyncio


async def task1():
    await asyncio.sleep({s1!r})


async def task2():
    await asyncio.sleep({s2!r})


async def task3():
    await asyncio.sleep({s3!r})


async def blog_main():
    await asyncio.gather(task1(), task2())
    await task3()
"""
    label = f"{s1:g}/{s2:g}/{s3:g}s"
    names = ("task1", "task2", "task3", "blog_main")
    return Workload("blog", label, build, names, 5, program=program)


def scale(n: int, k: int, cap: int) -> Workload:
    """The fanout shape at scale: ``n`` tasks x ``k`` awaits; ``cap`` spans kept when capped."""
    base = fanout(n, k)
    return Workload(
        "scale", f"{n}x{k}", base.build, base.coroutine_names, n * k, cap, program=base.program
    )


def workloads(quick: bool = False) -> dict[str, Workload]:
    """The four workloads, full size or (``quick``) tiny for the smoke test."""
    if quick:
        items = [fanout(50, 3), deep(20, 5), blog(0.002, 0.001, 0.003), scale(500, 3, 1000)]
    else:
        items = [fanout(2000, 10), deep(2000, 10), blog(), scale(100_000, 10, 100_000)]
    return {w.name: w for w in items}
