"""Distributed traces (issue 13): two real services on loopback, their spans in a real Jaeger.

Service B (``distributed_programs/service_b.py``) is an aiohttp server instrumented by
OpenTelemetry; service A fetches three items from it with aiohttp or httpx, instrumented too.
Both run under ``asynctrace run --otlp`` (or A under OpenTelemetry alone), each a process of its
own, and send their spans to one Jaeger.  The tests read the traces back from Jaeger's query
API and check that they join up: B's server span is the child of A's client span, B's handler
(``item``, its gather, the tasks ``query`` and ``cache_read`` and their sleeps) is recorded
under B's server span, A's recorded spans hold A's client spans, and every parent is in the
trace that names it.

Every process stops by itself: B after the requests it was told to serve (or its own time
limit), A when its requests are answered, both under ``subprocess`` timeouts; every test has a
Jaeger of its own (it starts in a fraction of a second), so nothing is shared between tests.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import select
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import jaeger as jaeger_helper
from jaeger import Jaeger, JaegerSpan, spans_of

PROGRAMS = Path(__file__).resolve().parent / "distributed_programs"
SERVICE_B = PROGRAMS / "service_b.py"
PROCESS_TIMEOUT = 20  # seconds: any one process of a test (each takes about one)
JAEGER_WAIT = 15  # seconds: spans are in Jaeger well within one second of the exits
QUIET = 0.3  # seconds without a new span, once all expected are there: all are stored
SETTLE = 1.0  # seconds without a new span, when some are missing: none is on its way
REQUESTS = (1, 2, 3)  # the items service A fetches, side by side

# What the services need: the test extra of pyproject.toml.
_NEEDED = (
    "aiohttp",
    "httpx",
    "opentelemetry.instrumentation.aiohttp_client",
    "opentelemetry.instrumentation.aiohttp_server",
    "opentelemetry.instrumentation.httpx",
)
_MISSING = [name for name in _NEEDED if importlib.util.find_spec(name) is None]
if _MISSING:
    _msg = f"not installed: {', '.join(_MISSING)} (pip install -e '.[test]')"
    if os.environ.get("CI"):
        pytest.fail(_msg, pytrace=False)  # CI installs them: missing is a broken CI
    pytest.skip(_msg, allow_module_level=True)

# Loopback only, and never through a proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture
def jaeger(tmp_path: Path) -> Iterator[Jaeger]:
    """A real Jaeger v2 on loopback for this test alone (binary from .ci/install-jaeger.sh)."""
    workdir = tmp_path / "jaeger"
    workdir.mkdir()
    yield from jaeger_helper.running(workdir)


# --- running the services --------------------------------------------------------------------


def environment(**extra: str) -> dict[str, str]:
    """The test's environment without OTEL_* variables, loopback past any proxy, and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    no_proxy = ",".join(filter(None, ["127.0.0.1,localhost", env.get("NO_PROXY")]))
    env.update(NO_PROXY=no_proxy, no_proxy=no_proxy, PYTHONUNBUFFERED="1", **extra)
    return env


def asynctrace_run(jaeger: Jaeger, service: str, *options: str) -> list[str]:
    """``python -m asynctrace run`` sending to ``jaeger`` as ``service``; no files, no timeline."""
    return [
        sys.executable,
        "-m",
        "asynctrace",
        "run",
        "--no-json",
        "--no-timeline",
        f"--otlp={jaeger.otlp_grpc}",
        "--service-name",
        service,
        *options,
    ]


