"""The bench runner: ``python -m bench [--quick] [--rounds N] [--only WORKLOAD] [--json FILE]``.

Per workload, every mode runs once per round, in an order rotated each round, each on a fresh
event loop after a ``gc.collect()``.  Timed: ``loop.run_until_complete(main())`` only ("inside
the loop"), as wall time (``perf_counter``) and as CPU time of the loop thread
(``thread_time``, which other processes' load disturbs far less).  Ratios are taken per round
against the untraced run of the same round; the table shows their median.  Stopping, building
the trace and exporting are timed apart ("after the run").  Memory is measured in a fresh
process per mode (``bench/memory.py``); the whole process, as a user waits for it, in fresh
processes of standalone scripts (``bench/process.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from bench import export, process
from bench.modes import Mode, make_modes
from bench.workloads import Main, Workload, workloads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_ROUNDS = 9
SCALE_ROUNDS = 3  # the scale workload runs seconds per mode: fewer rounds


@dataclass
class Row:
    """The samples of one mode of one workload."""

    workload: Workload
    mode: Mode
    skipped: str | None = None
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    wall_ratio: list[float] = field(default_factory=list)
    cpu_ratio: list[float] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)

    def metric(self, name: str) -> Any:
        """The median of a numeric metric over the rounds (the last value if not numeric)."""
        values = [m[name] for m in self.metrics if m.get(name) is not None]
        if not values:
            return None
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return statistics.median(values)
        return values[-1]

    def any_metric(self, name: str) -> bool:
        return any(bool(m.get(name)) for m in self.metrics)


def run_once(mode: Mode, workload: Workload, main: Main) -> tuple[float, float, dict[str, Any]]:
    """Run the workload once under ``mode``: (wall s, loop-thread CPU s, the mode's metrics)."""
    loop = asyncio.new_event_loop()
    try:
        gc.collect()
        mode.start(workload)
        c0 = time.thread_time()
        w0 = time.perf_counter()
        loop.run_until_complete(main())
        w1 = time.perf_counter()
        c1 = time.thread_time()
        metrics = mode.finish()
    finally:
        loop.close()
    return w1 - w0, c1 - c0, metrics


def bench_workload(workload: Workload, rounds: int, quick: bool) -> list[Row]:
    """All modes of one workload, interleaved, ``rounds`` times (after one untimed warm-up)."""
    scale = workload.name == "scale"
    rows = [Row(workload, mode, mode.available()) for mode in make_modes(scale)]
    live = [row for row in rows if row.skipped is None]
    mains = {row.mode.key: row.mode.build(workload) for row in live}
    try:
        if not scale and not quick:  # warm-up: imports, caches, the peers' first-time setup
            for row in live:
                run_once(row.mode, workload, mains[row.mode.key])
        for r in range(rounds):
            order = live[r % len(live) :] + live[: r % len(live)]
            samples: dict[str, tuple[float, float]] = {}
            for row in order:
                if r == 0 and hasattr(row.mode, "measure_bytes"):
                    row.mode.measure_bytes = True
                wall, cpu, metrics = run_once(row.mode, workload, mains[row.mode.key])
                row.wall.append(wall)
                row.cpu.append(cpu)
                row.metrics.append(metrics)
                samples[row.mode.key] = (wall, cpu)
            base_wall, base_cpu = samples["untraced"]
            for row in live:
                wall, cpu = samples[row.mode.key]
                row.wall_ratio.append(wall / base_wall)
                row.cpu_ratio.append(cpu / base_cpu if base_cpu > 0 else float("nan"))
    finally:
        for row in rows:
            row.mode.close()
    return rows


# --- targets ------------------------------------------------------------------------------


def _mark(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def target(row: Row, rows: list[Row]) -> str:
    """The issue-5 target this row answers, with MET/MISSED, or '' if none."""
    w, key = row.workload.name, row.mode.key
    if row.skipped is not None:
        return ""
    cpu = statistics.median(row.cpu_ratio)
    wall = statistics.median(row.wall_ratio)
    if key == "auto" and w in ("fanout", "deep"):
        limit = 1.5 if w == "fanout" else 3.0
        aim = " (aim 1.25x)" if w == "fanout" else ""
        return f"CPU <= {limit:g}x{aim}: {_mark(cpu <= limit)}"
    if key == "auto" and w == "blog":
        return f"wall <= 1.02x: {_mark(wall <= 1.02)}"
    if key == "json" and w == "fanout":
        export = row.metric("export_s")
        size = row.metric("file_bytes")
        viz = next((x for x in rows if x.mode.key == "viztracer"), None)
        text = f"export <= 0.3 s: {_mark(export <= 0.3)}"
        if viz is not None and viz.skipped is None and viz.metric("file_bytes"):
            share = size / viz.metric("file_bytes")
            text += f"; file <= 1/10 VizTracer's: {_mark(share <= 0.1)} (1/{1 / share:.0f})"
        return text
    if key == "otlp":
        on_loop = row.any_metric("on_loop_thread")
        ok = not on_loop and row.metric("export_threads") and row.metric("otlp_received")
        return f"export off the loop thread: {_mark(bool(ok))}"
    if key == "auto-cap":
        kept = row.metric("records")
        dropped = row.metric("dropped")
        cap = getattr(row.mode, "max_spans", 0)
        return (
            f"bounded (kept {kept:,.0f} <= {cap:,}; dropped {dropped:,.0f}): {_mark(kept <= cap)}"
        )
    return ""


# --- the table ----------------------------------------------------------------------------


def _ms(values: list[float]) -> str:
    return (
        f"{statistics.median(values) * 1e3:.1f} [{min(values) * 1e3:.1f}-{max(values) * 1e3:.1f}]"
    )


def _ratio(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}x"


HEADER = (
    "| workload | mode | loop wall ms, median [min-max] | wall vs untraced "
    "| loop CPU ms, median [min-max] | CPU vs untraced | after the run ms | spans | target |"
)


def table(all_rows: list[list[Row]]) -> str:
    """The side-by-side table, in Markdown."""
    lines = [HEADER, "|" + "---|" * 9]
    for rows in all_rows:
        for row in rows:
            w = f"{row.workload.name} {row.workload.label}"
            if row.skipped is not None:
                lines.append(f"| {w} | {row.mode.title} | n/a ({row.skipped}) | | | | | | |")
                continue
            after = (row.metric("stop_s") or 0.0) + (row.metric("export_s") or 0.0)
            spans = row.metric("spans")
            lines.append(
                f"| {w} | {row.mode.title} | {_ms(row.wall)} | {_ratio(row.wall_ratio)} "
                f"| {_ms(row.cpu)} | {_ratio(row.cpu_ratio)} | {after * 1e3:.1f} "
                f"| {'-' if spans is None else f'{spans:,.0f}'} | {target(row, rows)} |"
            )
    return "\n".join(lines)


def exports_section(rows: list[Row]) -> list[str]:
    """JSON timeline, VizTracer file and OTLP delivery for one workload."""
    by_key = {row.mode.key: row for row in rows if row.skipped is None}
    name = rows[0].workload.name
    out = []
    if "json" in by_key:
        r = by_key["json"]
        spans = r.metric("spans")
        out.append(
            f"- {name}: JSON timeline {r.metric('file_bytes') / 1e6:.2f} MB "
            f"({r.metric('file_bytes') / spans:.0f} B/span), written in "
            f"{r.metric('export_s') * 1e3:.0f} ms; trace built in "
            f"{r.metric('stop_s') * 1e3:.0f} ms"
        )
    if "viztracer" in by_key:
        r = by_key["viztracer"]
        out.append(
            f"- {name}: VizTracer file {r.metric('file_bytes') / 1e6:.2f} MB, saved in "
            f"{r.metric('export_s') * 1e3:.0f} ms"
        )
    if "otlp" in by_key:
        r = by_key["otlp"]
        out.append(
            f"- {name}: OTLP: {r.metric('stop_s') * 1e3:.0f} ms on the loop thread to stop, build "
            "and hand over, "
            f"{r.metric('deliver_s') * 1e3:.0f} ms until the receiver confirmed "
            f"{r.metric('otlp_received'):,.0f} of {r.metric('spans'):,.0f} spans "
            f"({r.metric('otlp_bytes') / 1e6:.2f} MB protobuf); export() on the loop thread: "
            f"{'yes' if r.any_metric('on_loop_thread') else 'no'}"
        )
    if "auto" in by_key:
        r = by_key["auto"]
        if r.metric("record_bytes"):
            out.append(
                f"- {name}: recorded {r.metric('record_bytes') / r.metric('records'):.0f} "
                f"bytes per span while running ({r.metric('records'):,.0f} records)"
            )
    return out


# --- memory and import time (subprocesses) ------------------------------------------------


def _python(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def memory(workload: str, keys: list[str], quick: bool) -> dict[str, dict[str, Any]]:
    """Peak RSS per mode, each in a fresh process."""
    result: dict[str, dict[str, Any]] = {}
    for key in keys:
        args = ["-m", "bench.memory", workload, key] + (["--quick"] if quick else [])
        proc = _python(args)
        try:
            result[key] = json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            result[key] = {"skipped": f"failed: {proc.stderr.strip()[-200:]}"}
    return result


def memory_section(
    workload: str, mem: dict[str, dict[str, Any]], titles: dict[str, str], limit: float | None
) -> list[str]:
    base = mem.get("untraced", {})
    lines = [
        f"| {workload} mode | peak RSS MB | vs untraced | growth during run MB "
        "| vs untraced | target |",
        "|---|---|---|---|---|---|",
    ]
    for key, m in mem.items():
        if "skipped" in m:
            lines.append(f"| {titles[key]} | n/a ({m['skipped']}) | | | | |")
            continue
        peak, growth = m["peak_kb"] / 1024, (m["peak_kb"] - m["baseline_kb"]) / 1024
        ratio = m["peak_kb"] / base["peak_kb"] if "peak_kb" in base else float("nan")
        base_growth = (base.get("peak_kb", 0) - base.get("baseline_kb", 0)) / 1024
        growth_ratio = f"{growth / base_growth:.1f}x" if base_growth > 0.5 else "-"
        mark = ""
        if limit is not None and key == "auto":
            mark = f"peak <= {limit:g}x untraced: {_mark(ratio <= limit)}"
        if key == "auto-cap":
            mark = f"dropped {m.get('dropped') or 0:,} spans, kept {m.get('spans') or 0:,}"
        lines.append(
            f"| {titles[key]} | {peak:.0f} | {ratio:.2f}x | {growth:.0f} "
            f"| {growth_ratio} | {mark} |"
        )
    return lines


def import_time(rounds: int) -> dict[str, Any]:
    """Median wall time of ``python -c pass``, ``import asyncio`` and ``import asynctrace``.

    Bytecode caches are allowed (into a temporary ``PYTHONPYCACHEPREFIX``, after one warm-up
    run) even where the environment sets ``PYTHONDONTWRITEBYTECODE``: a user's installed
    package has its ``.pyc`` files, and compiling the sources on every start is not its cost.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    codes = {"pass": "pass", "asyncio": "import asyncio", "import": "import asynctrace"}
    samples: dict[str, list[float]] = {key: [] for key in codes}
    with tempfile.TemporaryDirectory(prefix="asynctrace-bench-pyc-") as cache:
        env["PYTHONPYCACHEPREFIX"] = cache
        for r in range(rounds + 1):
            for key, code in codes.items():
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)
                if r:  # round 0 writes the caches
                    samples[key].append(time.perf_counter() - t0)
    proc = _python(
        [
            "-c",
            "import sys, asynctrace; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'asyncio', 'opentelemetry', 'grpc', 'google', 'viztracer'}))",
        ]
    )
    result: dict[str, Any] = {key: statistics.median(v) for key, v in samples.items()}
    result["heavy"] = proc.stdout.strip() or proc.stderr.strip()[-200:]
    return result


# --- main ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 round (smoke test)")
    parser.add_argument(
        "--rounds", type=int, default=None, help=f"rounds (default {DEFAULT_ROUNDS})"
    )
    parser.add_argument(
        "--only",
        choices=("fanout", "deep", "blog", "scale"),
        help="run one workload (and skip memory and import time)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the raw samples here")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--no-process", action="store_true", help="skip the whole-process section")
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: give at least 1 round")
    rounds = 1 if args.quick else (args.rounds or DEFAULT_ROUNDS)
    chosen = workloads(args.quick)
    names = [args.only] if args.only else list(chosen)

    load = os.getloadavg()
    print(
        f"# asynctrace bench: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start, {rounds} rounds"
    )
    all_rows: list[list[Row]] = []
    for name in names:
        workload = chosen[name]
        n = min(rounds, SCALE_ROUNDS) if name == "scale" else rounds
        sys.stderr.write(f"bench: {name} {workload.label}, {n} rounds ...\n")
        all_rows.append(bench_workload(workload, n, args.quick))
    print()
    print(table(all_rows))
    print()
    print("## Exports and recorded size")
    for rows in all_rows:
        for line in exports_section(rows):
            print(line)

    mem_out: dict[str, Any] = {}
    if not args.no_memory:
        for name in names:
            if name not in ("fanout", "scale"):
                continue
            sys.stderr.write(f"bench: memory of {name} ...\n")
            modes = make_modes(scale=name == "scale")
            titles = {m.key: m.title for m in modes}
            mem_out[name] = memory(name, [m.key for m in modes], args.quick)
            print()
            print(
                f"## Peak memory, {name} (peak RSS, VmHWM, of a fresh process per mode: "
                "run + stop + export)"
            )
            for line in memory_section(
                name, mem_out[name], titles, 2.0 if name == "fanout" else None
            ):
                print(line)

    export_lines, export_raw = export.section(
        [name for name in names if name in ("fanout", "deep", "scale")], args.quick, rounds
    )
    print()
    print("\n".join(export_lines))

    process_rows: list[dict[str, Any]] = []
    with_source = [chosen[name] for name in names if chosen[name].source]
    if not args.no_process and with_source:
        lines, process_rows = process.section(with_source, rounds)
        print()
        print("\n".join(lines))

    imports: dict[str, Any] = {}
    if not args.only:
        imports = import_time(3 if args.quick else 15)
        extra = (imports["import"] - imports["pass"]) * 1e3
        print()
        print("## Import time (median of 15 fresh processes, bytecode cached)")
        print(
            f"- python -c pass: {imports['pass'] * 1e3:.1f} ms; import asyncio: "
            f"{imports['asyncio'] * 1e3:.1f} ms; import asynctrace: "
            f"{imports['import'] * 1e3:.1f} ms"
        )
        print(
            f"- asynctrace adds {extra:.1f} ms to Python's start "
            f"(target <= 30 ms: {_mark(extra <= 30)}); asyncio/OpenTelemetry/gRPC/VizTracer "
            f"imported: {imports['heavy']}"
        )
    load = os.getloadavg()
    print()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end")

    if args.json:
        data = {
            "rows": [
                {
                    "workload": r.workload.name,
                    "label": r.workload.label,
                    "mode": r.mode.key,
                    "skipped": r.skipped,
                    "wall": r.wall,
                    "cpu": r.cpu,
                    "wall_ratio": r.wall_ratio,
                    "cpu_ratio": r.cpu_ratio,
                    "metrics": r.metrics,
                }
                for rows in all_rows
                for r in rows
            ],
            "memory": mem_out,
            "process": process_rows,
            "export": export_raw,
            "import": imports,
        }
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=1, default=str)
    return 0
