"""Drive Debian's headless Chromium with Playwright, for the HTML timeline tests.

The browser is the system one (``/usr/bin/chromium``, installed by ``.ci/install-chromium.sh``);
Playwright's own browser download is never used.  When the browser or the ``playwright`` package
is missing, :func:`launch` raises: the browser tests MUST fail loudly, never skip, or a broken
page would pass CI unseen.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("ASYNCTRACE_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def launch() -> Iterator[Any]:
    """Yield a Playwright ``Browser`` running the system Chromium; close it afterwards."""
    if not os.access(CHROMIUM, os.X_OK):
        msg = (
            f"Chromium not found at {CHROMIUM!r}; run .ci/install-chromium.sh "
            "(or set ASYNCTRACE_CHROMIUM to a Chromium binary)"
        )
        raise RuntimeError(msg)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        msg = "the 'playwright' package is missing; pip install playwright (no browser download)"
        raise RuntimeError(msg) from exc
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Page:
    """One opened timeline page, with every request and dialog it made recorded."""

    def __init__(self, browser: Any, path: Path, *, width: int = 1280, height: int = 600) -> None:
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_selector("body[data-ready='1']", state="attached", timeout=30_000)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def wait(self, expression: str, timeout: float = 10.0) -> None:
        """Wait until the JavaScript ``expression`` is truthy.

        Playwright's ``wait_for_function`` evaluates its predicate with ``eval`` inside the
        page, which the page's Content-Security-Policy forbids; this polls from outside.
        """
        deadline = time.monotonic() + timeout
        while not self.page.evaluate(expression):
            assert time.monotonic() < deadline, f"still false after {timeout} s: {expression}"
            self.page.wait_for_timeout(20)

    def box(self, selector: str) -> dict[str, float]:
        """The bounding box of the one element that ``selector`` matches."""
        loc = self.page.locator(selector)
        assert loc.count() == 1, f"{selector!r} matched {loc.count()} elements"
        box = loc.bounding_box()
        assert box is not None, f"{selector!r} is not visible"
        return dict(box)

    def close(self) -> None:
        self.page.close()
