"""Faults inside asynctrace never reach the program (issue 7, point 4).

Problem: an exporter that raises, a full disk, a path that cannot be written, a closed stderr,
a 1,000-level coroutine chain, a coroutine without a name or an awaited object whose
``__repr__`` raises: each could break the traced program, lose the other outputs, or flood
stderr.

Solution: provoke each fault under ``with asynctrace.tracing()`` and under ``asynctrace run``
(a subprocess, compared with plain ``python``), and check that the program's stdout, return
value and exit status are unchanged, that the fault is one ``asynctrace:`` line on stderr, and
that the other outputs are still written.
"""

from __future__ import annotations

import asyncio
import collections.abc
import functools
import inspect
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

import asynctrace
from asynctrace import Trace
from asynctrace._export._chrome import write_chrome_json
from asynctrace._export._chrome_read import read_chrome_json
from asynctrace._export._html import write_html
from asynctrace._export._terminal import render_timeline

TIMEOUT = 120


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("PYTHONWARNINGS", "PYTHONASYNCIODEBUG", "PYTHONDEVMODE", "PYTHONSTARTUP"):
        env.pop(key, None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra)
    return env


def _python(
    args: list[str], cwd: Path, *, close_stderr: bool = False, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=not close_stderr,
        stdout=subprocess.PIPE if close_stderr else None,
        cwd=cwd,
        env=env or _env(),
        timeout=TIMEOUT,
        check=False,
        # As `2>&-` in a shell: the program starts with no fd 2 and sys.stderr is None.
        preexec_fn=(lambda: os.close(2)) if close_stderr else None,
    )


