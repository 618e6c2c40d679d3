"""The expression after ``await`` on a source line, which names awaits on bare futures."""

from __future__ import annotations

from pathlib import Path

import pytest

from asynctrace._model._source import await_expression


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("    data = await resp.json()  # parse", "resp.json()"),
        ("    await fut", "fut"),
        ("    x = [await q.get(), 1]", "q.get()"),
        ("    y = (await f(a, b)).decode()", "f(a, b)"),
        ("    if await ready(')'):", "ready(')')"),
        ("    await asyncio.wait_for(", None),  # goes on to the next line
        ("    text = 'no await here'", None),  # in a string: the quote never closes
        ("    awaited = 1", None),
        ("    not_await(x)", None),
        ("    await " + "f" * 100 + "()", "f" * 59 + "…"),
        # an async for: its __anext__ awaited (a future inside an async generator)
        ("    async for v in ticker(5):", "async for v in ticker(5)"),
        ("    async for key,  value in pairs(d):  # both", "async for key, value in pairs(d)"),
        ("    names = [n async for n in names_of(db)]", "async for n in names_of(db)"),
        ("    async for v in await make():", "make()"),  # the await on the line first
        ("    async for row in (", None),  # goes on to the next line
        ("    my_async for x in y(1)", None),  # not the keyword
    ],
)
def test_the_expression_after_await(tmp_path: Path, line: str, expected: str | None) -> None:
    path = tmp_path / "prog.py"
    path.write_text(f"async def main():\n{line}\n")
    assert await_expression(str(path), 2) == expected


def test_no_source_no_expression(tmp_path: Path) -> None:
    assert await_expression(str(tmp_path / "gone.py"), 2) is None
    assert await_expression("<stdin>", 1) is None
    assert await_expression(None, 1) is None
    assert await_expression(str(tmp_path / "gone.py"), 0) is None
