"""``python -m bench.stall --quick`` runs and prints its table (no timing is asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_stall_bench_prints_each_way() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.stall", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = re.findall(
        r"^\| (untraced|in memory|streaming) \| (\d+) \| (\d+\.\d\d)x \| ([\d.]+) \|$",
        done.stdout,
        re.MULTILINE,
    )
    assert [row[0] for row in rows] == ["untraced", "in memory", "streaming"]
    assert rows[0][2] == "1.00"  # untraced against itself
    assert re.search(r"streaming costs the loop -?\d+ ms over the run", done.stdout)
