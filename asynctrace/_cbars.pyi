"""The cells of a terminal timeline row in C (_cbars.c); see _bars.py, its reference."""

from collections.abc import Sequence

def row_levels(
    items: Sequence[tuple[float, float, Sequence[tuple[float, float, bool]]]],
    t0: float,
    step: float,
    cols: int,
    /,
) -> bytes: ...
