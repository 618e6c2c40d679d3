"""Which event loop a test runs on, making the loops of one test virtual, and its recording.

Problem: virtual time must apply to the loop the test really runs on, and runners make their
loops in different places: pytest-asyncio's runner fixtures (with a policy of their own, so
swapping the current policy is not enough), anyio's runner, ``asyncio.run`` in a sync test.

Solution: while a test that asks for virtual time is set up, run and torn down, the
``new_event_loop`` of asyncio's base policy class makes a :class:`VirtualTimeLoop`; all those
runners create their loops through it.  Loops made before the test (pytest-asyncio's module-
or session-scoped loops) are not changed: the fixture checks them instead.
"""

from __future__ import annotations

import asyncio
import asyncio.events
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .._core._virtual import VirtualLoops, VirtualTimeLoop
from .._model._spans import Trace
from .._tracing import Tracing
from ._pytest_atrace import NamespacePatch

if TYPE_CHECKING:
    from ._pytest_explore import ExploreOptions


def asyncio_loop_scope(item: pytest.Item) -> str | None:
    """The loop scope of a pytest-asyncio test, None for any other test."""
    try:
        from pytest_asyncio import is_async_test
    except ImportError:
        return None
    if not is_async_test(item):
        return None
    return str(getattr(item, "_loop_scope", "function"))


def asyncio_test_loop(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoop | None:
    """The loop pytest-asyncio will run this test on (made now if not yet), else None."""
    scope = asyncio_loop_scope(request.node)
    if scope is None:
        return None
    try:
        runner = request.getfixturevalue(f"_{scope}_scoped_runner")
        loop = runner.get_loop()
    except (pytest.FixtureLookupError, AttributeError):  # another pytest-asyncio layout
        return None
    return loop if isinstance(loop, asyncio.AbstractEventLoop) else None


class RunState:
    """What the plugin knows of one test: its virtual loops, its tracing and its outputs."""

    def __init__(self, item: pytest.Item, virtual: bool) -> None:
        self.item = item
        self.virtual = virtual
        self.loops: list[VirtualTimeLoop] = []
        self.tracing: Tracing | None = None
        self.bound = False
        self.patch: NamespacePatch | None = None
        self.virtual_loops = VirtualLoops(self._on_new_loop) if virtual else None
        self.trace: Trace | None = None
        self.json_path: str | None = None
        self.json_dir: Path | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # pytest-asyncio's, if any
        self.explore: ExploreOptions | None = None  # set when the test explores schedules

    def _on_new_loop(self, loop: VirtualTimeLoop) -> None:
        self.loops.append(loop)
        if self.tracing is not None and self.tracing.active:
            self.bind(loop)

    def bind(self, loop: asyncio.AbstractEventLoop, clock: str = "virtual") -> None:
        """Record on ``loop``'s clock: exact loop time if nothing was recorded yet."""
        assert self.tracing is not None
        recorder = self.tracing.recorder
        if not self.bound and not recorder.records:
            recorder.use_clock(loop.time, clock)
            recorder.origin = loop.time()
        else:
            offset = recorder.clock() - loop.time()
            recorder.use_clock(lambda: loop.time() + offset, clock)
        self.bound = True

    def stop(self) -> Trace | None:
        """Stop recording (idempotent); returns the final trace."""
        if self.tracing is not None and self.trace is None:
            self.trace = self.tracing.stop()
        if self.patch is not None:
            self.patch.restore()
            self.patch = None
        return self.trace
