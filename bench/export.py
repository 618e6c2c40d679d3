"""What a trace costs to build and write, per span, in C and in pure Python, on a bare install.

Problem: the in-loop bench times the run, and the whole-process bench the sum of everything;
neither says what building a trace and writing its JSON timeline cost per span, nor whether
the pure-Python path (no C compiler at install time) stays close to the C one.

Solution: each workload's standalone script (fanout, deep, and the fanout shape at 1.1 million
spans) runs once under ``asynctrace run``'s recording (every ``async def`` traced, every
await) in a fresh process of the bare virtual environment (``bench/process.py``); then that
recorder's trace is built (``build_trace`` plus the critical path, as at stop) and its JSON
timeline written, several times, with the garbage collector paused as ``asynctrace run``
pauses it; medians are reported.  The same runs again with ``ASYNCTRACE_NO_SPEEDUPS=1``: the
pure-Python path.  Targets (issue 12): build + write at most 3 us per span for fanout, at most
4 s for the 1.1-million-span run, and pure Python at most 3x C.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from typing import Any

from bench import process
from bench.workloads import fanout, workloads

PER_SPAN_TARGET_US = 3.0  # fanout, build + JSON write
SCALE_TARGET_S = 4.0  # the 1.1-million-span run, build + JSON write
PURE_PYTHON_TARGET = 3.0  # pure Python / C

# Runs in the bare environment, in a temporary directory (so it imports the installed
# asynctrace): records the script once, then builds and writes its trace ROUNDS times.
CHILD = """\
import contextlib, io, json, os, statistics, sys, time
import asynctrace
from asynctrace import _autotrace, _coro
from asynctrace._build import build_trace
from asynctrace._chrome import write_chrome_json
from asynctrace._critical import mark_critical
from asynctrace._spans import gc_paused, release

script, out, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
code = _autotrace.compile_script(script)
finder = _autotrace.install_finder([os.path.dirname(os.path.abspath(script))])
tracing = asynctrace.Tracing(otel=False, max_spans=10**8).start()  # all kept: built whole
with contextlib.redirect_stdout(io.StringIO()):
    _autotrace.exec_script(code, script, [])
tracing.stop_recording()
_autotrace.remove_finder(finder)
build, write = [], []
for _ in range(rounds):
    with gc_paused():
        t0 = time.perf_counter()
        trace = build_trace(tracing.recorder)
        mark_critical(trace)
        t1 = time.perf_counter()
        write_chrome_json(trace, out)
        t2 = time.perf_counter()
        spans = len(trace.spans)
        release(trace)
        del trace
    build.append(t1 - t0)
    write.append(t2 - t1)
print(json.dumps({"spans": spans, "build": build, "write": write,
                  "c": _coro.speedups is not None, "bytes": os.path.getsize(out)}))
"""


def _child(python: str, script: str, rounds: int, pure: bool) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "ASYNCTRACE_NO_SPEEDUPS"}
    if pure:
        env["ASYNCTRACE_NO_SPEEDUPS"] = "1"
    directory = os.path.dirname(script)
    out = os.path.join(directory, "trace.json")
    proc = subprocess.run(
        [python, "-c", CHILD, script, out, str(rounds)],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-400:] or f"exit status {proc.returncode}"}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def section(names: list[str], quick: bool, rounds: int) -> tuple[list[str], list[dict[str, Any]]]:
    """The markdown lines of the export section, and its raw samples."""
    venv, why = process.bare_venv()
    if venv is None:
        return [f"## Build and JSON write per span: skipped ({why})"], []
    python = os.path.join(venv, "bin", "python")
    chosen = workloads(quick)
    sources = {name: chosen[name].source for name in names if chosen[name].source}
    if "scale" in names:
        big = chosen["scale"]
        n, k = (int(x) for x in big.label.split("x"))
        sources["scale"] = fanout(n, k).source
    lines = [
        f"## Build and JSON write per span (bare install, fresh process, median of {rounds})",
        "",
        "| workload | path | spans | build ms | JSON write ms | total ms | us per span | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    raw = []
    with tempfile.TemporaryDirectory(prefix="asynctrace-export-") as directory:
        for name, source in sources.items():
            script = os.path.join(directory, f"{name}.py")
            with open(script, "w", encoding="utf-8") as file:
                file.write(source)
            n = 1 if name == "scale" else rounds
            sys.stderr.write(f"bench: build and write of {name}, C and pure Python ...\n")
            totals = {}
            for pure in (False, True):
                result = _child(python, script, n, pure)
                raw.append({"workload": name, "pure": pure, **result})
                path = "pure Python" if pure else "C accelerator"
                if "error" in result:
                    failed = f"failed: {result['error']}"
                    lines.append(f"| {name} | {path} | - | - | - | - | - | {failed} |")
                    continue
                build = statistics.median(result["build"])
                write = statistics.median(result["write"])
                total = build + write
                totals[pure] = total
                per_span = total / result["spans"] * 1e6
                lines.append(
                    f"| {name} | {path} | {result['spans']:,} | {build * 1e3:.1f} "
                    f"| {write * 1e3:.1f} | {total * 1e3:.1f} | {per_span:.2f} "
                    f"| {_target(name, pure, total, per_span, totals)} |"
                )
    return lines, raw


def _target(name: str, pure: bool, total: float, per_span: float, totals: dict[bool, float]) -> str:
    if pure and False in totals:
        ratio = total / totals[False]
        mark = "MET" if ratio <= PURE_PYTHON_TARGET else "MISSED"
        return f"{ratio:.2f}x C (<= {PURE_PYTHON_TARGET:g}x): {mark}"
    if pure:
        return ""
    if name == "fanout":
        mark = "MET" if per_span <= PER_SPAN_TARGET_US else "MISSED"
        return f"<= {PER_SPAN_TARGET_US:g} us/span: {mark}"
    if name == "scale":
        mark = "MET" if total <= SCALE_TARGET_S else "MISSED"
        return f"<= {SCALE_TARGET_S:g} s: {mark}"
    return ""
