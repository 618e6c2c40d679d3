"""Arguments and return values as span attributes, capped and with secrets redacted.

Problem: ``@trace(record_args=True)`` (and ``asynctrace run --record-args``) puts a traced
call's arguments and return value on its span, and spans leave the process (JSON files, OTLP
collectors, CI artefacts).  A value can be huge (a 1 GB ``bytes``), its ``repr`` can raise or
take seconds, and some values are secrets (a password, a bearer token, a session cookie).

Solution: values are turned into strings once, at call time on the loop thread (the span MUST
NOT keep the program's objects alive), by a bounded ``repr``: at most :data:`MAX_REPR`
characters, ending with ``…`` when cut; built-in containers are formatted item by item and
stop at the cap (a list of a million items costs as much as one of twenty).  A ``repr`` that
raises gives ``<unrepresentable Foo>``; a type whose ``repr`` once took longer than
:data:`SLOW_REPR` seconds is not asked again (``<Foo: repr skipped, slow>``).
A value is replaced by :data:`REDACTED` when its parameter name, its ``**kwargs`` key or a
``dict`` key above it looks secret (:func:`looks_secret`), and so is the return value of a
function whose name looks secret (``get_token``); on top of that, ``name=value`` and
``'name': value`` pairs with a secret-looking name and URL user info (``//user:pass@``) are
redacted in the text of every ``repr``.  Nothing here runs unless arguments are recorded.
"""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Callable
from typing import Any

#: The attribute key prefix of a recorded argument: ``asynctrace.arg.<parameter name>``.
ARG_PREFIX = "asynctrace.arg."
#: The attribute key of a recorded return value.
RETURN_KEY = "asynctrace.return"
#: The attribute key counting arguments left out past :data:`MAX_ARGS`.
DROPPED_KEY = "asynctrace.args.dropped"
#: Characters kept of one value's ``repr``; a longer one is cut and ends with ``…``.
MAX_REPR = 256
#: Items shown per container, and containers shown nested, at most.
MAX_ITEMS = 16
MAX_DEPTH = 4
#: Arguments recorded per call at most (``**kwargs`` keys count one each).
MAX_ARGS = 32
#: What a secret value is recorded as.
REDACTED = "[redacted]"
#: A parameter, keyword or ``dict`` key whose lower-cased name contains one of these is secret.
SECRET_WORDS = (
    "passw",
    "pwd",
    "secret",
    "token",
    "key",
    "auth",
    "credential",
    "cookie",
    "session",
    "signature",
    "private",
    "bearer",
)
#: Seconds: a type whose ``repr`` took longer than this once is not asked again.
SLOW_REPR = 0.01

_SKIPPED_FIRST = ("self", "cls")
_CUT = "…"
_MAX_NAME = 100
_MAX_CACHED_NAMES = 4096

# `name=value`, `'name': value` or `"name": value`; the name is checked by looks_secret.  The
# value is a quoted string (possibly cut short by the cap, so the closing quote is optional) or
# runs to the next separator.  The lookbehind keeps matching linear on long words.
_PAIR = re.compile(
    r"""(?<![\w.-])(?P<name>[\w.-]+)(?P<q>['"]?)(?P<sep>\s*[=:]\s*)"""
    r"""(?P<value>\[redacted\]|b?'(?:[^'\\]|\\.)*'?|b?"(?:[^"\\]|\\.)*"?|[^\s,)\]}>]+)"""
)
_USERINFO = re.compile(r"(//)[^/\s@'\"]+@")
# Searched in lower-cased text: a case-insensitive pattern is ten times slower.
_SECRET_WORD = re.compile("|".join(SECRET_WORDS))
_secret_names: dict[str, bool] = {}


def looks_secret(name: object) -> bool:
    """True when ``name`` (a parameter, keyword or key) contains a :data:`SECRET_WORDS` word."""
    if not isinstance(name, str):
        return False
    found = _secret_names.get(name)
    if found is None:
        found = _SECRET_WORD.search(name.lower()) is not None
        if len(_secret_names) >= _MAX_CACHED_NAMES:
            _secret_names.clear()
        _secret_names[name] = found
    return found


def scrub(text: str) -> str:
    """``text`` with secret-looking ``name=value`` pairs and URL user info redacted."""
    if "@" in text:
        text = _USERINFO.sub(r"\1" + REDACTED + "@", text)
    if _SECRET_WORD.search(text.lower()) is None:
        return text
    return _PAIR.sub(_redact_pair, text)


def _redact_pair(match: re.Match[str]) -> str:
    value = match.group("value")
    if not looks_secret(match.group("name")) or value == REDACTED:
        return match.group(0)
    return match.group("name") + match.group("q") + match.group("sep") + REDACTED


_TEXT, _PLAIN, _CONTAINER = 1, 2, 3
_KINDS: dict[type, int] = {
    **dict.fromkeys((str, bytes, bytearray), _TEXT),
    **dict.fromkeys((int, float, bool, complex, type(None)), _PLAIN),
    **dict.fromkeys((dict, list, tuple, set, frozenset), _CONTAINER),
}
_BRACKETS: dict[type, tuple[str, str]] = {
    list: ("[", "]"),
    tuple: ("(", ")"),
    set: ("{", "}"),
    frozenset: ("frozenset({", "})"),
}
_LIMIT = MAX_REPR + 8  # formatting stops past this many characters: the rest would be cut
_slow_types: set[type] = set()


