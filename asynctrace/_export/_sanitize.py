"""Text from the traced program made safe for every output.

Problem: span names, task and thread names, attribute values and exception messages come from
the traced program, so they are hostile input: a 1 MB string, a lone surrogate (``"\\udc80"``,
which UTF-8 cannot encode and protobuf refuses), control characters that move a terminal's
cursor (``"\\x1b[2J"``), bidi overrides (U+202E) that reorder what a reader sees.

Solution: each output writer (JSON timeline, terminal, HTML page, OTLP) passes that text through
the helpers here at OUTPUT time, never on the recording path: :func:`cap` cuts a string longer
than :data:`MAX_CHARS` and says how much it cut; :func:`utf8` replaces lone surrogates by U+FFFD;
:func:`visible` shows control and format characters as escapes (``\\x1b``, ``\\u202e``) where a
human reads the text.  Each helper returns its argument itself when there is nothing to do, so
the common case costs one or two C-level checks.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "MAX_CHARS",
    "cap",
    "clean",
    "clean_value",
    "no_bidi",
    "scrub",
    "shown",
    "utf8",
    "visible",
]

MAX_CHARS = 4096
"""The most characters of one name, attribute value or error message that any output keeps.

A longer string is cut to its first ``MAX_CHARS`` characters followed by
``…[truncated N chars]`` (N: how many were cut).
"""

# Patterns, not compiled: ``re`` compiles each on its first use (text that is not plain ASCII)
# and keeps it; compiling them at import cost every run about 0.4 ms.
_SURROGATE = "[\ud800-\udfff]"
# C0 and C1 controls, DEL, and the format characters that reorder or hide text (bidi
# embeddings, overrides and isolates, zero-width joiners, the BOM, line/paragraph separators).
_INVISIBLE = "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]"


_BIDI = "[\u202a-\u202e\u2066-\u2069]"


def cap(text: str, limit: int = MAX_CHARS) -> str:
    """``text`` cut to ``limit`` characters, with ``…[truncated N chars]`` when it was longer."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[truncated {len(text) - limit} chars]"


def utf8(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD, so that it encodes as UTF-8."""
    if text.isascii():
        return text
    return re.sub(_SURROGATE, "\ufffd", text)


def clean(text: str) -> str:
    """:func:`cap` then :func:`utf8`: what a machine-readable output (JSON, OTLP) may carry."""
    if len(text) <= MAX_CHARS and text.isascii():  # nearly every text: no call for it
        return text
    return utf8(cap(text))


def visible(text: str, keep: str = "") -> str:
    """Control, format and surrogate characters as visible escapes: ``\\x1b``, ``\\u202e``.

    Args:
        text: the text to show.
        keep: characters left as they are (the HTML page keeps ``"\\n\\t"`` in messages).
    """
    if text.isascii() and text.isprintable():
        return text
    text = re.sub(_SURROGATE, _escape, text)
    if keep:
        return re.sub(_INVISIBLE, lambda m: m.group() if m.group() in keep else _escape(m), text)
    return re.sub(_INVISIBLE, _escape, text)


def no_bidi(text: str) -> str:
    """Bidi embedding, override and isolate characters (U+202A-202E, U+2066-2069) as escapes.

    For outputs that show text through the DOM, where other control characters are inert but
    these still reorder what the reader sees (``"\u202etxt.exe"`` shows as ``exe.txt``).
    """
    if text.isascii():
        return text
    return re.sub(_BIDI, _escape, text)


def shown(text: str) -> str:
    """A path or word for a one-line message: as is when plain, else quoted with escapes."""
    if text and text.isprintable() and text == text.strip():
        return text
    return repr(text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean_value(value: object) -> object:
    """An attribute value with :func:`clean` applied to its strings (and to a list's strings)."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, (list, tuple)) and any(isinstance(v, str) for v in value):
        return [clean(v) if isinstance(v, str) else v for v in value]
    return value


def scrub(obj: Any) -> Any:
    """A copy of a JSON-like document (dicts, lists, scalars) with :func:`utf8` on every string.

    For the rare document that failed to encode: keys too, at any depth; recursion is bounded
    by the documents asynctrace builds (events whose args hold scalars or flat lists).
    """
    if isinstance(obj, str):
        return utf8(obj)
    if isinstance(obj, dict):
        return {scrub(k) if isinstance(k, str) else k: scrub(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub(v) for v in obj]
    return obj
