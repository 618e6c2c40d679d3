"""The HTML timeline: the page's data block and policy in Python, its behaviour in Chromium.

The browser tests need ``/usr/bin/chromium`` (``.ci/install-chromium.sh``) and the ``playwright``
package; without them they fail (see ``tests/browser.py``), they never skip.  Set
``ASYNCTRACE_UPDATE_SCREENSHOTS=1`` to rewrite the pictures in ``docs/img/``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import Page, launch

from asynctrace._export._html import render_html, write_html
from asynctrace._model._critical import mark_critical
from asynctrace._model._spans import Span, Trace

IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
EVIL = "<script>alert(1)</script>"
FILE = "examples/gather.py"


def span(
    span_id: int,
    parent: int | None,
    kind: str,
    name: str,
    start: float,
    end: float,
    track: int,
    seq: int = 0,
    **attributes: object,
) -> Span:
    return Span(
        span_id, parent, kind, name, start, end, track,  # type: ignore[arg-type]
        attributes=attributes, start_seq=seq, end_seq=seq,
    )  # fmt: skip


def at(line: int) -> dict[str, object]:
    return {"code.file.path": FILE, "code.line.number": line}


def gather_trace() -> Trace:
    """The blog's gather example: task1 (2 s) and task2 (1 s) gathered, then task3 (3 s)."""
    return Trace(
        [
            span(1, None, "run", "gather.py", 0, 5, 1, 0),
            span(2, 1, "task", "main", 0, 5, 2, 1, **{"asynctrace.task.name": "Task-1"}, **at(18)),
            span(3, 2, "gather", "gather(task1, task2)", 0, 2, 2, 2, **at(19)),
            span(4, 3, "await", "gather(task1, task2)", 0, 2, 2, 5,
                 **{"asynctrace.awaited": "gather(task1, task2)"}, **at(19)),
            span(5, 3, "task", "task1", 0, 2, 5, 3, **{"asynctrace.task.name": "Task-2"}, **at(4)),
            span(6, 5, "await", "asyncio.sleep(2)", 0, 2, 5, 6,
                 **{"asynctrace.awaited": "asyncio.sleep(2)"}, **at(6)),
            span(7, 3, "task", "task2", 0, 1, 7, 4, **{"asynctrace.task.name": "Task-3"}, **at(9)),
            span(8, 7, "await", "asyncio.sleep(1)", 0, 1, 7, 7,
                 **{"asynctrace.awaited": "asyncio.sleep(1)"}, **at(11)),
            span(9, 2, "coroutine", "task3", 2, 5, 2, 8, **at(14)),
            span(10, 9, "await", "asyncio.sleep(3)", 2, 5, 2, 9,
                 **{"asynctrace.awaited": "asyncio.sleep(3)"}, **at(16)),
        ],
        clock="virtual",
    )  # fmt: skip


def sync_trace() -> Trace:
    """The blog's sync example under gather: time.sleep blocks the loop, nothing overlaps."""
    return Trace(
        [
            span(1, None, "run", "sync_gather.py", 0, 5, 1, 0),
            span(2, 1, "task", "main", 0, 5, 2, 1, **{"asynctrace.task.name": "Task-1"}),
            span(3, 2, "gather", "gather(task1, task2)", 0, 5, 2, 2),
            span(4, 3, "await", "gather(task1, task2)", 0, 5, 2, 5),
            span(5, 3, "task", "task1", 0, 3, 5, 3, **{"asynctrace.task.name": "Task-2"}),
            span(6, 5, "blocked", "blocked", 0, 3, 5, 6, **at(5)),
            span(7, 3, "task", "task2", 3, 5, 7, 4, **{"asynctrace.task.name": "Task-3"}),
            span(8, 7, "blocked", "blocked", 3, 5, 7, 7, **at(10)),
        ]
    )