def read_line(process: subprocess.Popen[str], timeout: float) -> str:
    """The first line of the process's output, or "" if it ended or was silent ``timeout`` s."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    return process.stdout.readline() if ready else ""


@contextmanager
def service_b(jaeger: Jaeger, tmp_path: Path, requests: int) -> Iterator[str]:
    """Run service B under ``asynctrace run``; give its URL; at the end, wait for its clean exit.

    B exits by itself after ``requests`` requests: its spans are sent at that exit.
    """
    log = tmp_path / "service_b.stderr"
    command = [
        *asynctrace_run(jaeger, "service-b"),
        str(SERVICE_B),
        str(requests),
        str(PROCESS_TIMEOUT),  # B's own limit: it never outlives the test
    ]
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=tmp_path,
            env=environment(),
        )
    try:
        port = read_line(process, PROCESS_TIMEOUT).strip()
        assert port.isdigit(), f"service B printed no port: {port!r}; {log.read_text()}"
        yield f"http://127.0.0.1:{port}"
        try:
            status = process.wait(PROCESS_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"service B did not exit after {requests} requests: {log.read_text()}")
        assert status == 0, f"service B exited with {status}: {log.read_text()}"
        print(f"service B: {log.read_text().strip()}")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None
        process.stdout.close()


def run_service_a(command: list[str], url: str, tmp_path: Path, **env: str) -> None:
    """Run service A to its end against B at ``url``: it prints the three items it fetched."""
    done = subprocess.run(
        [*command, url],
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        cwd=tmp_path,
        env=environment(**env),
    )
    assert done.returncode == 0, f"service A exited with {done.returncode}: {done.stderr}"
    assert done.stdout.splitlines() == [f"item {n}" for n in REQUESTS], done.stderr
    print(f"service A: {done.stderr.strip()}")


# --- reading the traces ----------------------------------------------------------------------


def collect(
    jaeger: Jaeger, since_ns: int, roots: set[str], servers: int, clients: int
) -> list[JaegerSpan]:
    """Every span of service-a and service-b in Jaeger, once all that was sent is stored.

    The processes have exited, so all they sent has arrived; Jaeger stores it within its batch
    time (50 ms).  Done when the spans named ``roots`` are there as roots and no new span has
    come for ``QUIET`` seconds if ``servers`` server spans and ``clients`` client spans are
    there too, else for ``SETTLE`` seconds (the assertions then say what is missing).  Prints
    the traces as trees.  Fails, saying what was there, after ``JAEGER_WAIT`` seconds.
    """
    deadline = time.monotonic() + JAEGER_WAIT
    count, since_change = -1, time.monotonic()
    while True:
        traces = jaeger.find_traces("service-a", since_ns)
        traces += jaeger.find_traces("service-b", since_ns)
        spans = spans_of(traces)
        now = time.monotonic()
        if len(spans) != count:
            count, since_change = len(spans), now
        kinds = Counter(s.span_kind for s in spans)
        root_names = {s.name for s in spans if s.parent_id is None}
        complete = kinds["server"] >= servers and kinds["client"] >= clients
        if roots <= root_names and now - since_change >= (QUIET if complete else SETTLE):
            print(trees(spans))
            return spans
        if now > deadline:
            print(trees(spans))
            pytest.fail(
                f"after {JAEGER_WAIT} s Jaeger had {len(spans)} spans, roots {sorted(root_names)}"
                f" (waited for {sorted(roots)}), {kinds['server']} server and"
                f" {kinds['client']} client spans (waited for {servers} and {clients})"
            )
        time.sleep(0.05)


def label(span: JaegerSpan) -> str:
    kind = span.kind or span.span_kind
    return f"{span.name} [{span.service} {kind}] {span.start % 10**8}+{span.duration} us"


def trees(spans: list[JaegerSpan]) -> str:
    """The traces as indented trees, a span whose parent is not in its trace marked."""
    by_trace: dict[str, list[JaegerSpan]] = {}
    for span in sorted(spans, key=lambda s: s.start):
        by_trace.setdefault(span.trace_id, []).append(span)
    lines = []
    for trace_id, members in by_trace.items():
        lines.append(f"trace {trace_id}: {len(members)} spans")
        ids = {s.span_id for s in members}
        kids: dict[str | None, list[JaegerSpan]] = {}
        for span in members:
            kids.setdefault(span.parent_id if span.parent_id in ids else None, []).append(span)
        stack = [(root, 1) for root in reversed(kids.get(None, []))]
        while stack:
            span, depth = stack.pop()
            mark = ""
            if span.parent_id is not None and span.parent_id not in ids:
                mark = f"  (parent {span.parent_trace_id}/{span.parent_id} not here)"
            lines.append(f"{'  ' * depth}{label(span)}{mark}")
            stack.extend((kid, depth + 1) for kid in reversed(kids.get(span.span_id, [])))
    return "\n".join(lines)


def children(spans: list[JaegerSpan], parent: JaegerSpan) -> list[JaegerSpan]:
    return [s for s in spans if s.trace_id == parent.trace_id and s.parent_id == parent.span_id]


def one(spans: list[JaegerSpan], name: str, kind: str, what: str) -> JaegerSpan:
    """The one span named ``name`` of asynctrace kind (or span kind) ``kind``, among ``spans``."""
    found = [s for s in spans if s.name == name and kind in (s.kind, s.span_kind)]
    names = sorted(label(s) for s in spans)
    assert len(found) == 1, f"{what}: {len(found)} spans {name!r} ({kind}) among {names}"
    return found[0]


def ancestors(spans: list[JaegerSpan], span: JaegerSpan) -> list[JaegerSpan]:
    """The span's parent, its parent's parent... as far as they are in the span's trace."""
    by_id = {s.span_id: s for s in spans if s.trace_id == span.trace_id}
    chain = []
    while span.parent_id in by_id:
        span = by_id[span.parent_id]
        chain.append(span)
    return chain


