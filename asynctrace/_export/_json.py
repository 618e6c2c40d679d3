"""Compact UTF-8 JSON for the files asynctrace writes, fast on a bare install.

Problem: a timeline is tens of thousands of small dicts.  ``json.dumps`` with options makes a
new encoder per call, orjson is optional, and looking an optional module up per call (a failed
import searches ``sys.path`` every time) cost seconds per run on a bare install.

Solution: the encoder is chosen once per process: orjson when installed, else the C
accelerator's encoder (``_cjson.dumps``, built with asynctrace), else one reused
:class:`json.JSONEncoder`.  All three give the same JSON meaning: compact, UTF-8, non-ASCII
kept, ``str()`` of anything else.  A string with a lone surrogate (a name decoded with
``surrogateescape``) is written with U+FFFD in its place, since strict readers (orjson,
protobuf's JSON) refuse an escaped lone surrogate.
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Callable
from typing import Any

from .._native import extension
from ._sanitize import scrub

__all__ = ["available_encoders", "dumps", "dumps_strict"]

_Dumps = Callable[[Any], bytes]


def available_encoders() -> dict[str, _Dumps]:
    """The encoders installed here, fastest first: ``orjson``, ``c`` (``_cjson``), ``json``."""
    found: dict[str, _Dumps] = {}
    try:
        orjson = importlib.import_module("orjson")
    except ImportError:
        pass
    else:
        orjson_dumps = orjson.dumps

        def with_orjson(doc: Any) -> bytes:
            data: bytes = orjson_dumps(doc, default=str)
            return data

        found["orjson"] = with_orjson
    cjson = extension("_cjson")
    if cjson is not None:
        found["c"] = cjson.dumps
    stdlib = json.JSONEncoder(
        separators=(",", ":"), ensure_ascii=False, check_circular=False, default=str
    )

    def with_json(doc: Any) -> bytes:
        return stdlib.encode(doc).encode("utf-8")

    found["json"] = with_json
    return found


@functools.cache
def _encoder() -> _Dumps:
    """The fastest encoder here, looked up once per process."""
    return next(iter(available_encoders().values()))


_SLOW = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def dumps_strict(doc: Any) -> bytes:
    """``doc`` as compact UTF-8 JSON bytes by the fastest encoder here, which raises
    TypeError or ValueError for what it refuses (see :func:`dumps`)."""
    return _encoder()(doc)


def dumps(doc: Any) -> bytes:
    """``doc`` as compact UTF-8 JSON bytes."""
    try:
        return dumps_strict(doc)
    except (TypeError, ValueError):
        # orjson and _cjson refuse a lone surrogate (TypeError, UnicodeEncodeError), orjson an
        # int past 64 bits, _cjson a non-str key or deep nesting: json writes them, with
        # U+FFFD for lone surrogates
        return _SLOW.encode(scrub(doc)).encode("utf-8")
