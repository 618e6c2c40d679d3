"""The whole process, as a user waits for it: ``python script.py`` against ``asynctrace run``.

Problem: the in-loop bench times ``run_until_complete`` only, but a user of ``asynctrace run``
waits for the interpreter's start, the imports, the run, the trace's build, the export and the
exit; and ``pip install asynctrace`` alone brings no orjson (it is an extra).

Solution: each workload with a ``source`` is written as a standalone script into a temporary
directory, and run as a fresh process per mode, timed with ``perf_counter`` around
``subprocess.run`` (cwd: that directory, so each tool imports its installed asynctrace, never
the source tree): untraced; every asynctrace mode of the in-loop bench as a user runs it
(``ASYNCTRACE_MODES``: ``asynctrace run`` with its default outputs, without any, with the JSON
file only, with OTLP to a receiver the bench starts on 127.0.0.1; the script decorated), each
from a bare virtual environment (``pip install`` of this checkout, no extras, cached and
reinstalled when the sources change) and from this environment (with its extras); the
default run once more from the bare install without its C accelerator (what a user whose
install could not compile it waits for); and the peers installed here.  Rounds are interleaved
and rotated as in ``bench/run.py``; ratios are per round against the same round's untraced run.
"""

from __future__ import annotations

import fcntl
import glob
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from bench.workloads import Workload

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "asynctrace"
)
PEER_HINT = "not installed (pip install 'asynctrace[bench]')"
PEERS = ("otel-asyncio", "viztracer")  # a peer that fails is a row that says so, not a crash

# opentelemetry-instrumentation-asyncio has no command line of its own for an in-memory exporter:
# this wrapper sets it up as bench/modes.py's OtelAsyncio does, then runs the script.
OTEL_WRAPPER = """\
import os
import runpy
import sys

from opentelemetry.instrumentation.asyncio import AsyncioInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

names, script = sys.argv[1], sys.argv[2]
os.environ["OTEL_PYTHON_ASYNCIO_COROUTINE_NAMES_TO_TRACE"] = names
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
AsyncioInstrumentor().instrument(tracer_provider=provider)
sys.argv = sys.argv[2:]
runpy.run_path(script, run_name="__main__")
sys.stderr.write(f"otel spans: {len(exporter.get_finished_spans())}\\n")
"""


@dataclass
class ProcessRow:
    """One mode of one workload: its command and the samples of its rounds."""

    workload: Workload
    key: str
    title: str
    argv: list[str]
    skipped: str | None = None
    env: dict[str, str] = field(default_factory=dict)  # added to the children's environment
    wall: list[float] = field(default_factory=list)
    ratio: list[float] = field(default_factory=list)
    stdout: str = ""
    spans: int | None = None
    json_path: str = ""

    def median_ratio(self) -> float:
        return statistics.median(self.ratio)


def _stale(stamp: str) -> bool:
    """Whether the install the stamp records is of another checkout, or older than a source."""
    try:
        with open(stamp, encoding="utf-8") as file:
            if file.read() != ROOT:
                return True
    except FileNotFoundError:
        return True
    made = os.path.getmtime(stamp)
    paths = [os.path.join(ROOT, "pyproject.toml"), os.path.join(ROOT, "setup.py")]
    paths += glob.glob(os.path.join(ROOT, "asynctrace", "*.py"))
    paths += glob.glob(os.path.join(ROOT, "asynctrace", "*.c"))
    paths += glob.glob(os.path.join(ROOT, "asynctrace", "*.h"))
    return any(os.path.getmtime(path) > made for path in paths)


def bare_venv() -> tuple[str | None, str]:
    """A virtual environment with ``pip install`` of this checkout and nothing else.

    Made under ``~/.cache/asynctrace`` (one per Python version), reinstalled when its stamp
    names another checkout, or ``pyproject.toml``, ``setup.py`` or a source under
    ``asynctrace/`` (a .py, .c or .h) is newer than the stamp;
    a lock keeps two benches (two test workers) from installing into it at once.

    Returns:
        (the environment's directory, "") or (None, why it could not be made).
    """
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    venv = os.path.join(CACHE, f"bench-bare-py{version}")
    python = os.path.join(venv, "bin", "python")
    stamp = os.path.join(venv, ".asynctrace-installed")
    os.makedirs(CACHE, exist_ok=True)
    with open(f"{venv}.lock", "w", encoding="ascii") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(python) and not _stale(stamp):
            return venv, ""
        sys.stderr.write(f"bench: installing this checkout, no extras, into {venv} ...\n")
        steps = [] if os.path.exists(python) else [[sys.executable, "-m", "venv", venv]]
        steps += [
            [python, "-m", "pip", "uninstall", "-q", "-y", "asynctrace"],
            [python, "-m", "pip", "install", "-q", ROOT],
        ]
        for step in steps:
            proc = subprocess.run(step, capture_output=True, text=True, check=False)
            if proc.returncode != 0 and "uninstall" not in step:
                return None, f"{' '.join(step[-3:])} failed: {proc.stderr.strip()[-300:]}"
        with open(stamp, "w", encoding="utf-8") as file:
            file.write(ROOT)
    return venv, ""


