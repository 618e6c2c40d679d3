"""The public API is what asynctrace/__init__.py exports, sorted, and nothing more."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

import asynctrace
import asynctrace.testing


def test_exports_are_pinned_and_sorted() -> None:
    assert asynctrace.__all__ == sorted(asynctrace.__all__)
    assert set(asynctrace.__all__) == {
        "Span",
        "Trace",
        "Tracing",
        "VirtualTimeDeadlock",
        "VirtualTimeLoop",
        "VirtualTimePolicy",
        "format_timeline",
        "instrument",
        "load",
        "trace",
        "tracing",
        "uninstrument",
        "virtual_time",
        "write_html",
        "write_json",
    }
    for name in asynctrace.__all__:
        assert getattr(asynctrace, name) is not None
    assert asynctrace.testing.__all__ == sorted(asynctrace.testing.__all__)


def test_importing_asynctrace_imports_no_opentelemetry_and_patches_nothing() -> None:
    code = (
        "import sys, asyncio; gather = asyncio.gather; import asynctrace; "
        "asynctrace.trace; asynctrace.tracing; asynctrace.virtual_time; "
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry'))); "
        "print(asyncio.gather is gather)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["[]", "True"]


def test_importing_asynctrace_alone_does_not_import_asyncio() -> None:
    code = "import sys, asynctrace; print('asyncio' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out == "False\n"


def test_unknown_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        asynctrace.nope  # noqa: B018


# --- loading and writing traces -----------------------------------------------------------


async def _gather_example() -> None:
    async def task1() -> None:
        await asyncio.sleep(2)

    async def task2() -> None:
        await asyncio.sleep(1)

    await asyncio.gather(task1(), task2())


def _traced() -> asynctrace.Tracing:
    with asynctrace.tracing(name="gather.py", virtual_time=True) as t:
        asyncio.run(_gather_example())
    return t


def test_write_json_then_load_gives_the_same_spans(tmp_path: Path) -> None:
    t = _traced()
    path = tmp_path / "run.trace.json"
    asynctrace.write_json(t, path)  # the Tracing, or its .trace
    loaded = asynctrace.load(path)
    assert isinstance(loaded, asynctrace.Trace)
    assert loaded.clock == "virtual"
    assert [(s.kind, s.name, s.start, s.end) for s in loaded] == [
        (s.kind, s.name, s.start, s.end) for s in t.trace
    ]
    asynctrace.write_json(loaded, tmp_path / "again.json", full_args=True)
    assert len(asynctrace.load(tmp_path / "again.json")) == len(loaded)


def test_load_refuses_what_is_not_a_timeline_with_one_clear_message(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"missing\.json does not exist; pass a JSON timeline"):
        asynctrace.load(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="is a directory, not a file"):
        asynctrace.load(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"is not JSON \(it starts with 'hello'\)"):
        asynctrace.load(tmp_path / "notes.txt")
    path = tmp_path / "run.json"
    asynctrace.write_json(_traced(), path)
    size = path.stat().st_size
    with pytest.raises(ValueError, match=rf"is {size:,} bytes, more than max_bytes=100; pass a"):
        asynctrace.load(path, max_bytes=100)
    assert len(asynctrace.load(path, max_bytes=None)) > 0
    with pytest.raises(ValueError, match=r"max_bytes=0 must be a positive number of bytes"):
        asynctrace.load(path, max_bytes=0)


def test_load_reads_a_stream_cut_short_by_a_kill(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    asynctrace.write_json(_traced(), path)
    whole = asynctrace.load(path)
    text = path.read_bytes()
    (tmp_path / "cut.json").write_bytes(text[: len(text) * 2 // 3])
    cut = asynctrace.load(tmp_path / "cut.json")
    assert 0 < len(cut) <= len(whole)


def test_write_html_and_format_timeline(tmp_path: Path) -> None:
    t = _traced()
    asynctrace.write_html(t.trace, tmp_path / "page.html")
    page = (tmp_path / "page.html").read_text()
    assert "<title>gather.py</title>" in page
    assert "connect-src" not in page and "default-src 'none'" in page
    asynctrace.write_html(t, tmp_path / "titled.html", title="<b>x</b>", max_lanes=1)
    assert "<title>&lt;b&gt;x&lt;/b&gt;</title>" in (tmp_path / "titled.html").read_text()
    with pytest.raises(ValueError, match="max_lanes=0 must be at least 1"):
        asynctrace.write_html(t, tmp_path / "no.html", max_lanes=0)
    text = asynctrace.format_timeline(t, width=60)
    lines = text.splitlines()
    assert lines[0] == "asynctrace · gather.py · virtual clock"
    assert any("task1" in line for line in lines[1:])  # the format of rows is not pinned here
    assert all(len(line) <= 60 for line in lines)
    assert "\x1b[" not in text  # colour only when asked (rows that failed are red)
    with pytest.raises(TypeError, match=r"neither a Trace nor has a \.trace property"):
        asynctrace.format_timeline("trace.json")  # type: ignore[arg-type]


def test_format_timeline_takes_the_command_lines_filters() -> None:
    t = _traced()
    every = asynctrace.format_timeline(t, width=80)
    only_task1 = asynctrace.format_timeline(t, width=80, filter="task1*")
    assert " task2()" in every and " task2()" not in only_task1  # task numbers vary
    assert " task1()" in only_task1
    tasks_only = asynctrace.format_timeline(t, width=80, depth=0)
    assert "gather(task1, task2)" in every and "gather(task1, task2)" not in tasks_only
    late = asynctrace.format_timeline(t, width=80, window=(1.5, None))
    assert " task1()" in late and " task2()" not in late  # task2 ended at 1 s
    with pytest.raises(ValueError, match="depth=-1 is negative"):
        asynctrace.format_timeline(t, depth=-1)


def test_the_installed_version_is_the_packages() -> None:
    from importlib.metadata import version

    assert version("asynctrace") == asynctrace.__version__