def statuses_trace() -> Trace:
    """Failing, cancelled and timed-out work, and hostile names everywhere."""
    return Trace(
        [
            span(1, None, "run", "statuses.py", 0, 3, 1, 0),
            span(2, 1, "task", "main", 0, 3, 2, 1, **{"asynctrace.task.name": "Task-1"}),
            span(3, 2, "gather", "gather(fail, slow, " + EVIL + ")", 0, 2, 2, 2),
            span(4, 3, "task", "fail", 0, 1, 4, 3, **{"asynctrace.task.name": "Task-2"}),
            span(5, 3, "task", "slow", 0, 2, 5, 4, **{"asynctrace.task.name": "Task-3"}),
            span(6, 3, "task", EVIL, 0, 1.5, 6, 5, **{"asynctrace.task.name": EVIL, "user": EVIL}),
            span(7, 2, "coroutine", "with_timeout", 2, 3, 2, 6),
            span(8, 7, "await", "asyncio.sleep(10)", 2, 3, 2, 7),
        ]
    )


def _mark(trace: Trace, span_id: int, status: str, error: str | None = None) -> Trace:
    s = trace.by_id[span_id]
    s.status = status  # type: ignore[assignment]
    s.error = error
    return trace


def fanout_trace(n: int, k: int) -> Trace:
    """``gather`` of ``n`` tasks, each awaiting ``sleep(0)`` ``k`` times: 2 + n * (k + 1) spans."""
    spans = [
        span(1, None, "run", "fanout.py", 0, 1.0, 1, 0),
        span(2, 1, "gather", "gather", 0, 1, 1),
    ]
    sid = 3
    for i in range(n):
        t = 0.5 * i / n
        task = sid
        spans.append(span(task, 2, "task", f"work{i}", t, t + 0.5, task, sid))
        sid += 1
        for j in range(k):
            a = t + 0.5 * j / k
            spans.append(span(sid, task, "await", "asyncio.sleep(0)", a, a + 0.4 / k, task, sid))
            sid += 1
    return Trace(spans)


def data_block(page: str) -> str:
    m = re.search(
        r'<script type="application/json" id="asynctrace-data">(.*?)</script>', page, re.S
    )
    assert m is not None
    return m.group(1)


# ---- the page as text --------------------------------------------------------------------


def test_data_block_is_inert_and_round_trips() -> None:
    names = [EVIL, "</script><!--", "a & b", "line\u2028sep\u2029", "\udcff lone", "é"]
    trace = Trace(
        [span(1, None, "run", "r", 0, 1, 1)]
        + [span(i + 2, 1, "coroutine", n, 0, 1, 1, i + 1, k=n) for i, n in enumerate(names)]
    )
    page = render_html(trace, title=EVIL)
    block = data_block(page)
    for bad in ("<", ">", "&", "\u2028", "\u2029"):
        assert bad not in block
    assert block.isascii()
    data = json.loads(block)
    assert [row[3] for row in data["spans"][1:]] == names
    assert data["spans"][1][10] == {"k": EVIL}
    assert page.count("<script") == 2  # the data block and the page script, nothing injected
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt;</title>" in page


def test_csp_forbids_network_and_allows_exactly_the_inlined_code() -> None:
    page = render_html(gather_trace(), title="gather.py")
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page)
    assert csp is not None
    policy = dict(d.strip().split(" ", 1) for d in csp.group(1).split(";"))
    assert policy["default-src"] == "'none'"
    js = re.search(r"<script>(.*?)</script>", page, re.S)
    css = re.search(r"<style>(.*?)</style>", page, re.S)
    assert js is not None and css is not None
    for text, directive in ((js.group(1), "script-src"), (css.group(1), "style-src")):
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        assert policy[directive] == f"'sha256-{digest}'"
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page