def _traced(
    script: Path, *options: str, close_stderr: bool = False, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return _python(
        ["-m", "asynctrace", "run", *options, script.name],
        script.parent,
        close_stderr=close_stderr,
        env=env,
    )


def _plain(script: Path, *, close_stderr: bool = False) -> subprocess.CompletedProcess[bytes]:
    return _python([script.name], script.parent, close_stderr=close_stderr)


def _ours(stderr: bytes) -> list[str]:
    return [
        ln for ln in stderr.decode(errors="replace").splitlines() if ln.startswith("asynctrace:")
    ]


SIMPLE = """
import asyncio

async def main():
    await asyncio.gather(asyncio.sleep(0.001), asyncio.sleep(0.002))
    print("done")
    return 3

print(asyncio.run(main()))
"""


@pytest.fixture
def simple(tmp_path: Path) -> Path:
    script = tmp_path / "simple.py"
    script.write_text(SIMPLE)
    return script


async def _gathered() -> int:
    await asyncio.gather(asyncio.sleep(0), asyncio.sleep(0))
    return 3


# -- exporters that raise ---------------------------------------------------------------------


def test_an_output_that_raises_is_reported_once_and_the_others_still_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[Trace] = []

    def broken_exporter(trace: Trace) -> None:
        raise ValueError("exporter is down")

    json_path = tmp_path / "t.json"
    with asynctrace.tracing(json=str(json_path), outputs=(broken_exporter, seen.append)):
        result = asyncio.run(_gathered())
    assert result == 3
    lines = _ours(capsys.readouterr().err.encode())
    assert len(lines) == 1
    assert "broken_exporter" in lines[0] and "exporter is down" in lines[0]
    assert len(seen) == 1 and read_chrome_json(json_path).spans_matching("_gathered")


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ raises")


class _NamelessExporter:
    """A callable exporter with no ``__name__`` and a ``__repr__`` that raises."""

    def __call__(self, trace: Trace) -> None:
        raise _Unprintable

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ raises")


def test_an_output_whose_error_and_repr_cannot_be_printed_is_still_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[Trace] = []
    with asynctrace.tracing(outputs=(_NamelessExporter(), seen.append)):
        result = asyncio.run(_gathered())
    assert result == 3
    assert len(seen) == 1
    lines = _ours(capsys.readouterr().err.encode())
    assert len(lines) == 1 and "_NamelessExporter" in lines[0]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_dead_otlp_endpoint_is_one_line_and_the_json_is_still_written(
    simple: Path, protocol: str
) -> None:
    pytest.importorskip("opentelemetry.sdk")
    json_path = simple.parent / "t.json"
    plain = _plain(simple)
    traced = _traced(
        simple,
        "--no-timeline",
        "--json",
        str(json_path),
        f"--otlp=http://127.0.0.1:{_closed_port()}",
        "--otlp-protocol",
        protocol,
        env=_env(OTEL_EXPORTER_OTLP_TIMEOUT="5"),
    )
    assert (
        (traced.returncode, traced.stdout) == (plain.returncode, plain.stdout) == (0, b"done\n3\n")
    )
    otlp = [ln for ln in _ours(traced.stderr) if "OTLP" in ln]
    assert len(otlp) == 1 and "failed" in otlp[0], traced.stderr
    assert read_chrome_json(json_path).spans_matching("main", kind="task")


# -- full disk, unwritable paths ---------------------------------------------------------------

needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")


@needs_dev_full
@pytest.mark.parametrize("full", ["json", "html"])
def test_a_full_disk_for_one_output_is_one_line_and_the_other_is_still_written(
    simple: Path, full: str
) -> None:
    paths = {"json": str(simple.parent / "t.json"), "html": str(simple.parent / "t.html")}
    other = "html" if full == "json" else "json"
    paths[full] = "/dev/full"
    plain = _plain(simple)
    traced = _traced(simple, "--no-timeline", "--json", paths["json"], "--html", paths["html"])
    assert (traced.returncode, traced.stdout) == (plain.returncode, plain.stdout)
    about_full = [ln for ln in _ours(traced.stderr) if "/dev/full" in ln]
    # One line, saying it failed; no line claiming the timeline is there to open.
    assert len(about_full) == 1, about_full
    assert "No space left on device" in about_full[0]
    assert Path(paths[other]).stat().st_size > 1000


@needs_dev_full
def test_tracing_json_on_a_full_disk_is_one_line_and_the_outputs_still_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    seen: list[Trace] = []
    with asynctrace.tracing(json="/dev/full", outputs=(seen.append,)):
        result = asyncio.run(_gathered())
    assert result == 3 and len(seen) == 1
    lines = _ours(capsys.readouterr().err.encode())
    assert len(lines) == 1 and "/dev/full" in lines[0] and "No space left" in lines[0]


def test_tracing_json_under_a_regular_file_is_one_line_and_the_outputs_still_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "somefile").write_text("not a directory")
    path = tmp_path / "somefile" / "trace.json"  # ENOTDIR, even for root
    seen: list[Trace] = []
    with asynctrace.tracing(json=str(path), outputs=(seen.append,)):
        result = asyncio.run(_gathered())
    assert result == 3 and len(seen) == 1
    lines = _ours(capsys.readouterr().err.encode())
    assert len(lines) == 1 and str(path) in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["somefile"]  # nothing left aside


def test_run_refuses_a_json_path_under_a_regular_file_before_the_program_starts(
    simple: Path,
) -> None:
    (simple.parent / "somefile").write_text("")
    traced = _traced(simple, "--json", "somefile/trace.json")
    # A mistake in asynctrace's own arguments: exit status 2 and one line, before any of the
    # program has run (so no run of the program is spent for nothing).
    assert traced.returncode == 2 and traced.stdout == b""
    lines = _ours(traced.stderr)
    assert len(lines) == 1 and "somefile/trace.json" in lines[0]


# -- closed stderr -----------------------------------------------------------------------------

STDERR_PROGRAMS = {
    "prints": SIMPLE,
    "fails": "import asyncio\nasync def main():\n    print('x')\n    raise ValueError(1)\n"
    "asyncio.run(main())\n",
    "exits": "import asyncio, sys\nasync def main():\n    print('x')\n    sys.exit(3)\n"
    "asyncio.run(main())\n",
    "closes_stderr": "import asyncio, sys\nasync def main():\n    await asyncio.sleep(0)\n"
    "    if sys.stderr: sys.stderr.close()\n    print('x')\nasyncio.run(main())\n",
    "drops_stderr": "import asyncio, sys\nasync def main():\n    await asyncio.sleep(0)\n"
    "    sys.stderr = None\n    print('x')\n    raise SystemExit(4)\nasyncio.run(main())\n",
}


