"""The examples in docs/reference.md run, and their printed results are the real ones."""

from __future__ import annotations

import doctest
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_reference_examples_run_as_doctests() -> None:
    result = doctest.testfile(str(DOCS / "reference.md"), module_relative=False,
                              optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 6
    assert result.failed == 0