def test_lanes_rows_and_concurrency_are_computed_once() -> None:
    data = json.loads(data_block(render_html(gather_trace(), title="g")))
    assert [(lane["track"], lane["label"], lane["rows"]) for lane in data["lanes"]] == [
        (1, "gather.py", 1),
        (2, "Task-1 main()", 3),
        (5, "Task-2 task1()", 2),
        (7, "Task-3 task2()", 2),
    ]
    depth = {row[0]: row[7] for row in data["spans"]}
    assert depth == {1: 0, 2: 0, 3: 1, 4: 2, 5: 0, 6: 1, 7: 0, 8: 1, 9: 1, 10: 2}
    conc = data["concurrency"]
    assert (conc["overlap"], conc["max"]) == (1.0, 3)  # task1 with task2; main only joins them
    assert conc["t"] == [0.0, 1.0, 2.0, 5.0]
    assert conc["n"] == [3, 2, 1, 0]
    # main waits on the gather (a join) until 2 s; task1 and task2 sleep: they run
    assert conc["w"] == [1, 1, 0, 0]


def test_tasks_run_one_after_the_other_do_not_overlap() -> None:
    conc = json.loads(data_block(render_html(sync_trace(), title="s")))["concurrency"]
    assert (conc["overlap"], conc["max"]) == (0.0, 2)
    assert conc["n"] == [2, 2, 0]
    assert conc["w"] == [1, 1, 0]  # main waits on the gather, task1 then task2 block the loop


def test_overlapping_siblings_get_their_own_rows() -> None:
    trace = Trace(
        [
            span(1, None, "task", "t", 0, 4, 1),
            span(2, 1, "coroutine", "a", 0, 2, 1, 1),
            span(3, 1, "coroutine", "b", 1, 3, 1, 2),  # malformed: overlaps its sibling
            span(4, 1, "coroutine", "c", 2, 4, 1, 3),  # half-open: fits after a
        ]
    )
    data = json.loads(data_block(render_html(trace, title="t")))
    assert {row[0]: row[7] for row in data["spans"]} == {1: 0, 2: 1, 3: 2, 4: 1}


def test_odd_values_become_valid_json() -> None:
    trace = Trace([span(1, None, "task", "t", 0, 1, 1, x=float("nan"), y=(1, [2]), z=object)])
    attrs = json.loads(data_block(render_html(trace, title="t")))["spans"][0][10]
    assert attrs["x"] == "nan"
    assert attrs["y"] == [1, "[2]"]
    assert attrs["z"] == str(object)


def test_max_lanes_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"max_lanes=0 must be at least 1"):
        render_html(gather_trace(), title="g", max_lanes=0)


def test_hidden_lanes_leave_only_their_count_and_series() -> None:
    data = json.loads(data_block(render_html(fanout_trace(50, 3), title="f", max_lanes=11)))
    assert len(data["lanes"]) == 11
    assert {row[6] for row in data["spans"]} == set(range(11))
    assert data["hidden"]["lanes"] == 40
    assert data["hidden"]["spans"] == 40 * 4
    assert data["hidden"]["series"]["max"] > 0
    assert data["summary"]["tasks"] == 50


def test_write_html(tmp_path: Path) -> None:
    out = tmp_path / "trace.html"
    write_html(gather_trace(), out, title="gather.py")
    assert out.read_text(encoding="utf-8") == render_html(gather_trace(), title="gather.py")


# ---- the page in Chromium ------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch() as b:
        yield b


def open_trace(browser: Any, tmp_path: Path, trace: Trace, **kw: Any) -> Page:
    path = tmp_path / "trace.html"
    viewport = kw.pop("viewport", {})
    write_html(trace, path, title=kw.pop("title", "gather.py"), **kw)
    return Page(browser, path, **viewport)


@pytest.fixture
def blog(browser: Any, tmp_path: Path) -> Iterator[Page]:
    page = open_trace(browser, tmp_path, gather_trace(), viewport={"height": 440})
    yield page
    assert page.errors == []
    page.close()


