"""asyncio misuse, surfaced: a task destroyed while pending, a task exception never retrieved.

Problem: asyncio reports these through the loop's exception handler, as log lines at the
moment a task object is collected, far from where the task ran; a timeline does not show
them and a test cannot check for them.

Solution: while recording, ``BaseEventLoop.call_exception_handler`` notes such a report as a
``misuse`` span of no duration on the task's track, under the task (``asynctrace.misuse``: what
happened; ``asynctrace.misuse.detail``: the exception never retrieved), then hands the report on
unchanged, so asyncio logs it as before.  A coroutine never awaited is not noted: CPython warns
of it from ``warnings._warn_unawaited_coroutine`` with ``stacklevel=2``, and a wrapper there
would move the warning's reported location into asynctrace.
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
from typing import Any

from . import _coro
from ._coro import K_MISUSE, TaskRoot, safe_str

_orig_handler: Any = asyncio.base_events.BaseEventLoop.call_exception_handler
_installed = False

DESTROYED_PENDING = "task destroyed while pending"
NEVER_RETRIEVED = "task exception never retrieved"


def _call_exception_handler(self: Any, context: dict[str, Any]) -> None:
    if _coro.active:
        _note(context)
    _orig_handler(self, context)


def _note(context: dict[str, Any]) -> None:
    message = str(context.get("message", ""))
    if message.startswith("Task was destroyed but it is pending"):
        what, task, detail = DESTROYED_PENDING, context.get("task"), ""
    elif message.endswith("exception was never retrieved"):
        what, task = NEVER_RETRIEVED, context.get("future")
        exc = context.get("exception")
        detail = "" if exc is None else f"{type(exc).__qualname__}: {safe_str(exc)}"
    else:
        return
    coro = task.get_coro() if isinstance(task, asyncio.Task) else None
    if coro.__class__ is not TaskRoot:
        return  # not a task asynctrace saw start
    sid = coro._sid
    t = _coro.clock()
    if what == DESTROYED_PENDING and coro._task_name is not None:
        coro._end(GeneratorExit(), t)  # its span ends here: the task will never run again
    _coro.append((K_MISUSE, _coro.next_id(), sid, sid, t, t, _coro.next_id(), what, None, -1,
                  None, detail))  # fmt: skip


def install() -> None:
    """Patch the loop's exception handler (idempotent); it notes only while recording."""
    global _installed
    if not _installed:
        _installed = True
        asyncio.base_events.BaseEventLoop.call_exception_handler = _call_exception_handler  # type: ignore[method-assign]


def uninstall() -> None:
    """Put the loop's exception handler back."""
    global _installed
    if _installed:
        _installed = False
        asyncio.base_events.BaseEventLoop.call_exception_handler = _orig_handler  # type: ignore[method-assign]
