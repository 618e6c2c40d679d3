"""asyncio misuse, surfaced: a coroutine never awaited, a task destroyed while pending, a task
exception never retrieved.

Problem: asyncio reports these through the loop's exception handler, as log lines at the
moment a task object is collected, far from where the task ran; a timeline does not show
them and a test cannot check for them.

Solution: while recording, ``BaseEventLoop.call_exception_handler`` notes such a report as a
``misuse`` span of no duration on the task's track, under the task (``asynctrace.misuse``: what
happened; ``asynctrace.misuse.detail``: the exception never retrieved), then hands the report on
unchanged, so asyncio logs it as before.  A coroutine never awaited is noted as Python shows
its ``RuntimeWarning`` (``warnings._showwarnmsg``, after the filters: once per place by
default), on the track where it was dropped, with its name and the warning's place
(``fetch() at scraper.py:31``).  Wrapping ``warnings._warn_unawaited_coroutine`` instead would
see every one, but it warns with ``stacklevel=2``: the warning's place would move into
asynctrace.
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import os
import warnings
from typing import Any

from .._model._spans import DESTROYED_PENDING, NEVER_AWAITED, NEVER_RETRIEVED
from .._native import PACKAGE_DIR
from . import _coro
from ._coro import K_MISUSE, TaskRoot, safe_str

_orig_handler: Any = asyncio.base_events.BaseEventLoop.call_exception_handler
_ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep
_installed = False

_orig_showwarnmsg: Any = warnings._showwarnmsg  # type: ignore[attr-defined]


def _showwarnmsg(msg: Any) -> None:
    if _coro.active:
        _note_warning(msg)
    _orig_showwarnmsg(msg)


def _note_warning(msg: Any) -> None:
    """A ``coroutine '...' was never awaited`` warning being shown: a misuse span."""
    message = msg.message
    text = str(message)
    if not isinstance(message, RuntimeWarning) or not text.startswith("coroutine '"):
        return
    if "' was never awaited" not in text:
        return
    source = getattr(msg, "source", None)
    name = getattr(source, "__qualname__", None) or text.split("'")[1]
    detail = f"{name}() at {os.path.basename(str(msg.filename))}:{msg.lineno}"
    parent, track = _coro.current_parent()
    t = _coro.clock()
    _coro.append((K_MISUSE, _coro.next_id(), parent, track, t, t, _coro.next_id(), NEVER_AWAITED,
                  None, -1, None, detail))  # fmt: skip


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
    made = _made_at(task)
    if made:
        detail = f"{detail}; made at {made}" if detail else f"made at {made}"
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
        warnings._showwarnmsg = _showwarnmsg  # type: ignore[attr-defined]


def uninstall() -> None:
    """Put the loop's exception handler back."""
    global _installed
    if _installed:
        _installed = False
        asyncio.base_events.BaseEventLoop.call_exception_handler = _orig_handler  # type: ignore[method-assign]
        warnings._showwarnmsg = _orig_showwarnmsg  # type: ignore[attr-defined]


def _made_at(task: Any) -> str:
    """``file.py:LINE`` where the task was made, when asyncio's debug mode recorded it."""
    for frame in reversed(getattr(task, "_source_traceback", None) or ()):
        if not frame.filename.startswith((_ASYNCIO_DIR, PACKAGE_DIR)):
            return f"{os.path.basename(frame.filename)}:{frame.lineno}"
    return ""
