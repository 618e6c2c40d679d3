"""Compact UTF-8 JSON in C (_cjson.c); _json.py picks it when orjson is not installed."""

from typing import Any

def dumps(value: Any, /) -> bytes: ...