def describe(venv: str) -> str:
    """What the bare install's ``asynctrace run`` imports: where from, the C parts, orjson.

    Raises:
        RuntimeError: it imports asynctrace from anywhere but the bare environment.
    """
    probe = (
        "import asynctrace, importlib.util as u; "
        "print(asynctrace.__file__); "
        "print(*(bool(u.find_spec(m)) for m in "
        "('asynctrace._speedups', 'asynctrace._cjson', 'orjson')))"
    )
    with tempfile.TemporaryDirectory() as directory:
        proc = subprocess.run(
            [os.path.join(venv, "bin", "python"), "-c", probe],
            cwd=directory,
            env=_environment(),
            capture_output=True,
            text=True,
            check=True,
        )
    where, found = proc.stdout.splitlines()
    if not where.startswith(venv):
        msg = f"the bare install imports asynctrace from {where}, not from {venv}: unset PYTHONPATH"
        raise RuntimeError(msg)
    speedups, cjson, orjson = (flag == "True" for flag in found.split())
    return (
        f"{venv} (`pip install` of this checkout, no extras): C accelerator "
        f"{'built' if speedups else 'NOT built'}, C JSON encoder "
        f"{'built' if cjson else 'NOT built'}, orjson {'installed' if orjson else 'not installed'}"
    )


def _tool(bin_dir: str, name: str, python: str) -> list[str]:
    """The console script ``name`` in ``bin_dir`` (what a user types), else ``python -m``."""
    path = os.path.join(bin_dir, name)
    return [path] if os.access(path, os.X_OK) else [python, "-m", name]


# The in-loop bench's asynctrace modes as a user runs them, each from both installs: (key,
# title, the command after ``asynctrace``; None: the decorated script under plain ``python``).
# OUT is the JSON file, URL the OTLP receiver's endpoint.
ASYNCTRACE_MODES: tuple[tuple[str, str, list[str] | None], ...] = (
    ("default", "asynctrace run (JSON file + terminal timeline: the default)",
     ["run", "--json", "OUT"]),
    ("decorators", "decorators only: @asynctrace.trace on main, python script.py", None),
    ("auto", "asynctrace run --no-json --no-timeline (every await, no output)",
     ["run", "--no-json", "--no-timeline"]),
    ("json", "asynctrace run --json OUT --no-timeline", ["run", "--json", "OUT", "--no-timeline"]),
    ("otlp", "asynctrace run --otlp URL --no-json --no-timeline (OTLP/HTTP)",
     ["run", "--otlp", "URL", "--otlp-protocol", "http/protobuf", "--no-json", "--no-timeline"]),
)  # fmt: skip
INSTALLS = ("bare", "extras")
# The default run again from the bare install without its C accelerator: what a user whose
# install could not compile it waits for (ASYNCTRACE_NO_SPEEDUPS=1: the pure-Python path).
PURE_KEY = "bare-pure-default"


def decorated(workload: Workload) -> str:
    """The workload's script with ``@asynctrace.trace`` on its top coroutine, run under
    ``tracing(record_awaits=False)`` (the in-loop "decorators only" mode), nothing written."""
    top = workload.coroutine_names[-1]
    source = workload.source.replace(f"async def {top}(", f"@asynctrace.trace\nasync def {top}(")
    run = f"asyncio.run({top}())"
    assert run in source and source.startswith("import asyncio\n"), workload.name
    source = source.replace(run, f"with asynctrace.tracing(record_awaits=False):\n    {run}")
    return "import asynctrace\n" + source


