"""The examples in docs/reference.md run, and their printed results are the real ones."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_reference_examples_run_as_doctests() -> None:
    result = doctest.testfile(
        str(DOCS / "reference.md"), module_relative=False, optionflags=doctest.ELLIPSIS
    )
    assert result.attempted >= 6
    assert result.failed == 0


def test_every_test_that_reliability_md_names_exists() -> None:
    """docs/reliability.md's promises cite tests: each cited test is defined where it says."""

    text = (DOCS / "reliability.md").read_text()
    cited: list[tuple[str, str]] = []
    for cell in re.findall(r"`(tests/test_\w+\.py)::(\w+)`((?:, `::\w+`)*)", text):
        path, first, more = cell
        cited.append((path, first))
        cited += [(path, name) for name in re.findall(r"`::(\w+)`", more)]
    assert len(cited) >= 40
    root = DOCS.parent
    missing = [
        f"{path}::{name}"
        for path, name in cited
        if not re.search(rf"^def {name}\(", (root / path).read_text(), re.MULTILINE)
    ]
    assert not missing
