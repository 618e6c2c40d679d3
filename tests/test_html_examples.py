"""The HTML timelines of the real blog examples, opened in headless Chromium.

The asynchronous examples run through `asynctrace run --virtual-time --html`; the page of the
gather example is checked from the DOM (lanes, bars, their positions), and every page is
screenshotted.  ``ASYNCTRACE_UPDATE_SCREENSHOTS=1`` writes the pictures to ``docs/img/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import Page, launch

ROOT = Path(__file__).resolve().parent.parent
IMG = ROOT / "docs" / "img"
ASYNC_EXAMPLES = ["gather", "async_tasks", "coroutine", "event_loop"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch() as b:
        yield b


def html_of(example: str, out: Path) -> Path:
    page = out / f"{example}.html"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "asynctrace",
            "run",
            "--virtual-time",
            "--no-json",
            "--no-timeline",
            "--html",
            str(page),
            str(ROOT / "examples" / f"{example}.py"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return page


def bar_box(page: Page, kind: str, name: str) -> dict[str, float]:
    box = page.page.locator(f'.bar[data-kind="{kind}"][data-name="{name}"]').first.bounding_box()
    assert box is not None, (kind, name)
    return dict(box)


def test_the_gather_page_shows_task1_and_task2_side_by_side_then_task3(
    browser: Any, tmp_path: Path
) -> None:
    page = Page(browser, html_of("gather", tmp_path), height=520)
    try:
        labels = page.page.eval_on_selector_all(".lane .label", "ls => ls.map(l => l.textContent)")
        assert labels == ["gather.py", "Task-1 main()", "Task-2 task1()", "Task-3 task2()"]
        task1, task2 = bar_box(page, "task", "task1"), bar_box(page, "task", "task2")
        task3 = bar_box(page, "coroutine", "task3")
        assert task1["x"] == pytest.approx(task2["x"], abs=2)  # they start together
        assert task2["width"] == pytest.approx(task1["width"] / 2, rel=0.05)  # 1 s vs 2 s
        assert task3["x"] >= task1["x"] + task1["width"] - 1  # task3 after both
        sleep3 = bar_box(page, "await", "asyncio.sleep(3)")
        assert sleep3["x"] >= task3["x"] - 1
        assert sleep3["x"] + sleep3["width"] <= task3["x"] + task3["width"] + 1
        page.page.hover('.bar[data-kind="await"][data-name="asyncio.sleep(3)"]')
        tooltip = page.page.locator("#tip").inner_text()
        assert "asyncio.sleep(3)" in tooltip and "3.000" in tooltip and "gather.py:20" in tooltip
        assert [url for url in page.requests if not url.startswith("file:")] == []
        assert page.errors == []
    finally:
        page.close()


@pytest.mark.parametrize("example", ASYNC_EXAMPLES)
def test_screenshot_of_each_blog_example(browser: Any, tmp_path: Path, example: str) -> None:
    page = Page(browser, html_of(example, tmp_path), height=480 if example == "gather" else 330)
    try:
        if example == "gather":
            page.page.hover('.bar[data-kind="gather"]')
        out_dir = IMG if os.environ.get("ASYNCTRACE_UPDATE_SCREENSHOTS") else tmp_path
        out = out_dir / f"example-{example}.png"
        page.page.screenshot(path=str(out))
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert page.errors == []
    finally:
        page.close()
