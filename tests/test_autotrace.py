"""The import hook: the program's own async defs are traced, nothing else, lines unchanged."""

from __future__ import annotations

import asyncio
import inspect
import pickle
import re
import sys
import textwrap
import traceback
import types
from pathlib import Path
from typing import Any

import pytest

import asynctrace
from asynctrace import testing
from asynctrace._core import _autotrace, _coro
from asynctrace._core._autotrace import (
    ProgramFinder,
    compile_traced,
    install_finder,
    remove_finder,
)
from asynctrace._core._decorator import is_traced

SOURCE = textwrap.dedent("""
    import asyncio


    class Worker:
        async def run(self):
            async def step():
                await asyncio.sleep(1)
            await step()
            return "done"


    async def ticker():
        yield 1


    def fails():
        raise RuntimeError("line 17")
""")


def test_compiled_code_keeps_every_line_number_and_traces_async_defs() -> None:
    namespace: dict[str, object] = {}
    exec(compile_traced(SOURCE, "<prog>"), namespace)
    worker_cls = namespace["Worker"]
    assert is_traced(worker_cls.run)  # type: ignore[attr-defined]
    run = inspect.unwrap(worker_cls.run)  # type: ignore[attr-defined]
    assert run.__code__.co_firstlineno == 6
    assert not is_traced(namespace["ticker"])  # async generators stay as they are
    with pytest.raises(RuntimeError) as info:
        namespace["fails"]()  # type: ignore[operator]
    assert info.traceback[-1].lineno + 1 == 18


def test_nested_async_defs_get_spans_in_a_traced_run() -> None:
    namespace: dict[str, object] = {}
    exec(compile_traced(SOURCE, "<prog>"), namespace)

    async def main() -> str:
        return await namespace["Worker"]().run()  # type: ignore[operator,no-any-return]

    with asynctrace.tracing(virtual_time=True) as tracing:
        assert asyncio.run(main()) == "done"
    testing.assert_tree(
        tracing.trace,
        """
        main
          Worker.run
            step
              asyncio.sleep(1)
    """,
    )


def test_the_finder_takes_program_files_only(tmp_path: Path) -> None:
    (tmp_path / "app_mod.py").write_text("async def handler():\n    return 1\n")
    finder = install_finder([str(tmp_path)])
    sys.path.insert(0, str(tmp_path))
    try:
        import json  # stdlib, already imported or not: never ours

        import app_mod  # type: ignore[import-not-found]

        assert is_traced(app_mod.handler)
        assert finder.is_program_file(str(tmp_path / "app_mod.py"))
        assert not finder.is_program_file(json.__file__)
        assert not finder.is_program_file(asynctrace.__file__)
        assert not list((tmp_path / "__pycache__").glob("app_mod*")), "no traced bytecode cached"
    finally:
        remove_finder(finder)
        sys.path.remove(str(tmp_path))
        sys.modules.pop("app_mod", None)


def test_site_packages_under_the_root_are_not_the_program(tmp_path: Path) -> None:
    finder = ProgramFinder([str(tmp_path)])
    vendored = tmp_path / ".venv" / "lib" / "site-packages" / "lib.py"
    assert not finder.is_program_file(str(vendored))
    assert finder.is_program_file(str(tmp_path / "pkg" / "mod.py"))


# A program that exercises every way a traced call can end, run compiled both ways below.
ENDINGS = textwrap.dedent('''
    import asyncio


    async def only_doc():
        """Nothing but a docstring."""


    async def child(depth):
        """A docstring, then the body."""
        if depth:
            return await child(depth - 1) + 1
        await asyncio.sleep(0.5)
        return 0


    async def fails():
        await asyncio.sleep(0.1)
        raise ValueError("boom")


    async def sleeps_forever():
        await asyncio.sleep(100)


    async def returns_inside_finally():
        try:
            return "value"
        finally:
            await asyncio.sleep(0.2)


    class Service:
        async def handle(self, n):
            async def step():
                await asyncio.sleep(0.1)
                return n
            return await step()


    async def main():
        await only_doc()
        assert await child(3) == 3
        try:
            await fails()
        except ValueError:
            # a call made while an exception is being handled, that returns normally
            assert await child(1) == 1
        task = asyncio.create_task(sleeps_forever())
        await asyncio.sleep(0.1)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        assert await returns_inside_finally() == "value"
        results = await asyncio.gather(*(Service().handle(i) for i in range(3)))
        assert results == [0, 1, 2]
        return "main done"


    def make():
        async def inner():
            return 1
        return inner
''')


def _compiled(source: str, *, trace_bodies: bool) -> dict[str, Any]:
    import ast

    tree = _autotrace._AddTrace(trace_bodies=trace_bodies).visit(ast.parse(source))
    namespace: dict[str, Any] = {}
    exec(compile(tree, "<endings>", "exec"), namespace)
    return namespace