def test_lanes_in_creation_order(blog: Page) -> None:
    lanes = blog.page.eval_on_selector_all(
        ".lane", "ls => ls.map(l => [l.dataset.track, l.querySelector('.label').textContent])"
    )
    assert lanes == [["1", "gather.py"], ["2", "Task-1 main()"], ["5", "Task-2 task1()"],
                     ["7", "Task-3 task2()"]]  # fmt: skip
    assert blog.page.locator(".bar").count() == 10


def test_bars_are_placed_on_one_time_axis(blog: Page) -> None:
    task1 = blog.box('[data-span-id="5"]')
    task2 = blog.box('[data-span-id="7"]')
    task3 = blog.box('[data-span-id="9"][data-kind="coroutine"][data-name="task3"]')
    assert task2["width"] < task1["width"]
    assert task1["x"] == pytest.approx(task2["x"], abs=0.5)
    assert task1["x"] + task1["width"] <= task3["x"] + 0.5
    assert task2["x"] + task2["width"] < task3["x"]
    assert task1["width"] == pytest.approx(2 * task2["width"], rel=0.01)
    assert task3["width"] == pytest.approx(3 * task2["width"], rel=0.01)
    for coro, wait in ((5, 6), (7, 8), (9, 10), (3, 4)):
        outer, inner = blog.box(f'[data-span-id="{coro}"]'), blog.box(f'[data-span-id="{wait}"]')
        assert outer["x"] - 0.5 <= inner["x"]
        assert inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
        assert inner["y"] > outer["y"]  # a sub-row below its parent
    lane_of_task1 = blog.box('.lane[data-track="5"]')
    assert lane_of_task1["y"] <= task1["y"] < lane_of_task1["y"] + lane_of_task1["height"]


def test_gather_links_to_the_tasks_it_started(blog: Page) -> None:
    links = blog.page.eval_on_selector_all(
        "svg.links path[data-from]",
        "ps => ps.map(p => [p.dataset.from, p.dataset.to, p.classList.contains('gather')])",
    )
    assert ["3", "5", True] in links
    assert ["3", "7", True] in links
    blog.page.hover('[data-span-id="3"]')
    blog.page.wait_for_selector('.lane[data-track="7"].linked')
    assert blog.page.locator("svg.links path.hot").count() == 2


def test_a_link_leaves_its_parents_row_where_the_child_starts(browser: Any, tmp_path: Path) -> None:
    # main (from 0 s) starts a task at 0 s and one at 3 s: each link leaves main's row at its
    # task's start, not at main's start (which said the second began at 0 s)
    trace = Trace([
        span(1, None, "run", "spawn.py", 0, 5, 1, 0),
        span(2, 1, "task", "main", 0, 5, 2, 1, **{"asynctrace.task.name": "Task-1"}),
        span(3, 2, "task", "job", 0, 1, 3, 2, **{"asynctrace.task.name": "Task-2"}),
        span(4, 2, "task", "job", 3, 4, 4, 3, **{"asynctrace.task.name": "Task-3"}),
    ])  # fmt: skip
    page = open_trace(browser, tmp_path, trace, title="spawn.py")
    try:
        starts = page.page.eval_on_selector_all(
            "svg.links path[data-from='2']",
            "ps => ps.map(p => [p.dataset.to, p.getAttribute('d').split(' ')[0]])",
        )
        x = {to: float(move[1:].split(",")[0]) for to, move in starts}
        late = page.box('[data-span-id="4"]')
        assert x["4"] == pytest.approx(late["x"] - page.box("svg.links")["x"] + 6, abs=1)
        assert x["4"] > x["3"] + 100  # three fifths of the way along, not at main's start
        assert page.errors == []
    finally:
        page.close()