def request_of(span: JaegerSpan) -> int | None:
    """Which item an HTTP span asked for: /item/N in its URL or target attribute."""
    for key in ("url.full", "http.url", "url.path", "http.target"):
        found = re.search(r"/item/(\d+)$", str(span.tags.get(key, "")))
        if found:
            return int(found.group(1))
    return None


def http_span(spans: list[JaegerSpan], kind: str, service: str, n: int) -> JaegerSpan:
    """The one ``kind`` (client or server) span of ``service`` for /item/n."""
    found = [s for s in spans if s.span_kind == kind and s.service == service]
    mine = [s for s in found if request_of(s) == n]
    assert len(mine) == 1, (
        f"{len(mine)} {kind} spans of {service} for /item/{n}, among its {kind} spans "
        f"{[(label(s), request_of(s)) for s in found]}"
    )
    return mine[0]


# --- what the traces must show ----------------------------------------------------------------


def check_handler(spans: list[JaegerSpan], item: JaegerSpan) -> None:
    """B's handler: ``item`` gathers the tasks ``query`` and ``cache_read``, sleeps overlapping."""
    assert item.service == "service-b"
    what = f"under {label(item)}"
    gather = one(children(spans, item), "gather(query, cache_read)", "gather", what)
    query = one(children(spans, gather), "query", "task", what)
    cache_read = one(children(spans, gather), "cache_read", "task", what)
    query_sleep = one(children(spans, query), "asyncio.sleep(0.05)", "await", what)
    cache_sleep = one(children(spans, cache_read), "asyncio.sleep(0.02)", "await", what)
    assert query_sleep.start < cache_sleep.end and cache_sleep.start < query_sleep.end, (
        f"the sleeps do not overlap: {label(query_sleep)}, {label(cache_sleep)}"
    )
    assert query_sleep.duration >= 45_000 and cache_sleep.duration >= 15_000


def check_handlers(spans: list[JaegerSpan], count: int) -> None:
    """B recorded ``count`` handlers, each whole (this holds with the traces joined or not)."""
    items = [s for s in spans if s.name == "item" and s.kind == "coroutine"]
    assert len(items) == count, f"B's handler 'item' recorded {len(items)} times"
    for item in items:
        check_handler(spans, item)


def check_fetches(spans: list[JaegerSpan]) -> None:
    """A (under asynctrace) recorded its three fetch tasks."""
    fetches = [s for s in spans if s.name == "fetch" and s.kind == "task"]
    assert len(fetches) == len(REQUESTS), [label(s) for s in fetches]
    assert {s.service for s in fetches} == {"service-a"}


# B's connections start in a callback (outside any task): with the default --trace-per auto,
# each connection's task (RequestHandler.start) is a trace of its own, holding its request
# tasks; the loop's own accept task stays in B's run trace.


def connection_roots(spans: list[JaegerSpan]) -> list[JaegerSpan]:
    """The roots of B's connections' traces."""
    return [s for s in spans if s.parent_id is None and s.name == "RequestHandler.start"]


def connections(spans: list[JaegerSpan]) -> int:
    """How many connections B had: each a trace of its own, holding no handler."""
    roots = connection_roots(spans)
    for root in roots:
        assert root.service == "service-b" and root.kind == "task"
        names = {s.name for s in spans if s.trace_id == root.trace_id}
        assert "RequestHandler._handle_request" in names, f"{label(root)} holds no request"
        assert "item" not in names, "a handler stayed in its connection's trace"
    return len(roots)


def check_parents(spans: list[JaegerSpan], roots: Counter[str]) -> None:
    """Every parent is a span of the same trace; the roots are exactly those named ``roots``,
    and B's connections (at least one)."""
    ids = {(s.trace_id, s.span_id) for s in spans}
    orphans = [
        f"{label(s)} in {s.trace_id}: parent {s.parent_trace_id}/{s.parent_id}"
        for s in spans
        if s.parent_id is not None
        and (s.parent_trace_id != s.trace_id or (s.trace_id, s.parent_id) not in ids)
    ]
    assert not orphans, f"{len(orphans)} spans whose parent is not in their trace: {orphans}"
    others = {id(s) for s in connection_roots(spans)}
    found = Counter(s.name for s in spans if s.parent_id is None and id(s) not in others)
    assert found == roots, f"roots: {dict(found)}, expected {dict(roots)}"
    assert connections(spans) >= 1


