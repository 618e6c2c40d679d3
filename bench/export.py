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
pure-Python path, in turns with the C one round by round.  Targets (issue 12): build + write
at most 3 us per span for fanout, at most 4 s for the 1.1-million-span run, and pure Python at
most 3x C.
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
SCALE_ROUNDS = 3  # of the 1.1-million-span run (about 4 s each in C, 9 s in pure Python)
PURE_PYTHON_TARGET = 3.0  # pure Python / C

# Runs in the bare environment, in a temporary directory (so it imports the installed
# asynctrace): records the script once, then builds and writes its trace once per line read
# from stdin, printing each round's times as a JSON line.
CHILD = """\
import contextlib, io, json, os, sys, time
import asynctrace
from asynctrace._core import _autotrace, _coro
from asynctrace._model._build import build_trace
from asynctrace._export._chrome import write_chrome_json
from asynctrace._model._critical import mark_critical
from asynctrace._model._spans import gc_paused, release

script, out = sys.argv[1], sys.argv[2]
code = _autotrace.compile_script(script)
finder = _autotrace.install_finder([os.path.dirname(os.path.abspath(script))])
tracing = asynctrace.Tracing(otel=False, max_spans=10**8).start()  # all kept: built whole
with contextlib.redirect_stdout(io.StringIO()):
    _autotrace.exec_script(code, script, [])
tracing.stop_recording()
_autotrace.remove_finder(finder)
for _ in sys.stdin:
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
    print(json.dumps({"spans": spans, "build": t1 - t0, "write": t2 - t1,
                      "c": _coro.speedups is not None, "bytes": os.path.getsize(out)}),
          flush=True)
"""


class _Child:
    """A CHILD process, C or pure Python, asked for one round at a time."""

    def __init__(self, python: str, script: str, pure: bool) -> None:
        env = {k: v for k, v in os.environ.items() if k != "ASYNCTRACE_NO_SPEEDUPS"}
        if pure:
            env["ASYNCTRACE_NO_SPEEDUPS"] = "1"
        directory = os.path.dirname(script)
        out = os.path.join(directory, "pure.json" if pure else "c.json")
        self.proc = subprocess.Popen(
            [python, "-c", CHILD, script, out],
            cwd=directory,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.rounds: list[dict[str, Any]] = []
        self.error = ""

    def round(self) -> None:
        """One more build and write (the first one after the recording)."""
        if self.error:
            return
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
        except OSError:
            pass
        line = self.proc.stdout.readline()
        if line:
            self.rounds.append(json.loads(line))
        else:
            self.close()
            self.error = self.error or "no result"

    def close(self) -> None:
        if self.proc.returncode is not None:  # closed already (a round found it gone)
            return
        _, stderr = self.proc.communicate(input="", timeout=1800)
        if self.proc.returncode:
            self.error = stderr.strip()[-400:] or f"exit status {self.proc.returncode}"


def section(names: list[str], quick: bool, rounds: int) -> tuple[list[str], list[dict[str, Any]]]:
    """The markdown lines of the export section, and its raw samples.

    The C and the pure-Python process take turns, round by round, and the pure path's ratio to
    C is the median of the rounds' ratios: on this shared machine the speed drifts by half
    within minutes, which two processes run one after the other would take as a difference
    between the paths."""
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
        f"## Build and JSON write per span (bare install, fresh processes, C and pure Python in "
        f"turns, median of {rounds}; of {min(rounds, SCALE_ROUNDS)} for scale)",
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
            n = min(rounds, SCALE_ROUNDS) if name == "scale" else rounds
            sys.stderr.write(f"bench: build and write of {name}, C and pure Python ...\n")
            children = {}
            for pure in (False, True):  # one recording at a time
                children[pure] = _Child(python, script, pure)
                children[pure].round()
            for _ in range(n - 1):
                for child in children.values():
                    child.round()
            for child in children.values():
                child.close()
            c_rounds = children[False].rounds
            for pure, child in children.items():
                last = child.rounds[-1] if child.rounds else {}
                raw.append(
                    {
                        "workload": name,
                        "pure": pure,
                        "rounds": child.rounds,
                        **{key: last[key] for key in ("spans", "c", "bytes") if key in last},
                        **({"error": child.error} if child.error else {}),
                    }
                )
                path = "pure Python" if pure else "C accelerator"
                if child.error or len(child.rounds) < n:
                    failed = f"failed: {child.error or 'no result'}"
                    lines.append(f"| {name} | {path} | - | - | - | - | - | {failed} |")
                    continue
                build = statistics.median(r["build"] for r in child.rounds)
                write = statistics.median(r["write"] for r in child.rounds)
                total = build + write
                spans = child.rounds[-1]["spans"]
                per_span = total / spans * 1e6
                ratios = [
                    (r["build"] + r["write"]) / (c["build"] + c["write"])
                    for r, c in zip(child.rounds, c_rounds, strict=False)
                ]
                lines.append(
                    f"| {name} | {path} | {spans:,} | {build * 1e3:.1f} "
                    f"| {write * 1e3:.1f} | {total * 1e3:.1f} | {per_span:.2f} "
                    f"| {_target(name, pure, total, per_span, ratios)} |"
                )
    return lines, raw


def _target(name: str, pure: bool, total: float, per_span: float, ratios: list[float]) -> str:
    if pure and ratios:
        ratio = statistics.median(ratios)
        mark = "MET" if ratio <= PURE_PYTHON_TARGET else "MISSED"
        return (
            f"{ratio:.2f}x C [{min(ratios):.2f}-{max(ratios):.2f}] (<= {PURE_PYTHON_TARGET:g}x):"
            f" {mark}"
        )
    if pure:
        return ""
    if name == "fanout":
        mark = "MET" if per_span <= PER_SPAN_TARGET_US else "MISSED"
        return f"<= {PER_SPAN_TARGET_US:g} us/span: {mark}"
    if name == "scale":
        mark = "MET" if total <= SCALE_TARGET_S else "MISSED"
        return f"<= {SCALE_TARGET_S:g} s: {mark}"
    return ""