def _shape(trace: asynctrace.Trace) -> list[tuple[object, ...]]:
    """The trace's spans without what differs from run to run (asyncio numbers its tasks)."""
    by_id = {span.span_id: span for span in trace.spans}

    def same(value: object) -> str:
        return re.sub(r"Task-\d+", "Task-N", str(value))

    return sorted(
        (
            span.kind,
            same(span.name),
            same(by_id[span.parent_id].name) if span.parent_id in by_id else None,
            span.start,
            span.end,
            span.status,
            span.error,
            sorted((k, same(v)) for k, v in span.attributes.items()),
        )
        for span in trace.spans
    )


needs_c = pytest.mark.skipif(
    _coro.speedups is None, reason="without the C accelerator each function is wrapped"
)


@needs_c
def test_a_traced_body_records_what_a_wrapper_records() -> None:
    shapes = []
    for trace_bodies in (True, False):
        namespace = _compiled(ENDINGS, trace_bodies=trace_bodies)
        # no step is a blocked span, however loaded the machine running the tests; no random
        # OpenTelemetry ids, with opentelemetry imported by an earlier test
        options = {"virtual_time": True, "blocked_threshold": 60.0, "otel": False}
        with asynctrace.tracing(**options) as tracing:
            assert asyncio.run(namespace["main"]()) == "main done"
        shapes.append(_shape(tracing.trace))
    body, wrapped = shapes
    assert body == wrapped
    names = {(kind, name, status) for kind, name, _, _, _, status, _, _ in body}
    assert ("coroutine", "fails", "error") in names
    assert ("task", "sleeps_forever", "cancelled") in names
    assert ("coroutine", "step", "ok") in names
    # child(1), called while fails()'s ValueError is handled, still returned normally
    assert sum(1 for kind, name, *_, status, _, _ in body if name == "child") == 6
    assert all(status == "ok" for kind, name, *_, status, _, _ in body if name == "child")


@needs_c
def test_a_traced_body_is_the_function_itself() -> None:
    namespace = _compiled(ENDINGS, trace_bodies=True)
    child = namespace["child"]
    assert is_traced(child)
    assert not hasattr(child, "__wrapped__")
    assert child.__code__.co_name == "child"
    assert child.__code__.co_firstlineno == 9
    assert child.__doc__ == "A docstring, then the body."
    assert namespace["only_doc"].__doc__ == "Nothing but a docstring."
    assert inspect.iscoroutinefunction(child)
    assert child.__asynctrace_info__.code is child.__code__
    # a nested async def is one code however often its def runs
    first, second = namespace["make"](), namespace["make"]()
    assert first is not second and first.__code__ is second.__code__
    assert is_traced(first) and asyncio.run(first()) == 1  # not tracing: it runs as it would


@needs_c
def test_a_traced_body_keeps_the_programs_tracebacks() -> None:
    def frames(namespace: dict[str, Any]) -> list[tuple[str, int | None, str | None]]:
        with pytest.raises(ValueError) as info:
            asyncio.run(namespace["fails"]())
        return [
            (entry.name, entry.lineno, entry.line)
            for entry in traceback.extract_tb(info.value.__traceback__)
            if entry.filename == "<endings>"
        ]

    plain: dict[str, Any] = {}
    exec(compile(ENDINGS, "<endings>", "exec"), plain)
    expected = frames(plain)
    assert expected == [("fails", 19, "")]
    assert frames(_compiled(ENDINGS, trace_bodies=True)) == expected
    with asynctrace.tracing(virtual_time=True):
        assert frames(_compiled(ENDINGS, trace_bodies=True)) == expected


@needs_c
def test_a_traced_body_pickled_comes_back_inert() -> None:
    """A function's code pickled by value (cloudpickle does) must not break the copy: its
    TracedBody comes back as one that opens no span."""
    namespace = _compiled(ENDINGS, trace_bodies=True)
    child = namespace["child"]
    consts = child.__code__.co_consts
    body = next(c for c in consts if isinstance(c, _coro.speedups.TracedBody))
    copied = pickle.loads(pickle.dumps(body))
    assert copied.info is None and body.info is child.__asynctrace_info__
    code = child.__code__.replace(co_consts=tuple(copied if c is body else c for c in consts))
    rebuilt = types.FunctionType(code, namespace)

    async def main() -> None:
        assert await rebuilt(0) == 0  # no span of its own
        assert await child(0) == 0

    with asynctrace.tracing(virtual_time=True, otel=False) as tracing:
        asyncio.run(main())
    calls = [s.name for s in tracing.trace.spans if s.kind == "coroutine"]
    assert calls == ["child"]