def make_rows(
    workload: Workload, directory: str, bare: str | None, bare_why: str, otlp_url: str
) -> list[ProcessRow]:
    """The modes of one workload, with its scripts and the OTel wrapper written to ``directory``."""
    script = os.path.join(directory, f"{workload.name}.py")
    with open(script, "w", encoding="utf-8") as file:
        file.write(workload.source)
    decorated_script = os.path.join(directory, f"{workload.name}_decorated.py")
    with open(decorated_script, "w", encoding="utf-8") as file:
        file.write(decorated(workload))
    here = os.path.dirname(sys.executable)
    orjson = "orjson" if importlib.util.find_spec("orjson") else "no orjson"
    rows = [
        ProcessRow(workload, "untraced", "untraced: python script.py", [sys.executable, script]),
        ProcessRow(
            workload,
            "pass",
            "python -c pass (the interpreter alone)",
            [sys.executable, "-c", "pass"],
        ),
    ]
    for install in INSTALLS:
        if install == "bare":
            bin_dir, python = (
                os.path.join(bare or "", "bin"),
                os.path.join(bare or "", "bin", "python"),
            )
            where, skipped = "bare install (no extras)", None if bare else bare_why
            tool = [os.path.join(bin_dir, "asynctrace")]
        else:
            bin_dir, python, where, skipped = (
                here,
                sys.executable,
                f"this environment ({orjson})",
                None,
            )
            tool = _tool(here, "asynctrace", sys.executable)
        for mode, title, args in ASYNCTRACE_MODES:
            key = f"{install}-{mode}"
            out = os.path.join(directory, f"{workload.name}.{key}.json")
            if args is None:
                argv = [python, decorated_script]
            else:
                argv = [
                    *tool,
                    *(out if a == "OUT" else otlp_url if a == "URL" else a for a in args),
                    script,
                ]
            rows.append(
                ProcessRow(
                    workload, key, f"{title}, {where}", argv, skipped=skipped,
                    json_path=out if args is not None and "OUT" in args else "",
                )
            )  # fmt: skip
            if key == "bare-default":
                pure_out = os.path.join(directory, f"{workload.name}.{PURE_KEY}.json")
                rows.append(
                    ProcessRow(
                        workload, PURE_KEY, f"{title}, {where}, without its C accelerator",
                        [pure_out if a == out else a for a in argv], skipped=skipped,
                        env={"ASYNCTRACE_NO_SPEEDUPS": "1"}, json_path=pure_out,
                    )
                )  # fmt: skip
    otel = os.path.join(directory, "otel_asyncio_run.py")
    with open(otel, "w", encoding="utf-8") as file:
        file.write(OTEL_WRAPPER)
    has_otel = importlib.util.find_spec("opentelemetry.instrumentation.asyncio") is not None
    rows.append(
        ProcessRow(
            workload,
            "otel-asyncio",
            "opentelemetry-instrumentation-asyncio (wrapper, in-memory exporter)",
            [sys.executable, otel, ",".join(workload.coroutine_names), script],
            skipped=None if has_otel else PEER_HINT,
        )
    )
    has_viz = importlib.util.find_spec("viztracer") is not None
    viz_out = os.path.join(directory, f"{workload.name}.viz.json")
    rows.append(
        ProcessRow(
            workload,
            "viztracer",
            "viztracer --log_async -o OUT script.py",
            [*_tool(here, "viztracer", sys.executable), "--log_async", "-o", viz_out, script],
            skipped=None if has_viz else PEER_HINT,
        )
    )
    return rows


