"""``python -m bench.live`` runs small and prints each measure (no timing is asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_live_bench_prints_each_measure() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.live", "--idle", "50", "--rounds", "30", "--repeat", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = re.findall(r"^  (\S.*?) +\d+\.\d ms +(\d+\.\d\d)x$", done.stdout, re.MULTILINE)
    assert [name for name, _ in rows] == ["untraced", "run --json (stream)", "run --json --live"]
    assert rows[0][1] == "1.00"
    assert re.search(
        r"reading the stream \([\d.]+ MB, [\d,]+ spans\): [\d.]+ ms per MB", done.stdout
    )
    assert re.search(r"one live screen \(120x40\) over it: [\d.]+ ms", done.stdout)
    assert re.search(r"in-flight event, 50 tasks waiting: [\d.]+ ms per flush", done.stdout)