@pytest.mark.parametrize("name", sorted(STDERR_PROGRAMS))
@pytest.mark.parametrize("closed", [True, False], ids=["fd2-closed", "fd2-open"])
def test_a_closed_or_missing_stderr_changes_nothing(
    tmp_path: Path, name: str, closed: bool
) -> None:
    script = tmp_path / f"{name}.py"
    script.write_text(STDERR_PROGRAMS[name])
    json_path = tmp_path / "t.json"
    plain = _plain(script, close_stderr=closed)
    traced = _traced(script, "--json", str(json_path), close_stderr=closed)
    assert (traced.returncode, traced.stdout) == (plain.returncode, plain.stdout)
    assert read_chrome_json(json_path).spans_matching(kind="task")


@pytest.mark.parametrize("stderr", ["none", "closed"])
def test_a_failing_output_with_no_stderr_to_report_on_does_not_raise(stderr: str) -> None:
    def broken(trace: Trace) -> None:
        raise ValueError("down")

    saved = sys.stderr
    replacement = None
    if stderr == "closed":
        replacement = open(os.devnull, "w")  # noqa: SIM115 - closed on purpose below
        replacement.close()
    try:
        sys.stderr = replacement  # type: ignore[assignment]
        with asynctrace.tracing(outputs=(broken,)) as tracing:
            result = asyncio.run(_gathered())
    finally:
        sys.stderr = saved
    assert result == 3 and tracing.trace.spans_matching("_gathered")


# -- 1,000-level chains -------------------------------------------------------------------------

DEEP_CHAIN = """
import asyncio, sys
sys.setrecursionlimit(2600)  # depth 1000 needs ~1010 frames untraced, ~2010 traced

async def f(n):
    return await f(n - 1) + 1 if n else 0

async def main():
    print(await f(1000))

asyncio.run(main())
"""

DEEP_TASKS = """
import asyncio

async def g(n):
    if n:
        return await asyncio.create_task(g(n - 1)) + 1
    await asyncio.sleep(0)
    return 0

async def main():
    print(await g(1000))

asyncio.run(main())
"""


@pytest.mark.parametrize("program", ["chain", "tasks"])
def test_a_1000_level_program_gives_every_output(tmp_path: Path, program: str) -> None:
    script = tmp_path / "deep.py"
    script.write_text(DEEP_CHAIN if program == "chain" else DEEP_TASKS)
    plain = _plain(script)
    out = {k: tmp_path / f"t.{k}" for k in ("json", "html", "otlp")}
    options = ["--json", str(out["json"]), "--html", str(out["html"]), "--width", "100"]
    try:
        import opentelemetry.sdk  # noqa: F401
    except ImportError:
        del out["otlp"]
    else:
        options += ["--otlp-json", str(out["otlp"])]
    traced = _traced(script, *options)
    assert (traced.returncode, traced.stdout) == (plain.returncode, plain.stdout) == (0, b"1000\n")
    stderr = traced.stderr.decode()
    assert "RecursionError" not in stderr and "could not" not in stderr and "failed" not in stderr
    assert all(p.stat().st_size > 1000 for p in out.values())
    trace = read_chrome_json(out["json"])
    kind = "coroutine" if program == "chain" else "task"
    named = trace.spans_matching("f" if program == "chain" else "g", kind=kind)
    assert len(named) >= 1000
    depth, span = 0, max(named, key=lambda s: s.start_seq)
    while span.parent is not None:
        depth, span = depth + 1, span.parent
    assert depth >= 1000


@asynctrace.trace
async def _chain(n: int) -> int:
    return await _chain(n - 1) if n else 0


@pytest.fixture
def recursion_limit() -> Iterator[Callable[[int], None]]:
    saved = sys.getrecursionlimit()
    yield sys.setrecursionlimit
    sys.setrecursionlimit(saved)


