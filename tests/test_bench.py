"""The bench's smoke mode: ``python -m bench --quick`` runs and prints the whole table.

No timing is asserted: the machine running the tests may be loaded.  The test checks the shape:
every workload with every mode (or an ``n/a (reason)`` row), numbers that parse, and the extra
sections (exports, memory, whole process, import time).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.process import ASYNCTRACE_MODES, PURE_KEY

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ("fanout", "deep", "blog", "scale")
MODES = (
    "untraced",
    "asynctrace decorators only",
    "asynctrace auto + every await",
    "asynctrace auto + JSON export",
    "asynctrace auto + OTLP export",
    "opentelemetry-instrumentation-asyncio",
    "VizTracer log_async",
)
SCALE_MODES = (
    "untraced",
    "asynctrace decorators only",
    "asynctrace auto + every await",
    "asynctrace auto + max_spans cap",
)
MS = re.compile(r"^\d+\.\d \[\d+\.\d-\d+\.\d\]$")
RATIO = re.compile(r"^\d+\.\d\dx$")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, object]]:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    env = dict(os.environ, NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text())


def _rows(stdout: str) -> dict[tuple[str, str], list[str]]:
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 9 and cells[0].split(" ")[0] in WORKLOADS:
            rows[(cells[0].split(" ")[0], cells[1])] = cells
    return rows


def test_every_workload_has_every_mode(quick_run: tuple[str, dict[str, object]]) -> None:
    rows = _rows(quick_run[0])
    expected = {(w, m) for w in WORKLOADS for m in (SCALE_MODES if w == "scale" else MODES)}
    assert set(rows) == expected


def test_numbers_parse(quick_run: tuple[str, dict[str, object]]) -> None:
    for (_workload, mode), cells in _rows(quick_run[0]).items():
        if cells[2].startswith("n/a ("):
            assert mode not in ("untraced", "asynctrace auto + every await"), cells
            continue
        assert MS.match(cells[2]) and MS.match(cells[4]), cells
        assert RATIO.match(cells[3]) and RATIO.match(cells[5]), cells
        float(cells[6])
        if mode.startswith("asynctrace"):
            assert int(cells[7].replace(",", "")) > 0, cells
        if mode == "untraced":
            assert cells[3] == cells[5] == "1.00x", cells


def test_targets_are_marked(quick_run: tuple[str, dict[str, object]]) -> None:
    rows = _rows(quick_run[0])
    for key in [
        ("fanout", MODES[2]),
        ("deep", MODES[2]),
        ("blog", MODES[2]),
        ("fanout", MODES[3]),
        ("fanout", MODES[4]),
        ("scale", SCALE_MODES[3]),
    ]:
        assert re.search(r": (MET|MISSED)", rows[key][8]), rows[key]
    # the OTLP export MUST happen off the loop thread, whatever the machine's speed
    assert "export off the loop thread: MET" in rows[("fanout", MODES[4])][8]


def test_cap_drops_spans_at_scale(quick_run: tuple[str, dict[str, object]]) -> None:
    data = quick_run[1]
    capped = [r for r in data["rows"] if r["workload"] == "scale" and r["mode"] == "auto-cap"]  # type: ignore[index]
    metrics = capped[0]["metrics"][0]
    assert metrics["dropped"] > 0
    assert metrics["records"] <= 1000


def test_extra_sections(quick_run: tuple[str, dict[str, object]]) -> None:
    stdout = quick_run[0]
    assert re.search(r"fanout: JSON timeline \d+\.\d\d MB \(\d+ B/span\)", stdout)
    assert re.search(r"fanout: recorded \d+ bytes per span", stdout)
    assert re.search(r"\| asynctrace auto \+ every await \| \d+ \| \d+\.\d\dx \|", stdout)
    assert re.search(r"asynctrace adds -?\d+\.\d ms to Python's start", stdout)
    assert "asyncio/OpenTelemetry/gRPC/VizTracer imported: []" in stdout


def test_whole_process_rows(quick_run: tuple[str, dict[str, object]]) -> None:
    stdout, data = quick_run
    rows = {(r["workload"], r["mode"]): r for r in data["process"]}  # type: ignore[attr-defined]
    for workload in ("fanout", "deep"):
        modes = [f"{i}-{m}" for i in ("bare", "extras") for m, _, _ in ASYNCTRACE_MODES]
        for mode in ("untraced", "pass", *modes, PURE_KEY):
            row = rows[(workload, mode)]
            assert row["skipped"] is None, row
            assert row["wall"] and all(t > 0 for t in row["wall"]), row
        assert rows[(workload, "untraced")]["ratio"] == [1.0]
    assert re.search(
        r"\| fanout 50x3 \| asynctrace run \(JSON .*, bare install .* <= 2.0x: (MET|MISSED)", stdout
    )
    assert re.search(
        r"\| deep 20x5 \| asynctrace run \(JSON .*, bare install .* <= 2.5x: (MET|MISSED)", stdout
    )
    assert "C accelerator built" in stdout and "orjson not installed" in stdout


def test_build_and_write_per_span_rows(quick_run: tuple[str, dict[str, object]]) -> None:
    stdout, data = quick_run
    raw = {(r["workload"], r["pure"]): r for r in data["export"]}  # type: ignore[attr-defined]
    for workload in ("fanout", "deep", "scale"):
        c, pure = raw[(workload, False)], raw[(workload, True)]
        assert "error" not in c and "error" not in pure, (c, pure)
        assert c["c"] is True and pure["c"] is False  # each path is the one it says
        assert c["spans"] == pure["spans"] > 10 and c["bytes"] > 0 and pure["bytes"] > 0
        assert len(c["rounds"]) == len(pure["rounds"]) >= 1  # in turns, as many of each
    assert re.search(r"\| fanout \| C accelerator \| [\d,]+ \| .* us/span: (MET|MISSED) \|", stdout)
    # the ratio: the median of the rounds' ratios, then their range
    ratio = r"[\d.]+x C \[[\d.]+-[\d.]+\] \(<= 3x\): (MET|MISSED)"
    pure_row = rf"\| fanout \| pure Python \| .* {ratio} \|"
    assert re.search(pure_row, stdout)
    assert re.search(r"\| scale \| C accelerator \| .* <= 4 s: (MET|MISSED) \|", stdout)


def test_whole_process_scripts_are_the_workloads(
    quick_run: tuple[str, dict[str, object]],
) -> None:
    """The generated script prints its line, asynctrace leaves that output alone, and traced it
    records the same spans as the in-loop bench's workload under ``asynctrace run``'s mode."""
    data = quick_run[1]
    process = {(r["workload"], r["mode"]): r for r in data["process"]}  # type: ignore[attr-defined]
    in_loop = {(r["workload"], r["mode"]): r for r in data["rows"]}  # type: ignore[attr-defined]
    for workload, label in (("fanout", "50x3"), ("deep", "20x5")):
        expected = f"{workload} {label} done\n"
        assert process[(workload, "untraced")]["stdout"] == expected
        spans = in_loop[(workload, "auto")]["metrics"][0]["spans"]
        for install in ("bare", "extras"):
            for mode, _, _ in ASYNCTRACE_MODES:
                assert process[(workload, f"{install}-{mode}")]["stdout"] == expected
            for mode in ("default", "json", "otlp"):  # OTLP: the spans the receiver got
                assert process[(workload, f"{install}-{mode}")]["spans"] == spans, (workload, mode)
        # without the C accelerator: the same output, the same spans
        assert process[(workload, PURE_KEY)]["stdout"] == expected
        assert process[(workload, PURE_KEY)]["spans"] == spans
