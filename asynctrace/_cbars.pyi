"""The cells of a terminal timeline row in C (_cbars.c); see _bars.py, its reference."""

from collections.abc import Sequence
from typing import Any

def row_levels(
    items: Sequence[tuple[float, float, Any]], t0: float, step: float, cols: int, /
) -> bytes: ...
