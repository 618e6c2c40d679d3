"""Living inside OpenTelemetry: the program's provider, current spans, child processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

PROGRAMS = Path(__file__).resolve().parent / "otel_programs"


def otlp_spans(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text())
    return [span for rs in data["resourceSpans"] for ss in rs["scopeSpans"] for span in ss["spans"]]


def test_user_spans_are_children_of_traced_coroutines_in_one_trace() -> None:
    out = subprocess.run(
        [sys.executable, str(PROGRAMS / "user_spans.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    spans = json.loads(out)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)
    outer = by_name["outer"][0]
    assert {s["trace"] for s in spans} == {outer["trace"]}, "one trace for everything"
    (run,) = by_name["user_spans.py"]
    assert run["kind"] == "run" and run["parent"] == outer["id"]
    handlers = [s for s in by_name["handler"] if s["kind"] == "task"]
    assert len(handlers) == 2
    queries = by_name["db.query"]
    assert sorted(q["parent"] for q in queries) == sorted(h["id"] for h in handlers)


def test_a_child_process_under_asynctrace_joins_the_parents_trace(tmp_path: Path) -> None:
    parent_json, child_json = tmp_path / "parent.json", tmp_path / "child.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "asynctrace",
            "run",
            "--no-json",
            "--no-timeline",
            "--otlp-json",
            str(parent_json),
            str(PROGRAMS / "parent.py"),
            str(PROGRAMS / "child.py"),
            str(child_json),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "child exit 0\n"
    parent_spans, child_spans = otlp_spans(parent_json), otlp_spans(child_json)
    assert {s["traceId"] for s in child_spans} == {s["traceId"] for s in parent_spans}
    (spawn,) = [s for s in parent_spans if s["name"] == "spawn"]
    (child_run,) = [s for s in child_spans if s["name"] == "child.py"]
    assert child_run["parentSpanId"] == spawn["spanId"]