def test_hover_shows_a_tooltip(blog: Page) -> None:
    blog.page.hover('[data-span-id="6"]')
    tip = blog.page.locator("#tip")
    assert tip.is_visible()
    text = tip.inner_text()
    for part in ("asyncio.sleep(2)", "await", "2.000000 s", "ok", "gather.py:6", "awaited"):
        assert part in text, (part, text)
    blog.page.hover('[data-span-id="2"]')
    assert "awaits" in tip.inner_text() and "Task-1" in tip.inner_text()
    blog.page.mouse.move(5, 5)
    assert not tip.is_visible()


def test_click_shows_the_details_panel(blog: Page) -> None:
    blog.page.click('[data-span-id="9"]')
    panel = blog.page.locator("#panel").inner_text()
    assert "task3" in panel and "coroutine" in panel and "3.000000 s" in panel
    assert "examples/gather.py:14" in panel and "asyncio.sleep(3)" in panel
    # The selection is drawn on the next frame: wait for it rather than race it.
    blog.page.wait_for_selector('[data-span-id="9"].selected', timeout=5000)
    assert blog.page.locator('[data-span-id="9"].selected').count() == 1
    blog.page.keyboard.press("Escape")
    blog.page.wait_for_selector('[data-span-id="9"]:not(.selected)')


def scale(page: Page) -> float:
    return float(page.page.get_attribute("#content", "data-scale") or "nan")


def x_of(page: Page, t: float) -> float:
    """Where time ``t`` is on screen, from the page's own view state."""
    area = page.box('.lane[data-track="2"] .area')
    view = page.page.eval_on_selector(
        "#content", "c => [Number(c.dataset.t0), Number(c.dataset.scale)]"
    )
    return float(area["x"] + (t - view[0]) * view[1])


def test_zoom_and_pan(blog: Page) -> None:
    fit = scale(blog)
    assert blog.box('[data-span-id="10"]')["x"] == pytest.approx(x_of(blog, 2.0), abs=0.5)
    blog.page.click("#zoom-in")
    blog.wait(f"Number(document.querySelector('#content').dataset.scale) > {fit}")
    assert scale(blog) == pytest.approx(1.6 * fit)
    assert blog.box('[data-span-id="10"]')["x"] == pytest.approx(x_of(blog, 2.0), abs=0.5)
    assert blog.box('[data-span-id="10"]')["width"] > 3 * 0.9 * fit  # 3 s, and zoomed in
    area = blog.box('.lane[data-track="7"] .area')
    blog.page.mouse.move(area["x"] + 100, area["y"] + 10)
    blog.page.mouse.wheel(0, 600)  # wheel down: zoom out around the pointer
    blog.wait(f"Number(document.querySelector('#content').dataset.scale) < {fit}")
    blog.page.click("#zoom-fit")
    blog.wait(f"document.querySelector('#content').dataset.scale == '{fit}'")
    x = blog.box('[data-span-id="9"]')["x"]
    blog.page.mouse.move(area["x"] + 400, area["y"] + 10)
    blog.page.mouse.down()
    blog.page.mouse.move(area["x"] + 300, area["y"] + 10, steps=4)
    blog.page.mouse.up()
    blog.wait(
        f"document.querySelector('[data-span-id=\"9\"]').getBoundingClientRect().x < {x - 50}"
    )
    assert blog.box('[data-span-id="9"]')["x"] == pytest.approx(x - 100, abs=1)
    assert blog.page.get_attribute("body", "data-selected") in (None, "")  # a drag is no click
    ticks = blog.page.locator("#axis .tick").all_inner_texts()
    assert "1 s" in ticks and "2 s" in ticks


def test_no_network_request(blog: Page) -> None:
    blog.page.hover('[data-span-id="6"]')
    blog.page.click("#zoom-in")
    assert len(blog.requests) == 1
    assert blog.requests[0].startswith("file://")