def test_exporters_of_a_trace_deeper_than_the_recursion_limit(
    tmp_path: Path, recursion_limit: Callable[[int], None]
) -> None:
    recursion_limit(5000)
    with asynctrace.tracing() as tracing:
        assert asyncio.run(_chain(1000)) == 0
    trace = tracing.trace
    assert len(trace.spans_matching("_chain", kind="coroutine")) == 1000
    # Far fewer frames than the trace is deep: an exporter that recursed over the tree fails.
    recursion_limit(len(inspect.stack()) + 200)
    write_chrome_json(trace, tmp_path / "t.json")
    # 1,001 calls: the first is the task's own coroutine, so it names the task.
    assert len(read_chrome_json(tmp_path / "t.json").spans_matching("_chain")) == 1001
    write_html(trace, tmp_path / "t.html", title="deep")
    assert "_chain" in render_timeline(trace, width=100, color=False)
    try:
        from asynctrace._opentelemetry._otlp import write_otlp_json
        from asynctrace._opentelemetry._otlp_config import otlp_resource
    except ImportError:
        return
    written = write_otlp_json(
        trace,
        tmp_path / "t.otlp.json",
        resource=otlp_resource(None, default_service="deep"),
        trace_id=1,
        span_id_base=1,
    )
    assert written == len(trace)


def _max_depth(fn: Callable[[int], Any]) -> int:
    """The deepest chain ``asyncio.run(fn(n))`` reaches before a RecursionError."""
    low, high = 1, 4000
    while low < high:
        mid = (low + high + 1) // 2
        try:
            asyncio.run(fn(mid))
        except RecursionError:
            high = mid - 1
        else:
            low = mid
    return low


async def _untraced_chain(n: int) -> int:
    return await _untraced_chain(n - 1) if n else 0


def test_tracing_at_most_halves_the_reachable_depth(recursion_limit: Callable[[int], None]) -> None:
    recursion_limit(len(inspect.stack()) + 1000)
    untraced = _max_depth(_untraced_chain)
    with asynctrace.tracing(record_awaits=False):
        traced = _max_depth(_chain)
    # A traced call is two frames (the wrapper and the function): half the depth, no less.
    assert untraced > 900
    assert traced >= untraced // 2 - 5, (untraced, traced)


# -- nameless coroutines, unprintable awaitables -----------------------------------------------


class _HostileCoroutine(collections.abc.Coroutine):  # type: ignore[type-arg]
    """A coroutine whose ``__qualname__``, ``__name__`` and ``__repr__`` raise."""

    def __init__(self) -> None:
        self._it = self._run().__await__()

    async def _run(self) -> int:
        await asyncio.sleep(0)
        return 5

    def send(self, value: Any) -> Any:
        return self._it.send(value)

    def throw(self, *args: Any) -> Any:
        return self._it.throw(*args)

    def close(self) -> None:
        self._it.close()

    def __await__(self) -> Any:
        return self._it

    def __getattribute__(self, name: str) -> Any:
        if name in ("__qualname__", "__name__", "cr_code", "cr_frame"):
            raise RuntimeError(f"no {name}")
        return object.__getattribute__(self, name)

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class _OddlyNamedCoroutine(_HostileCoroutine):
    """A coroutine whose ``__qualname__`` is not a string and ``__name__`` is None."""

    def __getattribute__(self, name: str) -> Any:
        if name == "__qualname__":
            return 42
        if name == "__name__":
            return None
        return object.__getattribute__(self, name)


class _CallableReturningCoroutine:
    async def __call__(self) -> int:
        await asyncio.sleep(0)
        return 6


class _UnprintableAwaitable:
    def __await__(self) -> Generator[None, None, int]:
        yield None  # as asyncio.sleep(0)
        return 7

    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    __str__ = __repr__


class _HostileFuture(asyncio.Future):  # type: ignore[type-arg]
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    __str__ = __repr__

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no {name}")


class _NamelessCallable:
    """A function for a thread whose name cannot be read."""

    def __call__(self) -> int:
        return 10

    def __getattribute__(self, name: str) -> Any:
        if name in ("__qualname__", "__name__"):
            raise RuntimeError(f"no {name}")
        return object.__getattribute__(self, name)