def check_request(spans: list[JaegerSpan], n: int) -> tuple[JaegerSpan, JaegerSpan]:
    """Request n: B's server span is the child of A's client span; B's handler is under it.

    Returns A's client span and B's server span.
    """
    client = http_span(spans, "client", "service-a", n)
    server = http_span(spans, "server", "service-b", n)
    assert (server.trace_id, server.parent_id) == (client.trace_id, client.span_id), (
        f"/item/{n}: B's server span is not the child of A's client span"
    )
    item = one(children(spans, server), "item", "coroutine", f"/item/{n}: under B's server span")
    check_handler(spans, item)
    return client, server


def check_fetch_holds(spans: list[JaegerSpan], client: JaegerSpan) -> JaegerSpan:
    """A's client span is recorded under one of A's fetch tasks: returns that task."""
    fetches = [s for s in ancestors(spans, client) if s.name == "fetch" and s.kind == "task"]
    assert len(fetches) == 1, f"{label(client)} is under {len(fetches)} fetch tasks"
    return fetches[0]


def run_root(spans: list[JaegerSpan], name: str) -> JaegerSpan:
    return one([s for s in spans if s.parent_id is None], name, "run", f"the run root {name}")


# --- the four shapes ---------------------------------------------------------------------------


def check_one_trace_per_run(spans: list[JaegerSpan], program: str) -> None:
    """A's run is one trace: its root, main, the gather, the three fetch tasks, each holding a
    client span with B's server span and handler under it.  B's run is a trace of its own."""
    check_handlers(spans, len(REQUESTS))
    check_fetches(spans)
    check_parents(spans, Counter({program: 1, "service_b.py": 1}))

    a_root, b_root = run_root(spans, program), run_root(spans, "service_b.py")
    assert a_root.trace_id != b_root.trace_id
    fetches = set()
    for n in REQUESTS:
        client, _ = check_request(spans, n)
        assert client.trace_id == a_root.trace_id, f"/item/{n} is not in A's run trace"
        fetch = check_fetch_holds(spans, client)
        fetches.add(fetch.span_id)
        gather = one(ancestors(spans, fetch), "gather(fetch × 3)", "gather", "above fetch")
        main = one(ancestors(spans, gather), "main", "task", "above the gather")
        assert main.parent_id == a_root.span_id
    assert len(fetches) == len(REQUESTS), "each request under a fetch task of its own"
    assert len({s.trace_id for s in spans}) == 2 + connections(spans)
    # B's run trace keeps B's own tasks (the server, its connections), not the handlers.
    b_names = {s.name for s in spans if s.trace_id == b_root.trace_id}
    assert "main" in b_names and "item" not in b_names


def check_one_trace_per_task(spans: list[JaegerSpan], program: str) -> None:
    """Each fetch task is the root of a trace holding its request, with B's handler; A's run
    trace keeps main and the gather; B's run is a trace of its own."""
    check_handlers(spans, len(REQUESTS))
    check_fetches(spans)
    # every task main starts is a root: the fetches, and the client library's own (aiohttp's
    # _wait_for_close on Python 3.14+)
    a_tasks = Counter(
        s.name
        for s in spans
        if s.parent_id is None and s.service == "service-a" and s.kind == "task"
    )
    assert a_tasks["fetch"] == len(REQUESTS)
    check_parents(spans, Counter({program: 1, "service_b.py": 1, **a_tasks}))

    a_root, b_root = run_root(spans, program), run_root(spans, "service_b.py")
    traces = set()
    for n in REQUESTS:
        client, _ = check_request(spans, n)
        fetch = check_fetch_holds(spans, client)
        assert fetch.parent_id is None, f"/item/{n}: its fetch task starts its own trace"
        assert client.trace_id not in (a_root.trace_id, b_root.trace_id)
        in_trace = [s for s in spans if s.trace_id == client.trace_id]
        kinds = Counter(s.span_kind for s in in_trace)
        assert (kinds["client"], kinds["server"]) == (1, 1), f"/item/{n}: one request a trace"
        traces.add(client.trace_id)
    assert len(traces) == len(REQUESTS)
    # A's tasks (the fetches and the others), A's and B's runs, and B's connections
    assert len({s.trace_id for s in spans}) == a_tasks.total() + 2 + connections(spans)
    in_run = [s for s in spans if s.trace_id == a_root.trace_id]
    main = one(in_run, "main", "task", "in A's run trace")
    gather = one(in_run, "gather(fetch × 3)", "gather", "in A's run trace")
    assert gather.parent_id == main.span_id
    assert not [s for s in in_run if s.name == "fetch"], "the fetch tasks left A's run trace"


