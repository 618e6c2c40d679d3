"""``python -m bench.attach --quick`` runs and prints its table (no timing is asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(sys.version_info < (3, 14), reason="attach needs Python 3.14+")
def test_the_attach_bench_prints_each_workload() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.attach", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = re.findall(
        r"^\| asynctrace attach \| (queue|spawn) \| [\d,]+ \| (\d+\.\d\d)x \| (\d+\.\d\d)x"
        r" \| \d+\.\d\d \| \d+ \| [+-][\d,]+ \|$",
        done.stdout,
        re.MULTILINE,
    )
    assert [row[0] for row in rows] == ["queue", "spawn"], done.stdout
    assert all(float(row[1]) > 0 and float(row[2]) > 0 for row in rows)  # windows in each phase