def test_hostile_names_render_as_text(browser: Any, tmp_path: Path) -> None:
    trace = _mark(statuses_trace(), 4, "error", "ValueError: boom")
    _mark(_mark(trace, 5, "cancelled"), 7, "timeout", "TimeoutError")
    page = open_trace(browser, tmp_path, trace, title=EVIL)
    try:
        assert page.dialogs == [] and page.errors == []
        evil_bar = page.page.locator('[data-span-id="6"]')
        assert evil_bar.get_attribute("data-name") == EVIL
        assert evil_bar.inner_text() == EVIL
        assert page.page.locator('.lane[data-track="6"] .label').inner_text() == f"{EVIL} {EVIL}()"
        assert page.page.locator("h1").inner_text().endswith(EVIL)
        assert page.page.locator("script").count() == 2  # nothing parsed from the data
        page.page.click('[data-span-id="6"]')
        assert EVIL in page.page.locator("#panel").inner_text()
        assert page.page.locator('[data-span-id="4"]').get_attribute("class").endswith("s-error")
        page.page.hover('[data-span-id="4"]')
        assert "ValueError: boom" in page.page.locator("#tip").inner_text()
        for sid in (5, 7):
            color = page.page.eval_on_selector(
                f'[data-span-id="{sid}"]', "e => getComputedStyle(e).backgroundImage"
            )
            assert "repeating-linear-gradient" in color  # hatched
        assert page.dialogs == [] and len(page.requests) == 1
    finally:
        page.close()


def test_ten_thousand_tasks_render_and_say_they_are_summed(browser: Any, tmp_path: Path) -> None:
    page = open_trace(browser, tmp_path, fanout_trace(10_000, 1), title="fanout.py")
    try:
        notice = page.page.locator("#notice").inner_text()
        assert "Showing 200 of 10,001 lanes" in notice
        assert "other 9,801 lanes" in notice
        assert page.page.locator(".lane[data-track]").count() < 200  # virtualized
        assert "10,000" in page.page.locator("#summary").inner_text()
        page.page.locator("#scroller").evaluate("s => s.scrollTop = s.scrollHeight")
        page.page.wait_for_selector(".lane.hidden-sum")
        assert "+ 9,801 more lanes" in page.page.locator(".lane.hidden-sum").inner_text()
        assert page.errors == []
    finally:
        page.close()


def test_the_page_opens_on_the_program_and_fit_shows_its_start(
    browser: Any, tmp_path: Path
) -> None:
    # 8 s of imports before main: the page opens on main's 2 s, as the terminal's axis does,
    # says what is to the left, and Fit shows everything
    task = {"asynctrace.task.name": "Task-1"}
    trace = Trace([
        span(1, None, "run", "slow_imports.py", 0, 10, 1, 0),
        span(2, 1, "task", "main", 8, 10, 2, 1, **task),
        span(3, 2, "await", "asyncio.sleep(2)", 8, 10, 2, 2),
    ])  # fmt: skip
    page = open_trace(browser, tmp_path, trace, title="slow_imports.py")
    try:
        area = page.box('.lane[data-track="2"] .area')
        main = page.box('[data-span-id="2"]')
        assert main["x"] - area["x"] < 20  # at the left edge
        assert main["width"] > 0.9 * (area["width"] - 24)  # and as wide as the view
        notice = page.page.locator("#notice").inner_text()
        assert "program's first span" in notice and "8.000 s" in notice, notice
        page.page.click("#zoom-fit")
        narrower = main["width"] / 3
        page.wait(f"document.querySelector('[data-span-id=\"2\"]').offsetWidth < {narrower}")
        whole = page.box('[data-span-id="1"]')
        assert whole["x"] - area["x"] < 20
    finally:
        page.close()


def test_tiny_bars_are_grouped_and_the_page_says_so(browser: Any, tmp_path: Path) -> None:
    spans = [span(1, None, "task", "busy", 0, 10, 1)]
    spans += [span(i + 2, 1, "await", "sleep(0)", i * 1e-3, i * 1e-3 + 1e-4, 1, i + 1)
              for i in range(10_000)]  # fmt: skip
    page = open_trace(browser, tmp_path, Trace(spans), title="busy.py")
    try:
        assert page.page.locator(".bar.agg").count() > 0
        assert "grouped" in page.page.locator("#lod-notice").inner_text()
        assert int(page.page.get_attribute("body", "data-bars") or 0) < 2000
        for _ in range(12):
            page.page.click("#zoom-in")
        page.wait("document.querySelectorAll('.bar.k-await:not(.agg)').length > 3")
    finally:
        page.close()


