"""The expression a bare-future await waited on, read from the program's source line.

Problem: an await on a bare ``Future`` (a library's ``await resp.json()`` whose awaitable is not
a coroutine, a protocol's waiter) is only ever named ``Future``: the future says nothing of who
made it, and the awaitable that yielded it may hide its coroutine (a ``coroutine_wrapper``).

Solution: the await's line is known (``code.file.path``, ``code.line.number``), so the build
reads it (:mod:`linecache`, at export time, off the event loop) and takes the expression after
``await``, up to where it ends on that line: ``resp.json()``.  The span is then named
``Future (resp.json())``; ``asynctrace.awaited`` stays ``Future``.  A line with no ``await``
but an ``async for`` (the loop's ``__anext__`` awaited a future inside an async generator) gives
the loop's header: ``Future (async for row in rows(db))``.  No source (a REPL, a file gone),
neither on the line, or an expression that goes on to another line: the name stays.
"""

from __future__ import annotations

import linecache

__all__ = ["await_expression"]

MAX_EXPRESSION = 60
_OPEN, _CLOSE = "([{", ")]}"


def await_expression(path: object, line: object) -> str | None:
    """The expression after the last ``await`` on ``path``'s line ``line``; on a line without
    one, the header of the ``async for`` loop on it (``async for row in cursor``: its
    ``__anext__`` awaited); else None."""
    if not isinstance(path, str) or not isinstance(line, int) or line < 1:
        return None
    text = linecache.getline(path, line)
    at = _keyword(text, "await ")
    expression = _balanced(text[at + 6 :]) if at >= 0 else _async_for(text)
    if not expression:
        return None
    if len(expression) > MAX_EXPRESSION:
        expression = expression[: MAX_EXPRESSION - 1] + "…"
    return expression


def _keyword(text: str, word: str) -> int:
    """Where the last ``word`` on the line starts as a word of its own (not ``xawait``), or -1."""
    at = text.rfind(word)
    if at > 0 and (text[at - 1].isalnum() or text[at - 1] == "_"):
        return -1
    return at


def _async_for(text: str) -> str | None:
    """``async for TARGET in ITERABLE`` of a loop or comprehension on the line, or None."""
    at = _keyword(text, "async for ")
    if at < 0:
        return None
    start = at + len("async for ")
    within = text.find(" in ", start)
    if within < 0:
        return None
    iterable = _balanced(text[within + 4 :])
    target = " ".join(text[start:within].split())
    if not iterable or not target:
        return None
    return f"async for {target} in {iterable}"


def _balanced(text: str) -> str | None:
    """``text`` up to where an expression that starts it ends (a closing bracket, comma or colon
    at depth 0, a comment, or the line's end; strings are skipped whole), stripped; None if it
    goes on to the next line."""
    depth = 0
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            if depth == 0:
                break
            depth -= 1
        elif ch == "#" or (depth == 0 and ch in ",:;"):
            break
        i += 1
    else:
        if depth or quote:
            return None
    return text[:i].strip()
