"""The JSON timeline's arrows, counter and row names in C (_cflows.c); see _chrome_around.py's
``_flows_python``, ``_counter_python`` and ``_row_labels_python``, their reference."""

from collections.abc import Callable
from typing import Any

def configure(span_type: type, origin_ns: int, max_chars: int, /) -> None: ...
def flows(
    spawned: list[Any],
    join_spans: list[Any],
    by_id: dict[int, Any],
    tids: dict[int, int],
    rows: dict[int, list[Any]],
    after: dict[int, list[Any]],
    spawn_marker: Callable[[int, int, Any], Any],
    join_marker: Callable[[int, int, Any], Any],
    /,
) -> list[tuple[str, int, int | float, int, str, bool]]: ...
def counter_events(
    points: list[tuple[float, int, int]], max_points: int, /
) -> list[dict[str, Any]]: ...
def row_labels(
    tracks: list[int], by_id: dict[int, Any], row_label: Callable[[Any], str], /
) -> list[str]: ...