def _type_name(cls: type) -> str:
    try:
        return str(cls.__qualname__)
    except Exception:  # a metaclass with a strange __qualname__
        return "object"


def _format(x: object, depth: int, budget: list[int]) -> str:
    """A bounded ``repr``: built-in containers item by item (``dict`` values under secret keys
    redacted) until ``budget[0]`` characters are spent; any other object by its own ``repr``."""
    cls = type(x)  # not x.__class__, which a proxy can fake
    kind = _KINDS.get(cls)
    if kind == _TEXT:
        text = repr(x[:_LIMIT])  # type: ignore[index]
    elif kind == _PLAIN:
        text = repr(x)
    elif kind == _CONTAINER:
        if depth >= MAX_DEPTH:
            opening, closing = _BRACKETS.get(cls, ("{", "}"))
            text = f"{opening}...{closing}"
        else:
            text = _format_items(x, cls, depth, budget)
    elif cls in _slow_types:
        text = f"<{_type_name(cls)}: repr skipped, slow>"
    else:
        start = time.perf_counter()
        try:
            text = repr(x)[: _LIMIT + 1]
        except Exception:  # a user __repr__ that raises MUST NOT reach the program
            text = f"<unrepresentable {_type_name(cls)}>"
        if time.perf_counter() - start > SLOW_REPR:
            _slow_types.add(cls)
    budget[0] -= len(text)
    return text


def _format_items(x: Any, cls: type, depth: int, budget: list[int]) -> str:
    if not x:
        return "set()" if cls is set else "frozenset()" if cls is frozenset else repr(x)
    parts = []
    items = x.items() if cls is dict else x
    for i, item in enumerate(items):
        if i >= MAX_ITEMS or budget[0] <= 0:
            parts.append("...")
            break
        if cls is dict:
            key, value = item
            shown = REDACTED if looks_secret(key) else _format(value, depth + 1, budget)
            parts.append(f"{_format(key, depth + 1, budget)}: {shown}")
        else:
            parts.append(_format(item, depth + 1, budget))
        budget[0] -= 2
    if cls is dict:
        return "{" + ", ".join(parts) + "}"
    if cls is tuple and len(x) == 1:
        return f"({parts[0]},)"
    opening, closing = _BRACKETS[cls]
    return opening + ", ".join(parts) + closing


def safe_repr(value: object) -> str:
    """``repr(value)`` bounded to :data:`MAX_REPR` characters, scrubbed, printable; never raises."""
    try:
        text = _format(value, 0, [_LIMIT])
    except Exception:  # a container changed by another thread while it was read, a huge int
        return f"<unrepresentable {_type_name(type(value))}>"
    cut = len(text) > MAX_REPR
    if cut:
        text = text[:MAX_REPR]
    text = scrub(text)
    if not text.isprintable():
        # Control characters and lone surrogates from a user __repr__ would break a terminal
        # line or a UTF-8 file: escape them the way repr() escapes them in a str.
        text = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
    if cut or len(text) > MAX_REPR:
        text = text[: MAX_REPR - 1] + _CUT
    return text


def _key(name: str) -> str:
    if len(name) > _MAX_NAME:
        name = name[: _MAX_NAME - 1] + _CUT
    return ARG_PREFIX + name


class ArgNames:
    """How to name the arguments of one function's calls; built once, when it is decorated.

    Functions whose parameters are all plain (positional-or-keyword) pair names with values
    directly; the others go through ``inspect.Signature.bind_partial``.
    """

    __slots__ = ("_names", "_signature", "_skip")

    def __init__(self, fn: Callable[..., Any]) -> None:
        try:
            sig: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            sig = None
        params = list(sig.parameters.values()) if sig is not None else []
        self._skip = 1 if params and params[0].name in _SKIPPED_FIRST else 0
        plain = all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params)
        self._signature = None if plain else sig
        self._names = tuple(p.name for p in params) if sig is not None else ()

    def attributes(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, object]:
        """The attributes of one call's arguments; never raises.

        ``self`` and ``cls`` (as the first parameter) are left out; ``*args`` is one attribute;
        each ``**kwargs`` key is an attribute of its own.  Values as passed (defaults not
        filled in).
        """
        try:
            items = self._items(args, kwargs)
        except Exception:  # a signature that does not match the call: name by position
            items = [(str(i), v) for i, v in enumerate(args)] + list(kwargs.items())
        attrs: dict[str, object] = {}
        for i, (name, value) in enumerate(items):
            if i >= MAX_ARGS:
                attrs[DROPPED_KEY] = len(items) - MAX_ARGS
                break
            attrs[_key(name)] = REDACTED if looks_secret(name) else safe_repr(value)
        return attrs

    def _items(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[tuple[str, Any]]:
        sig = self._signature
        if sig is None:
            if len(args) > len(self._names):
                raise TypeError
            items = list(zip(self._names, args, strict=False))
            items += kwargs.items()
            return items[self._skip :] if self._skip and args else items
        bound = sig.bind_partial(*args, **kwargs).arguments
        params = sig.parameters
        items = []
        for name, value in bound.items():
            if self._skip and name == self._names[0]:
                continue
            if params[name].kind is inspect.Parameter.VAR_KEYWORD:
                items.extend((str(k), v) for k, v in value.items())
            else:
                items.append((name, value))
        return items
