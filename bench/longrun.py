"""``python -m bench.longrun``: memory of a long traced run, sampled every second.

Runs a synthetic server (a client task per request, 10 requests per batch, a sleep each, about
2,000 spans a second) under ``asynctrace run`` for ``--seconds`` (default 600), samples the
child's resident memory once a second, and prints the figures at each minute and at the end,
with the same program untraced as the baseline.  Nothing is asserted: the numbers are for
docs/reliability.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVER = """
import asyncio, sys, time

async def handle(i):
    await asyncio.sleep(0.002)
    return i

async def main(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await asyncio.gather(*(handle(i) for i in range(10)))

asyncio.run(main(float(sys.argv[1])))
"""


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sample(command: list[str], seconds: float) -> list[float]:
    """RSS in MB of ``command`` once a second until it ends."""
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples: list[float] = []
    while child.poll() is None:
        try:
            samples.append(rss_mb(child.pid))
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(1.0)
    child.wait(timeout=seconds + 120)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.longrun")
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--max-spans", type=int, default=None)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp, "server.py")
        script.write_text(SERVER)
        trace = Path(tmp, "server.trace.json")
        seconds = str(options.seconds)
        plain = sample([sys.executable, str(script), seconds], options.seconds)
        command = [sys.executable, "-m", "asynctrace", "run", "--no-timeline"]
        command += ["--json", str(trace)]
        if options.max_spans is not None:
            command += ["--max-spans", str(options.max_spans)]
        traced = sample([*command, str(script), seconds], options.seconds)
        size = trace.stat().st_size if trace.exists() else 0
        lines = trace.read_bytes().count(b"\n") if trace.exists() else 0
    print(f"run of {options.seconds:g} s, python {sys.version.split()[0]}, pid {os.getpid()}")
    print(f"untraced RSS: peak {max(plain):.1f} MB, end {plain[-1]:.1f} MB")
    marks = range(0, len(traced), 60)
    for i in marks:
        print(f"traced RSS at {i:>4} s: {traced[i]:.1f} MB")
    print(f"traced RSS: peak {max(traced):.1f} MB, end {traced[-1]:.1f} MB")
    print(f"JSON file: {size / 1e6:.1f} MB, {lines:,} lines")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
