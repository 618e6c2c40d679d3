"""The cells of a terminal timeline row in C (_cbars.c), see _bars.py, its reference; and the
wait profile's running time, see _waits.py."""

from collections.abc import Sequence
from typing import Any

def row_levels(
    items: Sequence[tuple[float, float, Any]], t0: float, step: float, cols: int, /
) -> bytes: ...
def running_lengths(
    tasks: Sequence[Any], awaits: Sequence[Any], lo: float, hi: float, /
) -> list[float]: ...
