"""Compact UTF-8 JSON in C (_cjson.c): _json.py picks ``dumps`` when orjson is not installed,
and _chrome.chrome_json writes a timeline's events with ``timeline_events``."""

from collections.abc import Callable
from typing import Any

def dumps(value: Any, /) -> bytes: ...
def configure_slices(
    reserved: frozenset[str],
    max_chars: int,
    defaults: dict[str, str],
    file_key: str,
    unclamped_key: str,
    span_type: type,
    /,
) -> None: ...
def timeline_events(
    placed: list[Any],
    full: bool,
    fallback: Callable[[Any], dict[str, Any]],
    separator: bytes,
    /,
) -> bytes: ...
def place_rows(
    rows: list[tuple[int, list[Any], list[Any]]],
    after: dict[int, list[Any]],
    full: bool,
    fallback: Callable[..., dict[str, Any]],
    sink: Callable[[bytes], object] | None,
    /,
) -> bytes: ...
def row_names(labels: list[str], tracks: list[Any], /) -> bytes: ...
def group_rows(
    spans: list[Any], spawned_kinds: frozenset[str], /
) -> tuple[dict[int, list[Any]], list[Any]]: ...