def _environment() -> dict[str, str]:
    """The children's environment: bytecode caches allowed (an installed package has them), no
    PYTHONPATH (which could put the source tree before the installed asynctrace)."""
    drop = {"PYTHONDONTWRITEBYTECODE", "PYTHONPATH"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _run_once(
    row: ProcessRow,
    directory: str,
    env: dict[str, str],
    expected: str | None,
    receiver: Any = None,
) -> float:
    if receiver is not None:
        receiver.reset()
    t0 = time.perf_counter()
    proc = subprocess.run(
        row.argv,
        cwd=directory,
        env={**env, **row.env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        msg = (
            f"{row.title} on {row.workload.name} exited with {proc.returncode}: "
            f"{proc.stderr.strip()[-1500:]}"
        )
        raise RuntimeError(msg)
    if row.key.startswith(INSTALLS) and expected is not None and proc.stdout != expected:
        msg = (
            f"{row.title} changed the program's stdout on {row.workload.name}: "
            f"{proc.stdout!r} instead of {expected!r}"
        )
        raise RuntimeError(msg)
    row.stdout = proc.stdout
    if row.key == "otel-asyncio":  # the wrapper's last line: "otel spans: N"
        row.spans = int(proc.stderr.rsplit(":", 1)[1])
    if receiver is not None and row.key.endswith("-otlp"):
        row.spans = receiver.spans  # the run waits for its export at exit (bounded)
    return wall


def bench_workload(
    workload: Workload, rounds: int, bare: str | None, bare_why: str, receiver: Any
) -> list[ProcessRow]:
    """All modes of one workload as fresh processes, interleaved, ``rounds`` times after one
    untimed warm-up (which writes the bytecode caches and checks that every mode works)."""
    import asynctrace

    env = _environment()
    with tempfile.TemporaryDirectory(prefix="asynctrace-bench-process-") as directory:
        rows = make_rows(workload, directory, bare, bare_why, receiver.endpoint)
        live = [row for row in rows if row.skipped is None]
        untraced = rows[0]
        for row in live:
            expected = untraced.stdout if row is not untraced else None
            try:
                _run_once(row, directory, env, expected, receiver)
            except RuntimeError as exc:
                if row.key not in PEERS:  # asynctrace or the script itself: the bench fails
                    raise
                row.skipped = f"failed: {str(exc)[-200:]}"
        live = [row for row in live if row.skipped is None]
        for r in range(rounds):
            order = live[r % len(live) :] + live[: r % len(live)]
            samples = {
                row.key: _run_once(row, directory, env, untraced.stdout, receiver) for row in order
            }
            for row in live:
                row.wall.append(samples[row.key])
                row.ratio.append(samples[row.key] / samples["untraced"])
        for row in live:
            if row.json_path:
                row.spans = len(asynctrace.load(row.json_path).spans)
    return rows


def _mark(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def target(row: ProcessRow, rows: list[ProcessRow]) -> str:
    """Issue 12's targets, on the bare install's row: a limit, and below the peers' ratios."""
    if row.key != "bare-default" or row.skipped is not None:
        return ""
    limit = {"fanout": 2.0, "deep": 2.5}[row.workload.name]
    ratio = row.median_ratio()
    marks = [f"<= {limit:.1f}x: {_mark(ratio <= limit)}"]
    peers = {r.key: r for r in rows}
    wanted = [("viztracer", "VizTracer")]
    if row.workload.name == "fanout":
        wanted.append(("otel-asyncio", "OTel asyncio"))
    for key, name in wanted:
        peer = peers[key]
        if peer.skipped is None:
            theirs = peer.median_ratio()
            marks.append(f"below {name} ({theirs:.2f}x): {_mark(ratio < theirs)}")
        else:
            marks.append(f"below {name}: n/a")
    return "; ".join(marks)


def _ms(values: list[float]) -> str:
    med, low, high = statistics.median(values), min(values), max(values)
    return f"{med * 1e3:.0f} [{low * 1e3:.0f}-{high * 1e3:.0f}]"


def table(all_rows: list[list[ProcessRow]]) -> list[str]:
    """The whole-process table, in Markdown."""
    lines = [
        "| workload | mode | whole process wall ms, median [min-max] | vs untraced | spans "
        "| target |",
        "|---|---|---|---|---|---|",
    ]
    for rows in all_rows:
        for row in rows:
            w = f"{row.workload.name} {row.workload.label}"
            if row.skipped is not None:
                lines.append(f"| {w} | {row.title} | n/a ({row.skipped}) | | | |")
                continue
            spans = "-" if row.spans is None else f"{row.spans:,}"
            lines.append(
                f"| {w} | {row.title} | {_ms(row.wall)} | {row.median_ratio():.2f}x | {spans} "
                f"| {target(row, rows)} |"
            )
    return lines


def section(workloads: list[Workload], rounds: int) -> tuple[list[str], list[dict[str, Any]]]:
    """Run the whole-process bench: (the lines to print, the rows for ``--json``)."""
    from bench.receiver import Receiver

    bare, bare_why = bare_venv()
    receiver = Receiver()
    all_rows = []
    try:
        for workload in workloads:
            sys.stderr.write(
                f"bench: whole process, {workload.name} {workload.label}, {rounds} rounds ...\n"
            )
            all_rows.append(bench_workload(workload, rounds, bare, bare_why, receiver))
    finally:
        receiver.stop()
    lines = [
        f"## The whole process (fresh processes: start, import, run, build, export, exit; "
        f"{rounds} rounds)",
        "",
        *table(all_rows),
    ]
    if bare is not None:
        lines += ["", f"- bare install: {describe(bare)}"]
    data = [
        {
            "workload": row.workload.name,
            "label": row.workload.label,
            "mode": row.key,
            "argv": row.argv,
            "skipped": row.skipped,
            "wall": row.wall,
            "ratio": row.ratio,
            "stdout": row.stdout,
            "spans": row.spans,
        }
        for rows in all_rows
        for row in rows
    ]
    return lines, data
