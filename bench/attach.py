"""What ``asynctrace attach`` costs the program it records: ``python -m bench.attach [--quick]``.

A target started with plain python runs an asyncio workload flat out and prints, every 0.25 s,
how many items it handled in that window.  Each round attaches to it for a few seconds and
sorts the windows into three phases by the attacher's own lines: before the attach, while
attached (between "attached" and the end of the duration), and after the detach.  Printed, as
medians over the windows of all rounds: items/s in each phase, and the attached and after
phases as ratios against the before phase of the same process.  Also: the time from the
command to "attached", the longest window of the target while attached (the loop's stall at
attach and at detach, when the target builds the trace), and the target's resident memory
after the detach against before the first attach.

Workloads: ``queue`` (a producer and a consumer over ``Queue(maxsize=1)``, both made before
the attach: the path of adopted tasks, ``sys.monitoring``) and ``spawn`` (a new task per item,
each awaiting ``sleep(0)`` once: tasks made while attached, recorded whole).

``viztracer --attach`` is run the same way when ``gdb`` and VizTracer are found (it injects
through gdb, and VizTracer must be importable in the target); a failure is printed as such.
Needs Python 3.14+ for asynctrace (``sys.remote_exec``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WINDOW = 0.25

TARGET = """
import asyncio, sys, time