@pytest.mark.parametrize(
    ("name", "make", "height"),
    [
        ("gather", gather_trace, 600),
        ("sync", sync_trace, 400),
        ("statuses", statuses_trace, 430),
        ("fanout", lambda: fanout_trace(2000, 10), 560),
    ],
)
def test_screenshot(browser: Any, tmp_path: Path, name: str, make: Any, height: int) -> None:
    trace = make()
    if name == "statuses":
        _mark(_mark(_mark(trace, 4, "error", "ValueError: boom"), 5, "cancelled"), 7, "timeout")
    page = open_trace(browser, tmp_path, trace, title=trace.roots[0].name,
                      viewport={"height": height})  # fmt: skip
    try:
        if name == "gather":
            page.page.hover('[data-span-id="3"]')
            page.page.wait_for_selector('.lane[data-track="7"].linked')
            page.page.click('[data-span-id="6"]')
            page.page.hover('[data-span-id="10"]')
        out_dir = IMG if os.environ.get("ASYNCTRACE_UPDATE_SCREENSHOTS") else tmp_path
        out_dir.mkdir(parents=True, exist_ok=True)
        out = out_dir / f"html-{name}.png"
        page.page.screenshot(path=str(out))
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        page.close()


def _ancestors(span: Span) -> Iterator[Span]:
    while span.parent is not None:
        span = span.parent
        yield span


def test_the_critical_path_is_highlighted_and_toggled(browser: Any, tmp_path: Path) -> None:
    trace = gather_trace()
    # a recorder's one counter for starts and ends (the hand-made trace has one number per
    # span): at equal times ends come first, a child ending before its parent, a parent
    # starting before its child
    depth = {s.span_id: len(list(_ancestors(s))) for s in trace.spans}
    events = [(s.end, 0, -depth[s.span_id], s, "end_seq") for s in trace.spans]
    events += [(s.start, 1, depth[s.span_id], s, "start_seq") for s in trace.spans]
    events.sort(key=lambda e: e[:3])
    for seq, (*_, s, field) in enumerate(events):
        setattr(s, field, seq)
    on_path = {s.span_id for s in mark_critical(trace)}
    assert on_path == {1, 2, 3, 5, 6, 9, 10}  # run, main, gather, task1, its sleep, task3, its
    page = open_trace(browser, tmp_path, trace, viewport={"height": 440})
    try:
        marked = page.page.eval_on_selector_all(
            ".bar.critical", "bs => bs.map(b => Number(b.dataset.spanId))"
        )
        assert set(marked) == on_path
        assert page.page.evaluate("document.body.classList.contains('show-critical')")
        dim = "b => getComputedStyle(b).opacity"
        assert float(page.page.eval_on_selector('[data-span-id="7"]', dim)) < 0.5  # task2: off
        assert float(page.page.eval_on_selector('[data-span-id="5"]', dim)) == 1.0
        page.page.click("#critical-toggle")
        assert not page.page.evaluate("document.body.classList.contains('show-critical')")
        assert float(page.page.eval_on_selector('[data-span-id="7"]', dim)) == 1.0
        assert page.page.get_attribute("#critical-toggle", "aria-pressed") == "false"
        page.page.keyboard.press("c")
        assert page.page.evaluate("document.body.classList.contains('show-critical')")
        out_dir = IMG if os.environ.get("ASYNCTRACE_UPDATE_SCREENSHOTS") else tmp_path
        out_dir.mkdir(parents=True, exist_ok=True)
        page.page.screenshot(path=str(out_dir / "html-critical-path.png"))
        assert page.errors == []
    finally:
        page.close()
    # without a marked path there is no toggle
    page = open_trace(browser, tmp_path, gather_trace(), viewport={"height": 440})
    try:
        assert page.page.locator("#critical-toggle").count() == 0
    finally:
        page.close()


