"""Many traces in one run: spans adopted by the program's spans, tasks that start a trace, cuts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import otlp_receiver
import pytest

PROGRAMS = Path(__file__).resolve().parent / "otel_programs"
Span = dict[str, Any]


@pytest.fixture
def receiver() -> Iterator[Any]:
    yield from otlp_receiver.running("http/protobuf")


def run_requests(
    mode: str, max_trace_spans: int = 10_000
) -> tuple[list[Span], list[Span], list[dict[str, Any]]]:
    """tests/otel_programs/requests.py's exported spans, timeline spans, outbound headers."""
    out = subprocess.run(
        [sys.executable, str(PROGRAMS / "requests.py"), mode, str(max_trace_spans)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    data = json.loads(out)
    return data["otel"], data["timeline"], data["outbound"]


def run_otlp(script: Path, receiver: Any, *options: str) -> subprocess.CompletedProcess[str]:
    """``asynctrace run --otlp`` of ``script`` to the test's receiver."""
    return subprocess.run(
        [
            sys.executable, "-m", "asynctrace", "run", "--no-json", "--no-timeline",
            f"--otlp={receiver.endpoint}", "--otlp-protocol", receiver.protocol,
            *options, str(script),
        ],
        capture_output=True, text=True, timeout=60, cwd=script.parent,
    )  # fmt: skip


def one(spans: list[Span], name: str, **where: Any) -> Span:
    found = [s for s in spans if s["name"] == name and all(s[k] == v for k, v in where.items())]
    assert len(found) == 1, (name, where, found)
    return found[0]


def children(spans: list[Span], parent: Span) -> list[Span]:
    return [s for s in spans if s["parent"] == parent["context"]]


def caller(n: int) -> list[str]:
    """The remote caller of request n (its traceparent: trace n, span n)."""
    return [f"{n:032x}", f"{n:016x}"]


def check_parents(spans: list[Span]) -> None:
    """Every parent is an exported span of the same trace, or a request's remote caller."""
    contexts = {tuple(s["context"]) for s in spans} | {tuple(caller(n)) for n in (1, 2)}
    for span in spans:
        if span["parent"] is not None:
            assert tuple(span["parent"]) in contexts, span["name"]
            assert span["parent"][0] == span["context"][0], span["name"]


def test_spans_under_a_program_span_join_its_trace_under_it() -> None:
    spans, timeline, outbound = run_requests("run")
    check_parents(spans)
    run = one(spans, "requests.py", kind="run")
    for n in (1, 2):
        server = one(spans, f"server {n}")
        assert server["parent"] == caller(n)  # it continues the caller's trace
        assert server["attributes"]["request.n"] == n  # set on the current span in the handler
        (handler,) = [s for s in children(spans, server) if s["name"] == "handler"]
        assert handler["kind"] == "coroutine"
        names = {s["name"]: s for s in children(spans, handler)}
        assert names["blocked"]["kind"] == "blocked"
        assert names["sleep"]["kind"] == "thread"
        # an outbound call from the handler carries the handler's span, and passes the rest on
        (sent,) = [o for o in outbound if o["n"] == n]
        assert sent["traceparent"] == f"00-{handler['context'][0]}-{handler['context'][1]}-01"
        assert (sent["tracestate"], sent["baggage"]) == (f"vendor=v{n}", f"tenant=t{n}")
        db = names["db.client"]
        (sleep,) = children(spans, db)
        assert sleep["name"] == "asyncio.sleep(0.001)" and sleep["kind"] == "await"
        gather = names["gather(query, cache_read)"]
        tasks = {s["name"]: s for s in children(spans, gather) if s["kind"] == "task"}
        (slow,) = children(spans, tasks["query"])
        (fast,) = children(spans, tasks["cache_read"])
        assert (slow["name"], fast["name"]) == ("asyncio.sleep(0.05)", "asyncio.sleep(0.02)")
        assert slow["start"] < fast["end"] and fast["start"] < slow["end"]  # they overlap
        trace = server["context"][0]
        assert trace == caller(n)[0]
        assert {s["context"][0] for s in (handler, db, sleep, gather, slow, fast)} == {trace}
    # the request tasks, main and the gathers around them stay in the run's trace
    requests = [s for s in spans if s["name"] == "request" and s["kind"] == "task"]
    assert {s["context"][0] for s in requests} == {run["context"][0]}
    # the timelines keep the tree of tasks: the handler under its request task, ids as exported
    by_span = {s["context"][1]: s for s in spans}
    by_id = {s["id"]: s for s in timeline}
    for span in timeline:  # each says its trace and its id there, as Jaeger shows them
        exported = by_span[span["span"]]
        assert exported["context"][0] == span["trace"]
        assert exported["name"] == span["name"]
    handlers = [s for s in timeline if s["name"] == "handler"]
    assert len(handlers) == 2
    assert {by_id[h["parent"]]["name"] for h in handlers} == {"request"}


def test_trace_per_auto_gives_a_task_started_outside_any_task_its_own_trace() -> None:
    spans, _timeline, _outbound = run_requests("auto")
    check_parents(spans)
    run = one(spans, "requests.py", kind="run")
    main = one(spans, "main", kind="task")
    backgrounds = [s for s in spans if s["name"] == "background" and s["kind"] == "task"]
    own = [s for s in backgrounds if s["parent"] is None]
    assert len(backgrounds) == 4 and len(own) == 1  # the one a callback started
    (callback_task,) = own
    assert callback_task["context"][0] != run["context"][0]
    assert callback_task["links"] == [main["context"]]  # where it was started
    (sleep,) = children(spans, callback_task)
    assert sleep["context"][0] == callback_task["context"][0]
    for task in backgrounds:
        if task is not callback_task:
            assert task["context"][0] == run["context"][0]


def test_trace_per_task_gives_each_task_a_main_task_starts_its_own_trace() -> None:
    spans, _timeline, _outbound = run_requests("task")
    check_parents(spans)
    run = one(spans, "requests.py", kind="run")
    main = one(spans, "main", kind="task")
    assert main["context"][0] == run["context"][0]
    gather = one(spans, "gather(request × 2, background × 3)", kind="gather")
    started = [s for s in spans if s["kind"] == "task" and s["name"] in ("request", "background")]
    assert len(started) == 6
    traces = {s["context"][0] for s in started}
    assert len(traces) == 6 and run["context"][0] not in traces
    for task in started:
        assert task["parent"] is None
        assert task["links"] in ([gather["context"]], [main["context"]])
    # a request task's trace holds its await on the handler: the handler is in the server's
    request = started[0] if started[0]["name"] == "request" else started[1]
    assert all(s["context"][0] == request["context"][0] for s in children(spans, request))


def test_the_runs_trace_is_cut_into_linked_traces_of_at_most_max_trace_spans() -> None:
    spans, _timeline, _outbound = run_requests("run", max_trace_spans=20)
    check_parents(spans)
    ours = [s for s in spans if s["kind"] is not None]
    run = one(spans, "requests.py", kind="run")
    servers = {one(spans, f"server {n}")["context"][0] for n in (1, 2)}
    parts: dict[str, list[Span]] = {}
    for span in ours:
        if span["context"][0] not in servers:
            parts.setdefault(span["context"][0], []).append(span)
    assert len(parts) >= 2 and run["context"][0] in parts
    assert max(len(part) for part in parts.values()) <= 20
    contexts = {tuple(s["context"]): s for s in spans}
    starts = [s for s in ours if s["parent"] is None and s is not run]
    assert starts
    for span in starts:  # a part's first spans link to their parent in the part before
        (link,) = span["links"]
        assert tuple(link) in contexts and link[0] != span["context"][0]


def test_the_programs_own_spans_reach_the_endpoint_when_it_set_no_provider(
    tmp_path: Path, receiver: Any
) -> None:
    script = tmp_path / "app.py"
    script.write_text(
        "import asyncio\n"
        "from opentelemetry import trace\n"
        "tracer = trace.get_tracer('app')\n"
        "async def work():\n"
        "    with tracer.start_as_current_span('app.step') as span:\n"
        "        span.set_attribute('step', 1)\n"
        "        await asyncio.sleep(0.01)\n"
        "asyncio.run(work())\n"
        "print('done')\n"
    )
    proc = run_otlp(script, receiver, "--service-name", "app")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "done\n"
    # one line: the spans it counts are asynctrace's 3 and the program's one
    assert proc.stderr.startswith("asynctrace: OTLP: 4 spans sent to "), proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    spans = receiver.spans
    by_id = {s.span_id: s for s in spans}
    (step,) = [s for s in spans if s.name == "app.step"]
    assert step.resource.get("service.name") == "app"
    assert step.scope == "app"
    parent = by_id[step.parent_id]  # asynctrace's span running when it started: the task
    assert parent.scope == "asynctrace" and parent.name == "work"
    (sleep,) = [s for s in spans if s.parent_id == step.span_id]
    assert sleep.name == "asyncio.sleep(0.01)"
    assert len({s.trace_id for s in spans}) == 1


def test_a_provider_the_program_sets_is_kept(tmp_path: Path, receiver: Any) -> None:
    script = tmp_path / "app.py"
    script.write_text(
        "import asyncio\n"
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import"
        " InMemorySpanExporter\n"
        "exporter = InMemorySpanExporter()\n"
        "provider = TracerProvider()\n"
        "provider.add_span_processor(SimpleSpanProcessor(exporter))\n"
        "trace.set_tracer_provider(provider)\n"
        "async def work():\n"
        "    with trace.get_tracer('app').start_as_current_span('app.step'):\n"
        "        await asyncio.sleep(0.01)\n"
        "asyncio.run(work())\n"
        "print(trace.get_tracer_provider() is provider,"
        " [s.name for s in exporter.get_finished_spans()])\n"
    )
    proc = run_otlp(script, receiver)
    assert proc.returncode == 0, proc.stderr
    assert "Overriding" not in proc.stderr
    assert proc.stdout == "True ['app.step']\n"
    spans = receiver.spans
    assert "app.step" not in {s.name for s in spans}  # the program's provider has its spans


@pytest.mark.parametrize(
    ("option", "value"), [("--trace-per", "request"), ("--max-trace-spans", "1")]
)
def test_a_bad_trace_option_is_one_line_and_exit_2(tmp_path: Path, option: str, value: str) -> None:
    script = tmp_path / "app.py"
    script.write_text("print('ran')\n")
    proc = subprocess.run(
        [sys.executable, "-m", "asynctrace", "run", option, value, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert option in proc.stderr and value in proc.stderr


def test_bad_trace_options_in_python_are_value_errors() -> None:
    import asynctrace

    with pytest.raises(ValueError, match="trace_per='request' must be one of"):
        asynctrace.tracing(trace_per="request")
    with pytest.raises(ValueError, match="max_trace_spans=1 must be 0"):
        asynctrace.tracing(max_trace_spans=1)


def test_a_dead_endpoint_costs_the_programs_spans_one_line_and_nothing_else(
    tmp_path: Path,
) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    script = tmp_path / "app.py"
    script.write_text(
        "import asyncio, sys\n"
        "from opentelemetry import trace\n"
        "tracer = trace.get_tracer('app')\n"
        "async def work(n):\n"
        "    with tracer.start_as_current_span('app.step'):\n"
        "        await asyncio.sleep(0)\n"
        "    return n\n"
        "async def main():\n"
        "    return sum(await asyncio.gather(*(work(n) for n in range(600))))\n"
        "print(asyncio.run(main()))\n"
        "sys.exit(3)\n"
    )
    proc = subprocess.run(
        [
            sys.executable, "-m", "asynctrace", "run", "--no-json", "--no-timeline",
            f"--otlp=http://127.0.0.1:{port}", "--otlp-protocol", "http/protobuf",
            str(script),
        ],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**os.environ, "OTEL_EXPORTER_OTLP_TIMEOUT": "2"},
    )  # fmt: skip
    assert (proc.returncode, proc.stdout) == (3, "179700\n")
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"asynctrace: OTLP export to http://127.0.0.1:{port}/v1/traces failed")
    # asynctrace's spans (run, main, gather, 600 tasks, awaits) and the program's 600 steps
    not_sent, total = map(int, re.findall(r"(\d+) of (\d+) spans not sent", line)[0])
    assert not_sent == total >= 600 + 600 * 2