async def main(workload, seconds):
    count = 0
    tasks = []
    if workload == "queue":
        queue = asyncio.Queue(maxsize=1)

        async def producer():
            while True:
                await queue.put(1)

        async def consumer():
            nonlocal count
            while True:
                await queue.get()
                count += 1

        tasks = [asyncio.create_task(producer()), asyncio.create_task(consumer())]
    else:
        async def item():
            nonlocal count
            await asyncio.sleep(0)
            count += 1

        async def spawner():
            while True:
                await asyncio.gather(*(asyncio.create_task(item()) for _ in range(20)))

        tasks = [asyncio.create_task(spawner())]
    print("ready", flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        before, t0 = count, time.monotonic()
        await asyncio.sleep(WINDOW)
        print(f"{t0:.6f} {time.monotonic():.6f} {count - before}", flush=True)
    for task in tasks:
        task.cancel()

asyncio.run(main(sys.argv[1], float(sys.argv[2])))
""".replace("WINDOW", repr(WINDOW))


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class _Target:
    """The workload in a plain python; its windows collected by a thread."""

    def __init__(self, python: str, workload: str, seconds: float) -> None:
        self.proc = subprocess.Popen(
            [python, "-c", TARGET, workload, str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline() != "ready\n":
            msg = "the bench target did not start"
            raise RuntimeError(msg)
        self.windows: list[tuple[float, float, int]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            t0, t1, n = line.split()
            self.windows.append((float(t0), float(t1), int(n)))

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._reader.join()


def _attach_asynctrace(pid: int, seconds: float) -> tuple[float, float, float, str]:
    """(command start, attached at, recording end, problem or ""): asynctrace attach."""
    start = time.monotonic()
    command = [sys.executable, "-m", "asynctrace", "attach", str(pid)]
    proc = subprocess.Popen(
        [*command, "--duration", str(seconds), "--no-timeline"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stderr is not None
    attached = 0.0
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "attached to process" in line:
            attached = time.monotonic()
    proc.wait()
    if proc.returncode != 0 or not attached:
        return start, 0.0, 0.0, "".join(lines).strip()
    return start, attached, attached + seconds, ""


def _attach_viztracer(pid: int, seconds: float) -> tuple[float, float, float, str]:
    """The same with ``viztracer --attach PID -t SECONDS`` (gdb)."""
    with tempfile.TemporaryDirectory(prefix="asynctrace-bench-vt-") as scratch:
        start = time.monotonic()
        output = os.path.join(scratch, "vt.json")
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "viztracer",
                "--attach",
                str(pid),
                "-t",
                str(seconds),
                "-o",
                output,
            ],
            capture_output=True,
            text=True,
        )
        end = time.monotonic()
        written = os.path.exists(output)
    if result.returncode != 0 or not written:
        return start, 0.0, 0.0, (result.stdout + result.stderr).strip() or "no trace written"
    # It prints nothing when attached: take the duration's end at the end of its wait.
    return start, end - seconds, end, ""


Attach = Callable[[int, float], tuple[float, float, float, str]]


def _round(
    python: str, workload: str, attach: Attach, before: float, during: float, after: float
) -> dict[str, object]:
    """One target, attached once; its windows sorted into phases."""
    target = _Target(python, workload, before + during + after + 60)
    time.sleep(before)
    rss_before = _rss_kib(target.proc.pid)
    start, attached, end, problem = attach(target.proc.pid, during)
    detached = time.monotonic()
    time.sleep(after)
    rss_after = _rss_kib(target.proc.pid)
    target.stop()
    if problem:
        return {"problem": problem}
    rate = {"before": [], "attached": [], "after": []}  # type: dict[str, list[float]]
    longest = 0.0
    for t0, t1, n in target.windows:
        if t1 <= start:
            rate["before"].append(n / (t1 - t0))
        elif t0 >= attached and t1 <= end:
            rate["attached"].append(n / (t1 - t0))
        elif t0 >= detached + WINDOW:
            rate["after"].append(n / (t1 - t0))
        if start <= t0 and t1 <= detached + WINDOW:
            longest = max(longest, t1 - t0)
    return {
        "rate": rate,
        "to_attach": attached - start,
        "stall": longest - WINDOW,
        "rss": rss_after - rss_before,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.attach", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="short phases, 1 round (smoke test)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    before, during, after = (1.0, 1.0, 1.0) if args.quick else (3.0, 3.0, 3.0)
    python = getattr(sys, "_base_executable", sys.executable)
    tools: dict[str, tuple[str, Attach]] = {}
    if hasattr(sys, "remote_exec"):
        tools["asynctrace attach"] = (python, _attach_asynctrace)
    else:
        print(f"asynctrace attach: needs Python 3.14+ (this is {sys.version.split()[0]})")
    if shutil.which("gdb") and importlib.util.find_spec("viztracer") is not None:
        tools["viztracer --attach"] = (sys.executable, _attach_viztracer)  # VizTracer importable
    else:
        print("viztracer --attach: not measured (needs gdb on PATH and viztracer importable)")
    load = os.getloadavg()[0]
    print(
        f"# bench.attach: Python {sys.version.split()[0]}, {rounds} rounds, phases of"
        f" {before:g} / {during:g} / {after:g} s, windows of {WINDOW} s, load {load:.2f}"
    )
    print()
    print(
        "| tool | workload | before items/s | attached | after | to attach s | stall ms"
        " | RSS after KiB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for tool, (tool_python, attach) in tools.items():
        for workload in ("queue", "spawn"):
            results = [
                _round(tool_python, workload, attach, before, during, after) for _ in range(rounds)
            ]
            problems = [str(r["problem"]) for r in results if "problem" in r]
            if problems:
                print(f"| {tool} | {workload} | failed: {problems[0].splitlines()[-1][:120]} |")
                continue
            rates = {
                phase: [x for r in results for x in r["rate"][phase]]  # type: ignore[index]
                for phase in ("before", "attached", "after")
            }
            base = statistics.median(rates["before"])
            attached_rate = statistics.median(rates["attached"]) if rates["attached"] else 0.0
            after_rate = statistics.median(rates["after"]) if rates["after"] else 0.0
            to_attach = statistics.median(float(r["to_attach"]) for r in results)  # type: ignore[arg-type]
            stall = max(float(r["stall"]) for r in results)  # type: ignore[arg-type]
            rss = statistics.median(int(r["rss"]) for r in results)  # type: ignore[call-overload]
            print(
                f"| {tool} | {workload} | {base:,.0f} | {attached_rate / base:.2f}x"
                f" | {after_rate / base:.2f}x | {to_attach:.2f} | {stall * 1e3:.0f} | {rss:+,} |"
            )
    steps = 20_000 if args.quick else 200_000
    ratios = [_leftover(steps) for _ in range(rounds * 2 + 1)]
    print()
    print(
        f"a task made while attached and still running after the detach: its steps take"
        f" {statistics.median(ratios):.2f}x those of a task made after ({steps:,} sleep(0)"
        f" steps, median of {len(ratios)}, in this process)"
    )
    return 0


def _leftover(steps: int) -> float:
    """Time of ``steps`` awaits in a task whose coroutine stayed wrapped (made while tracing,
    run after it stopped), against a task made after; in this process."""
    import asyncio

    import asynctrace
    from asynctrace._core import _instrument

    async def stepper(go: asyncio.Event) -> None:
        await go.wait()
        for _ in range(steps):
            await asyncio.sleep(0)

    async def both() -> float:
        go_wrapped, go_plain = asyncio.Event(), asyncio.Event()
        with asynctrace.tracing(otel=False, flush_interval=0):
            wrapped = asyncio.ensure_future(stepper(go_wrapped))
        _instrument.uninstall()  # as the detach does
        plain = asyncio.ensure_future(stepper(go_plain))
        t0 = time.perf_counter()
        go_plain.set()
        await plain
        t1 = time.perf_counter()
        go_wrapped.set()
        await wrapped
        t2 = time.perf_counter()
        return (t2 - t1) / (t1 - t0)

    return asyncio.run(both())


if __name__ == "__main__":
    raise SystemExit(main())
