"""The cells of a terminal timeline's rows in C (_cbars.c), see _bars.py, its reference; the
depths of a task's calls, see _terminal_rows.py; and the wait profile's running time, see
_waits.py."""

from collections.abc import Sequence
from typing import Any

def paint_rows(
    rows: Sequence[Sequence[Any]],
    awaits: Sequence[Any],
    blocked: Sequence[Any],
    t0: float,
    step: float,
    cols: int,
    /,
) -> list[bytes]: ...
def by_key(keys: Sequence[Any], values: Sequence[Any], /) -> dict[Any, list[Any]]: ...
def call_depths(calls: Sequence[Any], owner: Any, walk: int, /) -> list[int]: ...
def row_bounds(
    rows: Sequence[Sequence[Any]], /
) -> tuple[float | None, float | None, list[tuple[float, float]]]: ...
def running_lengths(
    tasks: Sequence[Any], awaits: Sequence[Any], lo: float, hi: float, /
) -> list[float]: ...
