"""``python -m bench.explore --quick`` runs and prints both tables (no timing is asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_explore_bench_prints_races_and_costs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.explore", "--quick", "--runs", "30"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    found = dict(
        re.findall(
            r"^(lost update \(issue\)|relies on call_soon FIFO).*?  +(\S+ \(\d+\))", out, re.M
        )
    )
    assert re.fullmatch(r"\d+ \([1-9]\d*\)", found["lost update (issue)"])  # found, >0 failing
    assert found["relies on call_soon FIFO"] == "- (0)"  # asyncio's FIFO order is kept
    costs = re.findall(r"^(\w[\w ,]+?) +([\d.]+) +([\d.]+) +([\d.]+)x", out, re.M)
    assert [c[0] for c in costs] == [
        "lost update, with a Lock",
        "cache, primary preferred",
        "wait_for, released on timeout",
        "timer tie, with an Event",
    ]
