"""The import hook: the program's own async defs are traced, nothing else, lines unchanged."""

from __future__ import annotations

import asyncio
import inspect
import sys
import textwrap
from pathlib import Path

import pytest

import asynctrace
from asynctrace import testing
from asynctrace._autotrace import (
    ProgramFinder,
    compile_traced,
    install_finder,
    remove_finder,
)
from asynctrace._decorator import is_traced

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