async def _hostile_main() -> list[Any]:
    loop = asyncio.get_running_loop()
    results: list[Any] = [
        await asyncio.create_task(_HostileCoroutine()),  # type: ignore[arg-type]
        await asyncio.create_task(_OddlyNamedCoroutine()),  # type: ignore[arg-type]
        await asyncio.create_task(_CallableReturningCoroutine()()),
        await _UnprintableAwaitable(),
    ]
    future: asyncio.Future[int] = _HostileFuture(loop=loop)
    loop.call_soon(future.set_result, 8)
    results.append(await future)
    future = _HostileFuture(loop=loop)
    loop.call_soon(future.set_result, 9)
    results.append(await asyncio.gather(future))
    results.append(await loop.run_in_executor(None, _NamelessCallable()))
    return results


EXPECTED = [5, 5, 6, 7, 8, [9], 10]


def test_nameless_coroutines_and_unprintable_awaitables_get_fallback_names() -> None:
    assert asyncio.run(_hostile_main()) == EXPECTED
    with asynctrace.tracing() as tracing:
        assert asyncio.run(_hostile_main()) == EXPECTED
    trace = tracing.trace
    tasks = {s.name for s in trace.spans_matching(kind="task")}
    assert {
        "_HostileCoroutine",
        "_OddlyNamedCoroutine",
        "_CallableReturningCoroutine.__call__",
    } <= tasks
    awaited = [s.attributes["asynctrace.awaited"] for s in trace.spans_matching(kind="await")]
    assert "_HostileFuture" in awaited and "yield" in awaited
    assert [s.name for s in trace.spans_matching(kind="thread")] == ["_NamelessCallable"]
    assert all(s.status == "ok" for s in trace)


def test_nameless_coroutines_under_asynctrace_run(tmp_path: Path) -> None:
    source = inspect.getsource(sys.modules[__name__])
    start = source.index("class _HostileCoroutine")
    end = source.index("EXPECTED = ")
    script = tmp_path / "hostile.py"
    script.write_text(
        "import asyncio, collections.abc\nfrom typing import Any\n"
        "from collections.abc import Generator\n"
        + source[start:end]
        + "print(asyncio.run(_hostile_main()))\n"
    )
    plain = _plain(script)
    traced = _traced(script, "--json", str(tmp_path / "t.json"), "--width", "100")
    assert (traced.returncode, traced.stdout) == (plain.returncode, plain.stdout)
    assert plain.stdout == f"{EXPECTED}\n".encode()
    trace = read_chrome_json(tmp_path / "t.json")
    assert "_OddlyNamedCoroutine" in {s.name for s in trace.spans_matching(kind="task")}


def test_a_failing_task_whose_exception_cannot_be_printed() -> None:
    async def boom() -> None:
        raise _Unprintable

    async def main() -> str:
        try:
            await asyncio.create_task(boom())
        except _Unprintable:
            return "caught"
        return "missed"

    with asynctrace.tracing() as tracing:
        assert asyncio.run(main()) == "caught"
    (task,) = tracing.trace.spans_matching("boom", kind="task")
    assert task.status == "error" and task.error == "_Unprintable: <_Unprintable: str() failed>"


def test_trace_of_a_partial_of_an_async_function() -> None:
    async def add(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    try:
        traced = asynctrace.trace(functools.partial(add, 1))
    except TypeError as exc:  # refused with a clear message is fine too
        assert "partial" in str(exc)
        return
    with asynctrace.tracing():
        assert asyncio.run(traced(2)) == 3


def test_the_otlp_json_file_on_a_device_is_written_in_place_never_replaced(
    tmp_path: Path,
) -> None:
    """``--otlp-json /dev/full`` must fail to write, not rename a file over the device."""
    import stat

    async def main() -> None:
        await asyncio.sleep(0)

    with asynctrace.tracing(otlp_json="/dev/full", json=str(tmp_path / "t.json")):
        asyncio.run(main())
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    assert not [name for name in os.listdir("/dev") if name.startswith(".full.")]
    assert (tmp_path / "t.json").exists()
