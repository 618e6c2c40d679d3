"""Held locks and semaphores: ``held`` spans from acquire to release, on the holder's track.

Problem: a ``Semaphore(5)`` limits how many fetches are *inside* it, yet all twenty fetch tasks
are alive from the start: the limit is invisible on a timeline of tasks, and
``assert_max_concurrency("fetch", 5)`` fails although at most five ever held it.

Solution: while recording, ``Lock.acquire``/``release`` and ``Semaphore.acquire``/``release``
(``BoundedSemaphore`` and ``Condition`` too: a Condition's lock is named for the Condition)
note when a task comes to hold the primitive and when it lets go: a ``held`` span named
``holding Semaphore``, under the traced call that acquired it, with the primitive's kind and
name (``asynctrace.primitive``, ``asynctrace.primitive.name``: the variable or attribute it is
found under in the acquiring frame, else ``Semaphore#2``).  A semaphore is not owned: a release
ends the releasing task's oldest hold of it, else the oldest hold of it at all.  The wrappers
cost nothing where no primitive is used, one Python call per acquire and release where one is,
and their awaits keep their names (``Semaphore.acquire``).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import sys
import weakref
from types import FrameType
from typing import Any

from . import _coro
from ._coro import K_HELD

_locks = asyncio.locks
_orig_lock_acquire: Any = _locks.Lock.acquire
_orig_lock_release: Any = _locks.Lock.release
_orig_sem_acquire: Any = _locks.Semaphore.acquire
_orig_sem_release: Any = _locks.Semaphore.release
_orig_condition_init: Any = _locks.Condition.__init__
_LOCKS_FILE = _orig_lock_acquire.__code__.co_filename
_FRAMES_SEARCHED = 6

# Open holds by id -> the record so far (ended: appended; still open: _build's snapshot).
open_holds: dict[int, tuple[Any, ...]] = {}
_holds_of: weakref.WeakKeyDictionary[Any, list[int]] = weakref.WeakKeyDictionary()
_names: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_condition_of: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_numbers: collections.Counter[str] = collections.Counter()
_installed = False


async def _lock_acquire(self: Any) -> bool:
    result: bool = await _orig_lock_acquire(self)
    if _coro.active:
        _start(self, "Lock")
    return result


def _lock_release(self: Any) -> None:
    _orig_lock_release(self)
    if open_holds:
        _end(self)


async def _semaphore_acquire(self: Any) -> bool:
    result: bool = await _orig_sem_acquire(self)
    if _coro.active:
        _start(self, "Semaphore")
    return result


def _semaphore_release(self: Any) -> None:
    _orig_sem_release(self)
    if open_holds:
        _end(self)


def _condition_init(self: Any, lock: Any = None) -> None:
    _orig_condition_init(self, lock)
    if lock is None:  # its own lock: holding it is holding the Condition
        _condition_of[self._lock] = self


# What an await on the wrappers waits on: the names asyncio's own methods give.
PUBLIC_NAMES = {
    _lock_acquire.__code__: "Lock.acquire",
    _semaphore_acquire.__code__: "Semaphore.acquire",
}
# The code of asyncio's own method that each wrapper stands in for (a task made of one is named
# and placed as asyncio's).
STANDS_IN_FOR = {
    _lock_acquire.__code__: _orig_lock_acquire.__code__,
    _semaphore_acquire.__code__: _orig_sem_acquire.__code__,
}


def _start(primitive: Any, kind: str) -> None:
    parent, track = _coro.current_parent()
    condition = _condition_of.get(primitive)
    shown = condition if condition is not None else primitive
    if condition is not None:
        kind = "Condition"
    name = _names.get(shown)
    if name is None:
        name = _find_name(shown, sys._getframe(2)) or _number(kind)
        _names[shown] = name
    lasti = -1
    root = _coro.current_root.get()
    if root is not None and root._task_name is not None:
        top = root._top
        frame = top._coro.cr_frame if top._native else None
        if frame is not None:
            lasti = frame.f_lasti
    sid = _coro.next_id()
    open_holds[sid] = (K_HELD, sid, parent, track, _coro.clock(), None, None, kind, None, lasti,
                       None, name)  # fmt: skip
    holds = _holds_of.get(primitive)
    if holds is None:
        holds = _holds_of[primitive] = []
    holds.append(sid)


def _end(primitive: Any) -> None:
    holds = _holds_of.get(primitive)
    if not holds:
        return  # acquired before recording began
    _parent, track = _coro.current_parent()
    sid = next((h for h in holds if open_holds[h][3] == track), holds[0])
    holds.remove(sid)
    record = open_holds.pop(sid)
    if _coro.active:
        _coro.append((*record[:5], _coro.clock(), _coro.next_id(), *record[7:]))


def reset() -> None:
    """Forget the holds of an earlier recording (a new one numbers its spans from 1)."""
    open_holds.clear()
    _holds_of.clear()
    _names.clear()
    _numbers.clear()


def _find_name(primitive: Any, frame: FrameType | None) -> str | None:
    """The name the primitive has in the first frame outside asyncio: a variable, a closure
    variable, or an attribute of ``self``."""
    for _ in range(_FRAMES_SEARCHED):
        if frame is None:
            return None
        if frame.f_code.co_filename != _LOCKS_FILE and frame.f_code.co_filename != __file__:
            break
        frame = frame.f_back
    else:
        return None
    if frame is None:
        return None
    names = frame.f_locals
    for key, value in names.items():
        if value is primitive:
            return str(key)
    owner = names.get("self")
    for key, value in getattr(owner, "__dict__", {}).items():
        if value is primitive:
            return f"self.{key}"
    return None


def _number(kind: str) -> str:
    _numbers[kind] += 1
    return f"{kind}#{_numbers[kind]}"


def install() -> None:
    """Patch the primitives (idempotent); they record only while a recorder is on."""
    global _installed
    if _installed:
        return
    _installed = True
    for wrapper, wrapped in (
        (_lock_acquire, _orig_lock_acquire),
        (_lock_release, _orig_lock_release),
        (_semaphore_acquire, _orig_sem_acquire),
        (_semaphore_release, _orig_sem_release),
        (_condition_init, _orig_condition_init),
    ):
        functools.update_wrapper(wrapper, wrapped)  # the same name, doc and signature
    _locks.Lock.acquire = _lock_acquire  # type: ignore[method-assign,assignment]
    _locks.Lock.release = _lock_release  # type: ignore[method-assign]
    _locks.Semaphore.acquire = _semaphore_acquire  # type: ignore[method-assign,assignment]
    _locks.Semaphore.release = _semaphore_release  # type: ignore[method-assign]
    _locks.Condition.__init__ = _condition_init  # type: ignore[method-assign]


def uninstall() -> None:
    """Put the primitives back as they were."""
    global _installed
    if not _installed:
        return
    _installed = False
    _locks.Lock.acquire = _orig_lock_acquire  # type: ignore[method-assign]
    _locks.Lock.release = _orig_lock_release  # type: ignore[method-assign]
    _locks.Semaphore.acquire = _orig_sem_acquire  # type: ignore[method-assign]
    _locks.Semaphore.release = _orig_sem_release  # type: ignore[method-assign]
    _locks.Condition.__init__ = _orig_condition_init  # type: ignore[method-assign]