def check_opentelemetry_alone(spans: list[JaegerSpan]) -> None:
    """A's own root span ``main`` holds its three client spans, B's server spans and handlers
    under them; B's run is a trace of its own."""
    check_handlers(spans, len(REQUESTS))
    assert not [s for s in spans if s.service == "service-a" and s.kind], "no asynctrace in A"
    check_parents(spans, Counter({"main": 1, "service_b.py": 1}))

    main = one([s for s in spans if s.parent_id is None], "main", "internal", "A's root")
    assert main.service == "service-a"
    for n in REQUESTS:
        client, _ = check_request(spans, n)
        assert (client.trace_id, client.parent_id) == (main.trace_id, main.span_id)
    # A's (with B's handlers), B's run, B's connections
    assert len({s.trace_id for s in spans}) == 2 + connections(spans)


SERVER_SPAN = "GET /item/{n}"  # the aiohttp server instrumentation's name: method and route


def check_trace_of_its_own(spans: list[JaegerSpan], n: int) -> None:
    """B's server span for /item/n is the root of a trace holding B's handler."""
    check_handlers(spans, 1)
    check_parents(spans, Counter({"service_b.py": 1, SERVER_SPAN: 1}))

    server = http_span(spans, "server", "service-b", n)
    assert server.parent_id is None and server.name == SERVER_SPAN
    assert server.trace_id != run_root(spans, "service_b.py").trace_id
    item = one(children(spans, server), "item", "coroutine", "under B's server span")
    check_handler(spans, item)
    assert len({s.trace_id for s in spans}) == 2 + connections(spans)


# --- the tests --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("program", "options"),
    [
        ("service_a_aiohttp.py", ["--trace-per", "run"]),
        ("service_a_httpx.py", []),  # the default is one trace per run
    ],
)
def test_one_trace_per_run_holds_all_three_requests(
    jaeger: Jaeger, tmp_path: Path, program: str, options: list[str]
) -> None:
    since = time.time_ns()
    with service_b(jaeger, tmp_path, len(REQUESTS)) as url:
        run_service_a(
            [*asynctrace_run(jaeger, "service-a", *options), str(PROGRAMS / program)],
            url,
            tmp_path,
        )
    spans = collect(jaeger, since, {program, "service_b.py"}, len(REQUESTS), len(REQUESTS))
    check_one_trace_per_run(spans, program)


def test_one_trace_per_task_gives_each_request_a_trace(jaeger: Jaeger, tmp_path: Path) -> None:
    program = "service_a_aiohttp.py"
    since = time.time_ns()
    with service_b(jaeger, tmp_path, len(REQUESTS)) as url:
        run_service_a(
            [*asynctrace_run(jaeger, "service-a", "--trace-per", "task"), str(PROGRAMS / program)],
            url,
            tmp_path,
        )
    spans = collect(jaeger, since, {program, "service_b.py"}, len(REQUESTS), len(REQUESTS))
    check_one_trace_per_task(spans, program)


def test_service_a_traced_by_opentelemetry_alone(jaeger: Jaeger, tmp_path: Path) -> None:
    """A has its own SDK provider (no asynctrace): B's handler joins A's trace all the same."""
    since = time.time_ns()
    with service_b(jaeger, tmp_path, len(REQUESTS)) as url:
        run_service_a(
            [sys.executable, str(PROGRAMS / "service_a_otel_only.py")],
            url,
            tmp_path,
            OTEL_EXPORTER_OTLP_ENDPOINT=jaeger.otlp_grpc,
        )
    spans = collect(jaeger, since, {"main", "service_b.py"}, len(REQUESTS), len(REQUESTS))
    check_opentelemetry_alone(spans)


def test_a_malformed_traceparent_starts_a_trace_of_its_own(jaeger: Jaeger, tmp_path: Path) -> None:
    since = time.time_ns()
    with service_b(jaeger, tmp_path, 1) as url:
        request = urllib.request.Request(
            f"{url}/item/7",
            headers={"traceparent": "00-zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-zzzzzzzzzzzzzzzz-01"},
        )
        with _OPENER.open(request, timeout=PROCESS_TIMEOUT) as response:
            assert response.status == 200
            assert json.load(response) == {"id": 7, "name": "item 7", "cached": False}
    spans = collect(jaeger, since, {"service_b.py"}, 1, 0)
    check_trace_of_its_own(spans, 7)


def test_the_docs_show_these_very_programs() -> None:
    page = (Path(__file__).resolve().parent.parent / "docs" / "distributed.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.DOTALL)
    for program in ("service_b.py", "service_a_aiohttp.py"):
        assert (PROGRAMS / program).read_text() in blocks, f"docs/distributed.md: {program}"
