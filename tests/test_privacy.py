"""Privacy: arguments and return values only on request, capped and redacted; OTLP secrets
(headers, URL user info) never in a log line or an output."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import gc
import inspect
import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
import traceback
import weakref
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

import asynctrace
from asynctrace._core import _autotrace
from asynctrace._core._redact import (
    DROPPED_KEY,
    MAX_ARGS,
    MAX_REPR,
    REDACTED,
    RETURN_KEY,
    SECRET_WORDS,
    looks_secret,
    safe_repr,
    scrub,
)
from asynctrace._model._spans import Span, Trace
from asynctrace._opentelemetry._otlp import new_span_id_base, new_trace_id
from asynctrace._opentelemetry._otlp_config import otlp_settings
from asynctrace._opentelemetry._otlp_send import OtlpExport

sys.path.insert(0, str(Path(__file__).parent))
import otlp_receiver

SECRET = "s3cr3t-TOKEN-7f3a9c"
BEARER = f"Bearer {SECRET}"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OTLP variable from the machine; proxies MUST NOT divert loopback traffic."""
    for key in list(os.environ):
        if key.startswith(("OTEL_", "GRPC_")) or key.lower().endswith("_proxy"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def traced_run(main: Any) -> Trace:
    """Run ``main()`` under tracing with the virtual clock; return the trace."""
    with asynctrace.tracing(virtual_time=True) as t:
        asyncio.run(main())
    return t.trace


def one(trace: Trace, name: str, kind: str = "coroutine") -> Span:
    (span,) = trace.spans_matching(name, kind=kind)
    return span


def args_of(span: Span) -> dict[str, object]:
    return {k: v for k, v in span.attributes.items() if k.startswith("asynctrace.arg")}


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asynctrace", "run", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


# --- 1. nothing is recorded unless asked ---------------------------------------------------

PROGRAM = """
import asyncio, functools, os
import asynctrace

SECRET = os.environ["APP_SECRET"]  # not in the source: only a recorded value can leak it


class Client:
    async def login(self, user, password, **options):
        await asyncio.sleep(0.01)
        return {"session": SECRET}


@asynctrace.trace
async def decorated(token):
    await asyncio.sleep(0.01)
    return token


async def worker(value, queue):
    await queue.put(value)
    return value


def blocking(value):
    return value


async def main():
    client = Client()
    await client.login("bob", SECRET, api_key=SECRET)
    await decorated(SECRET)
    queue = asyncio.Queue()
    task = asyncio.create_task(worker(SECRET, queue))
    got = await queue.get()
    results = await asyncio.gather(decorated(got), worker(SECRET, queue))
    await asyncio.to_thread(blocking, SECRET)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, functools.partial(blocking, SECRET))
    future = loop.create_future()
    loop.call_later(0.01, future.set_result, SECRET)
    await future
    await task
    assert results[0] == SECRET
    print("done")


asyncio.run(main())
"""


def _outputs(tmp_path: Path, *flags: str, env: dict[str, str]) -> tuple[str, str]:
    """Run PROGRAM with every output; return (stdout, stderr + every output file's text)."""
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    files = {"--json": "t.json", "--html": "t.html", "--otlp-json": "t.otlp.json"}
    paths = []
    for flag, name in files.items():
        paths += [flag, str(tmp_path / name)]
    proc = run_cli("--width", "160", *flags, *paths, str(program), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Client.login" in proc.stderr, "the terminal timeline was printed"
    texts = [proc.stderr]
    for name in files.values():
        texts.append((tmp_path / name).read_text(encoding="utf-8"))
    return proc.stdout, "\n".join(texts)


def test_arguments_and_return_values_are_in_no_output_by_default(tmp_path: Path) -> None:
    env = {**os.environ, "APP_SECRET": SECRET}
    stdout, everything = _outputs(tmp_path, env=env)
    assert stdout == "done\n"
    assert "Client.login" in everything and "decorated" in everything  # the spans are there
    assert SECRET not in everything
    assert SECRET[:12] not in everything  # not even cut short
    assert "asynctrace.arg." not in everything and RETURN_KEY not in everything


def test_api_records_no_argument_or_return_value_by_default() -> None:
    @asynctrace.trace
    async def check(password: str) -> str:
        await asyncio.sleep(1)
        return password

    async def main() -> None:
        await check(SECRET)
        await asyncio.create_task(check(SECRET))

    trace = traced_run(main)
    assert len(trace.spans_matching("check")) == 2
    assert all(SECRET not in repr(s.attributes) + s.name + str(s.error) for s in trace)


def test_exception_messages_are_kept_as_the_programs_own_text() -> None:
    """Decided: an exception's message is recorded (status ``error``) as the program wrote it;
    a program that puts a secret in a message shows it in its own tracebacks and logs too."""

    @asynctrace.trace
    async def fails(password: str) -> None:
        raise ValueError("wrong password for user bob")

    async def main() -> None:
        with pytest.raises(ValueError):
            await fails(SECRET)

    span = one(traced_run(main), "fails")
    assert span.error == "ValueError: wrong password for user bob"
    assert SECRET not in repr(span.attributes)


# --- 2. @trace(record_args=True) -------------------------------------------------------------


class Repo:
    @asynctrace.trace(record_args=True)
    async def get(self, key_id: int, user: str, *rest: int, limit: int = 10, **extra: Any) -> str:
        await asyncio.sleep(0.5)
        return f"row {key_id}"

    @classmethod
    @asynctrace.trace(record_args=True)
    async def make(cls, name: str) -> None:
        await asyncio.sleep(0)


def test_record_args_names_arguments_as_bound_and_skips_self_and_cls() -> None:
    async def main() -> None:
        assert await Repo().get(7, "bob", 1, 2, limit=3, colour="red") == "row 7"
        await Repo.make("r")

    trace = traced_run(main)
    get = one(trace, "Repo.get")
    # key_id looks secret ("key"): the redaction list prefers false alarms to leaks.
    assert args_of(get) == {
        "asynctrace.arg.key_id": REDACTED,
        "asynctrace.arg.user": "'bob'",
        "asynctrace.arg.rest": "(1, 2)",
        "asynctrace.arg.limit": "3",
        "asynctrace.arg.colour": "'red'",
    }
    assert get.attributes[RETURN_KEY] == "'row 7'"
    assert get.attributes["code.function.name"] == "Repo.get"  # the static attributes stay
    assert args_of(one(trace, "Repo.make")) == {"asynctrace.arg.name": "'r'"}


def test_record_args_fills_in_no_default_and_skips_a_none_return() -> None:
    @asynctrace.trace(record_args=True, attributes={"db": "main"})
    async def fetch(url: str, timeout: float = 5.0) -> None:
        await asyncio.sleep(0)

    async def main() -> None:
        await fetch("https://example.org/a")

    span = one(traced_run(main), "fetch")
    assert args_of(span) == {"asynctrace.arg.url": "'https://example.org/a'"}
    assert RETURN_KEY not in span.attributes
    assert span.attributes["db"] == "main"


def test_each_call_has_its_own_values_and_a_task_span_gets_them_too() -> None:
    @asynctrace.trace(record_args=True)
    async def job(n: int) -> int:
        await asyncio.sleep(n)
        return n * 10

    async def main() -> None:
        await asyncio.gather(job(1), job(2))
        await job(3)

    trace = traced_run(main)
    tasks = sorted(trace.spans_matching("job", kind="task"), key=lambda s: s.duration)
    assert [args_of(s) for s in tasks] == [{"asynctrace.arg.n": "1"}, {"asynctrace.arg.n": "2"}]
    assert [s.attributes[RETURN_KEY] for s in tasks] == ["10", "20"]
    coro = one(trace, "job")
    assert (args_of(coro), coro.attributes[RETURN_KEY]) == ({"asynctrace.arg.n": "3"}, "30")


def test_a_call_that_raises_has_its_arguments_and_no_return_value() -> None:
    @asynctrace.trace(record_args=True)
    async def fails(n: int) -> int:
        raise KeyError(n)

    async def main() -> None:
        with pytest.raises(KeyError):
            await fails(4)

    span = one(traced_run(main), "fails")
    assert (span.status, args_of(span)) == ("error", {"asynctrace.arg.n": "4"})
    assert RETURN_KEY not in span.attributes


def test_a_traceback_through_a_record_args_call_shows_no_asynctrace_frame() -> None:
    @asynctrace.trace(record_args=True)
    async def fails(n: int) -> None:
        raise KeyError(n)

    caught: list[BaseException] = []

    async def main() -> None:
        try:
            await fails(1)
        except KeyError as exc:
            caught.append(exc)

    traced_run(main)
    files = [frame.filename for frame in traceback.extract_tb(caught[0].__traceback__)]
    assert not [f for f in files if "asynctrace" in f and "test_privacy" not in f], files


@pytest.mark.parametrize("word", SECRET_WORDS)
def test_every_secret_word_redacts_a_parameter_in_any_case(word: str) -> None:
    name = f"my_{word.upper()}_value"
    namespace: dict[str, Any] = {}
    exec(f"async def f({name}, other):\n    return None", namespace)
    traced = asynctrace.trace(record_args=True)(namespace["f"])

    async def main() -> None:
        await traced(SECRET, other=SECRET)

    span = one(traced_run(main), "f")
    assert span.attributes[f"asynctrace.arg.{name}"] == REDACTED
    assert span.attributes["asynctrace.arg.other"] == repr(SECRET)  # only names decide


@dataclasses.dataclass
class Settings:
    user: str
    password: str


def test_secrets_inside_values_are_redacted() -> None:
    @asynctrace.trace(record_args=True)
    async def connect(
        settings: Settings, options: dict[str, Any], url: str, **kwargs: Any
    ) -> dict[str, str]:
        return {"refresh_token": SECRET, "user": "bob"}

    async def main() -> None:
        await connect(
            Settings("bob", SECRET),
            {"headers": {"Authorization": BEARER}, "Cookie": SECRET, "retries": 3},
            f"https://bob:{SECRET}@db.example.org/x",
            client_secret=SECRET,
        )

    attrs = one(traced_run(main), "connect").attributes
    assert SECRET not in repr(attrs)
    assert attrs["asynctrace.arg.settings"] == f"Settings(user='bob', password={REDACTED})"
    assert attrs["asynctrace.arg.options"] == (
        f"{{'headers': {{'Authorization': {REDACTED}}}, 'Cookie': {REDACTED}, 'retries': 3}}"
    )
    assert attrs["asynctrace.arg.url"] == f"'https://{REDACTED}@db.example.org/x'"
    assert attrs["asynctrace.arg.client_secret"] == REDACTED
    assert attrs[RETURN_KEY] == f"{{'refresh_token': {REDACTED}, 'user': 'bob'}}"


def test_the_return_value_of_a_secret_looking_function_is_redacted() -> None:
    @asynctrace.trace(record_args=True)
    async def get_token(user: str) -> str:
        return SECRET

    @asynctrace.trace(record_args=True, name="load_credentials")
    async def load() -> str:
        return SECRET

    async def main() -> None:
        assert await get_token("bob") == SECRET
        assert await load() == SECRET

    trace = traced_run(main)
    attrs = one(trace, "get_token").attributes
    assert (attrs["asynctrace.arg.user"], attrs[RETURN_KEY]) == ("'bob'", REDACTED)
    assert one(trace, "load_credentials").attributes[RETURN_KEY] == REDACTED


def test_values_are_capped_with_a_marker() -> None:
    @asynctrace.trace(record_args=True)
    async def store(text: str, blob: bytes, rows: list[int], nested: list[Any]) -> str:
        return text

    deep: list[Any] = []
    for _ in range(50):
        deep = [deep, deep]

    async def main() -> None:
        await store("x" * 1_000_000, b"\x00" * 10_000_000, list(range(100_000)), deep)

    attrs = one(traced_run(main), "store").attributes
    for key in ("arg.text", "arg.blob", "return"):
        value = str(attrs[f"asynctrace.{key}"])
        assert len(value) == MAX_REPR and value.endswith("…"), (key, value)
    assert str(attrs["asynctrace.arg.rows"]).startswith("[0, 1, 2, 3")
    assert str(attrs["asynctrace.arg.rows"]).endswith(", ...]")  # items cut, not the text
    assert len(str(attrs["asynctrace.arg.nested"])) <= MAX_REPR


def test_at_most_max_args_arguments_and_the_rest_counted() -> None:
    @asynctrace.trace(record_args=True)
    async def many(**fields: int) -> None:
        return None

    async def main() -> None:
        await many(**{f"f{i}": i for i in range(MAX_ARGS + 8)})

    attrs = one(traced_run(main), "many").attributes
    assert len(args_of(one(traced_run(main), "many"))) == MAX_ARGS + 1  # + the dropped count
    assert attrs[DROPPED_KEY] == 8 and attrs["asynctrace.arg.f0"] == "0"


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class Slow:
    calls = 0

    def __repr__(self) -> str:
        Slow.calls += 1
        time.sleep(0.02)  # just over SLOW_REPR
        return "Slow()"


class Control:
    def __repr__(self) -> str:
        return "line\nbreak\x1b[31m\udcff"


def test_a_repr_that_raises_is_slow_or_prints_control_characters_never_breaks_the_call() -> None:
    @asynctrace.trace(record_args=True)
    async def take(value: object) -> object:
        return value

    bad, control = Unprintable(), Control()

    async def main() -> None:
        assert await take(bad) is bad
        for _ in range(3):
            await take(Slow())
        assert await take(control) is control

    spans = traced_run(main).spans_matching("take")
    values = [s.attributes["asynctrace.arg.value"] for s in spans]
    assert values[0] == "<unrepresentable Unprintable>"
    assert spans[0].attributes[RETURN_KEY] == "<unrepresentable Unprintable>"
    assert values[1] == "Slow()"
    assert values[2:4] == ["<Slow: repr skipped, slow>"] * 2
    assert Slow.calls == 1, "a slow repr is asked once, then skipped for its type"
    assert values[4] == "line\\nbreak\\x1b[31m\\udcff"
    assert all(str(v).isprintable() for v in values)


def test_recorded_values_keep_no_reference_to_the_programs_objects() -> None:
    class Payload:
        pass

    @asynctrace.trace(record_args=True)
    async def use(payload: Payload) -> Payload:
        return payload

    refs: list[weakref.ref[Payload]] = []

    async def main() -> None:
        payload = Payload()
        refs.append(weakref.ref(payload))
        await use(payload)

    trace = traced_run(main)
    gc.collect()
    assert refs[0]() is None, "the trace kept the argument alive"
    assert str(one(trace, "use").attributes["asynctrace.arg.payload"]).startswith("<")


def test_record_args_function_is_unchanged_outside_tracing() -> None:
    @asynctrace.trace(record_args=True)
    async def add(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    assert inspect.iscoroutinefunction(add)
    if sys.version_info < (3, 14):  # deprecated from 3.14, where it is inspect's
        assert asyncio.iscoroutinefunction(add)
    assert asyncio.run(add(2, 3)) == 5


def test_looks_secret_and_scrub() -> None:
    assert looks_secret("X-API-KEY") and looks_secret("Passwd") and looks_secret("sessionid")
    assert not looks_secret("user") and not looks_secret(3)
    assert scrub("Cfg(a=1, token='abc', pwd=xyz)") == f"Cfg(a=1, token={REDACTED}, pwd={REDACTED})"
    assert scrub('{"secret": "a\\"b", "n": 1}') == f'{{"secret": {REDACTED}, "n": 1}}'
    assert scrub("ok: 1, key_count=3") == f"ok: 1, key_count={REDACTED}"  # a false alarm
    assert scrub("postgres://u:p@h/db") == f"postgres://{REDACTED}@h/db"
    assert safe_repr("plain") == "'plain'"
    cut = safe_repr({"api_token": "a" * 1000, "b": "x" * 1000})
    assert cut.startswith(f"{{'api_token': {REDACTED}, 'b': 'xxx") and cut.endswith("…")


# --- 3. asynctrace run --record-args ---------------------------------------------------------

AUTO_MODULE = """
import asyncio

async def login(user, password):
    await asyncio.sleep(0)
    return "welcome " + user
"""


def _import_traced(tmp_path: Path, module: str, **options: bool) -> Any:
    (tmp_path / f"{module}.py").write_text(AUTO_MODULE)
    finder = _autotrace.install_finder([str(tmp_path)], **options)
    try:
        return __import__(module)
    finally:
        _autotrace.remove_finder(finder)
        sys.modules.pop(module, None)


def test_autotrace_hook_records_arguments_when_installed_with_record_args(
    tmp_path: Path,
) -> None:
    module = _import_traced(tmp_path, "h3_auto_recording", record_args=True)
    assert _autotrace._record_args is False, "remove_finder resets the option"

    async def main() -> None:
        assert await module.login("bob", SECRET) == "welcome bob"

    span = one(traced_run(main), "login")
    assert args_of(span) == {"asynctrace.arg.user": "'bob'", "asynctrace.arg.password": REDACTED}
    assert span.attributes[RETURN_KEY] == "'welcome bob'"


def test_autotrace_hook_records_nothing_by_default(tmp_path: Path) -> None:
    module = _import_traced(tmp_path, "h3_auto_plain")

    async def main() -> None:
        await module.login("bob", SECRET)

    span = one(traced_run(main), "login")
    assert args_of(span) == {} and RETURN_KEY not in span.attributes


def test_cli_record_args_records_and_redacts_in_every_output(tmp_path: Path) -> None:
    """Fails until `--record-args` is wired in `_cli.py` (the lead's file)."""
    env = {**os.environ, "APP_SECRET": SECRET}
    _, everything = _outputs(tmp_path, "--record-args", env=env)
    data = json.loads((tmp_path / "t.json").read_text())
    events = data["traceEvents"] if isinstance(data, dict) else data
    login = [
        e for e in events if str(e.get("name")).startswith("Client.login") and e.get("ph") == "X"
    ]
    assert login, "a Client.login slice"
    assert login[0]["args"]["asynctrace.arg.user"] == "'bob'"
    assert login[0]["args"]["asynctrace.arg.password"] == REDACTED
    assert login[0]["args"]["asynctrace.arg.api_key"] == REDACTED
    assert login[0]["args"][RETURN_KEY] == f"{{'session': {REDACTED}}}"
    # worker(value, queue) and blocking(value): `value` is not a secret-looking name, so the
    # value shows, quoted; every other appearance is redacted.
    assert "asynctrace.arg.value" in everything
    assert everything.replace(repr(SECRET), "").count(SECRET) == 0


# --- 4. OTLP headers and URL user info ---------------------------------------------------------


class EchoingHttpReceiver:
    """A hostile OTLP/HTTP receiver: answers ``code`` and echoes the Authorization header in
    its reason phrase and body, so a leak through the exporter's error shows."""

    def __init__(self, code: int = 401) -> None:
        self.seen: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                auth = self.headers.get("Authorization", "")
                receiver.seen.append(auth)
                body = f"denied: {auth}".encode()
                self.send_response(code, f"Unauthorized {auth}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server, self._thread = otlp_receiver.serve_http(Handler)
        self.port = self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def stop(self) -> None:
        otlp_receiver.stop_http(self._server, self._thread)


class EchoingGrpcReceiver:
    """A hostile OTLP/gRPC receiver: UNAUTHENTICATED with the authorization metadata echoed."""

    def __init__(self) -> None:
        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

        receiver = self
        self.seen: list[str] = []

        class Service(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                auth = dict(context.invocation_metadata()).get("authorization", "")
                receiver.seen.append(auth)
                context.abort(grpc.StatusCode.UNAUTHENTICATED, f"bad credentials {auth}")

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.stop(grace=None).wait(5)


def dead_endpoint() -> str:
    """A loopback port that was bound, then closed: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def small_trace() -> Trace:
    return Trace(
        [
            Span(1, None, "run", "prog.py", 0.0, 1.0, 1),
            Span(2, 1, "task", "main", 0.0, 1.0, 2, attributes={"asynctrace.task.name": "T"}),
        ]
    )


def export_once(settings: Any) -> tuple[Any, str]:
    """Export a small trace; return (report, what was written on the warning stream)."""
    err = io.StringIO()
    report = OtlpExport(settings, stream=err).export(
        small_trace(), trace_id=new_trace_id(), span_id_base=new_span_id_base()
    )
    return report, err.getvalue()


@pytest.fixture
def echoing(request: pytest.FixtureRequest) -> Iterator[Any]:
    r: Any = EchoingHttpReceiver() if request.param == "http/protobuf" else EchoingGrpcReceiver()
    try:
        yield r
    finally:
        r.stop()


@pytest.mark.parametrize("echoing", ["http/protobuf", "grpc"], indirect=True)
@pytest.mark.parametrize(
    "variable", ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"]
)
def test_a_refusing_receiver_that_echoes_the_header_leaks_nothing(
    echoing: Any,
    variable: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(variable, f"authorization={BEARER.replace(' ', '%20')}")
    protocol = "grpc" if isinstance(echoing, EchoingGrpcReceiver) else "http/protobuf"
    settings = otlp_settings(echoing.endpoint, protocol, timeout=2.0)
    report, err = export_once(settings)
    assert echoing.seen and echoing.seen[0] == BEARER, "the header was sent"
    assert report.sent == 0 and err.count("\n") == 1
    assert ("401" in err) if protocol == "http/protobuf" else ("UNAUTHENTICATED" in err)
    assert "***" in err, "the receiver's echo is in the reason, scrubbed"
    leaked = err + caplog.text + "".join(capfd.readouterr())
    assert SECRET not in leaked and SECRET[:8] not in leaked
    assert SECRET not in repr(settings)


@pytest.mark.parametrize(("protocol", "mode"), [("http/protobuf", "500"), ("grpc", "unavailable")])
def test_failing_receiver_and_dead_port_leak_no_header(
    protocol: str, mode: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization={BEARER}")
    r = otlp_receiver.receiver(protocol, mode)
    try:
        report, err = export_once(otlp_settings(r.endpoint, protocol, timeout=2.0))
    finally:
        r.stop()
    dead_report, dead_err = export_once(otlp_settings(dead_endpoint(), protocol, timeout=1.0))
    assert report.sent == dead_report.sent == 0
    assert err.startswith("asynctrace: OTLP export to") and "connection refused" in dead_err
    assert SECRET not in err + dead_err + caplog.text


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_url_user_info_becomes_basic_auth_and_never_shows(
    protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    r = otlp_receiver.receiver(protocol, "ok")
    try:
        settings = otlp_settings(r.endpoint.replace("://", f"://alice:{SECRET}@"), protocol)
        report, err = export_once(settings)
    finally:
        r.stop()
    assert "@" not in settings.endpoint and SECRET not in repr(settings)
    assert report.sent == 2 and err == ""  # gRPC could not even resolve user:pass@host before
    basic = base64.b64encode(f"alice:{SECRET}".encode()).decode()
    assert r.headers[0]["authorization"] == f"Basic {basic}"
    # A dead endpoint given with user info: the warning shows neither the password nor its
    # Basic encoding.
    dead = dead_endpoint().replace("://", f"://alice:{SECRET}@")
    report, err = export_once(otlp_settings(dead, protocol, timeout=1.0))
    assert report.sent == 0 and "connection refused" in err
    assert SECRET not in err + caplog.text and basic not in err + caplog.text


def test_an_explicit_authorization_header_wins_over_url_user_info() -> None:
    settings = otlp_settings(
        f"http://alice:{SECRET}@127.0.0.1:4318", "http/protobuf", headers={"Authorization": BEARER}
    )
    assert dict(settings.headers)["authorization"] == BEARER
    assert settings.endpoint == "http://127.0.0.1:4318/v1/traces"


def test_scrub_hides_every_form_of_a_header_secret() -> None:
    basic = base64.b64encode(f"alice:{SECRET}".encode()).decode()
    settings = otlp_settings(
        "http://127.0.0.1:4318",
        "http/protobuf",
        headers={"authorization": f"Basic {basic}", "x-api-key": BEARER},
    )
    text = (
        f"failed: {SECRET} / Basic {basic} / alice:{SECRET} / {BEARER} /"
        f" {BEARER.replace(' ', '%20')} / http://bob:pw@h"
    )
    scrubbed = settings.scrub(text)
    assert SECRET not in scrubbed and basic not in scrubbed and "bob:pw" not in scrubbed
    assert scrubbed.startswith("failed: *** / ")


def test_cli_outputs_and_stderr_never_show_otlp_headers(tmp_path: Path) -> None:
    """`asynctrace run` against a receiver that answers 401 with the header echoed."""
    r = EchoingHttpReceiver()
    env = {
        **os.environ,
        "APP_SECRET": "not-the-header",
        "OTEL_EXPORTER_OTLP_HEADERS": f"authorization={BEARER.replace(' ', '%20')}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    outputs = ["--json", "t.json", "--otlp-json", "t.otlp.json", "--html", "t.html"]
    try:
        proc = run_cli(
            f"--otlp=http://alice:{SECRET}x@127.0.0.1:{r.port}",
            *[o if o.startswith("--") else str(tmp_path / o) for o in outputs],
            str(program),
            env=env,
        )
    finally:
        r.stop()
    assert proc.returncode == 0, proc.stderr
    assert r.seen == [BEARER], "the explicit header was sent, not the URL's user info"
    assert "401" in proc.stderr and "spans not sent" in proc.stderr
    texts = [proc.stdout, proc.stderr]
    texts += [(tmp_path / n).read_text() for n in ("t.json", "t.otlp.json", "t.html")]
    assert [SECRET in t for t in texts] == [False] * 5