def test_the_page_says_where_the_waiting_went(blog: Page) -> None:
    blog.page.click("#waits summary")
    rows = blog.page.eval_on_selector_all(
        "#waits tr", "rs => rs.map(r => Array.from(r.cells).map(c => c.textContent))"
    )
    assert rows[0] == ["what", "where", "count", "total", "mean", "p50", "p99", "max"]
    assert rows[1][:3] == ["asyncio.sleep", "gather.py:16", "1"]  # task3's 3 s, the costliest
    assert rows[1][3].startswith("3")
    assert len(rows) == 1 + 4  # the gather's await and the three sleeps
    caption = blog.page.text_content("#waits summary") or ""
    assert caption.startswith("Where the waiting went: 4 places awaited")


def test_empty_trace_and_thread_jobs_render(browser: Any, tmp_path: Path) -> None:
    page = open_trace(browser, tmp_path, Trace([]), title="empty.py")
    try:
        assert page.errors == [] and page.page.locator(".lane").count() == 0
        assert "spans 0" in page.page.locator("#summary").inner_text()
    finally:
        page.close()
    trace = Trace(
        [
            span(1, None, "run", "threads.py", 0, 2, 1, 0),
            span(2, 1, "thread", "fetch", 0.5, 1.5, 2, 1, **{"asynctrace.thread.name": "pool-0"}),
            span(3, 1, "coroutine", "unfinished", 1, 2, 9, 2),  # its track's owner is missing
        ]
    )
    _mark(trace, 3, "unfinished")
    page = open_trace(browser, tmp_path, trace, title="threads.py")
    try:
        labels = page.page.locator(".lane .label").all_inner_texts()
        assert labels == ["threads.py", "pool-0 fetch()", "track 9"]
        assert "thread jobs 1" in page.page.locator("#summary").inner_text()
        assert page.errors == []
    finally:
        page.close()


def test_tasks_queued_on_a_semaphore_wait_on_the_page_as_in_the_terminal() -> None:
    """Six jobs behind ``Semaphore(2)``: two run at a time, the others wait in the queue, and
    main waits on the gather; the page counts them as the terminal does."""
    import asynctrace
    from tests.test_chrome import semaphore_jobs_trace

    trace = semaphore_jobs_trace()
    conc = json.loads(data_block(render_html(trace, title="t")))["concurrency"]
    running = [n - w for n, w in zip(conc["n"], conc["w"], strict=True)]
    assert (conc["n"][0], running[0]) == (7, 2)  # main and six jobs; two hold the semaphore
    assert max(running) == 2
    assert conc["overlap"] == 3.0
    header = asynctrace.format_timeline(trace, width=100).splitlines()[1]
    assert "overlap 3.000 s" in header, header


def test_awaiting_a_task_with_a_name_of_its_own_is_a_join_not_overlap() -> None:
    """``main`` awaiting ``create_task(..., name="fetcher")`` only waits: with one task in
    flight besides it, nothing overlaps (the page and the terminal agree on what a join is)."""
    import asyncio
    import threading

    import asynctrace

    async def work() -> None:
        await asyncio.sleep(1)

    async def main() -> None:
        await asyncio.create_task(work(), name="fetcher")

    with asynctrace.tracing(virtual_time=True, otel=False) as tracing:
        # a thread of its own: the browser tests of this module leave a loop in this one
        runner = threading.Thread(target=asyncio.run, args=(main(),))
        runner.start()
        runner.join()
    conc = json.loads(data_block(render_html(tracing.trace, title="t")))["concurrency"]
    assert conc["overlap"] == 0.0
