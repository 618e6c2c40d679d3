"""The public API is what asynctrace/__init__.py exports, sorted, and nothing more."""

from __future__ import annotations

import subprocess
import sys

import pytest

import asynctrace
import asynctrace.testing


def test_exports_are_pinned_and_sorted() -> None:
    assert asynctrace.__all__ == sorted(asynctrace.__all__)
    assert set(asynctrace.__all__) == {
        "Span",
        "Trace",
        "Tracing",
        "VirtualTimeDeadlock",
        "VirtualTimeLoop",
        "VirtualTimePolicy",
        "instrument",
        "trace",
        "tracing",
        "uninstrument",
        "virtual_time",
    }
    for name in asynctrace.__all__:
        assert getattr(asynctrace, name) is not None
    assert asynctrace.testing.__all__ == sorted(asynctrace.testing.__all__)


def test_importing_asynctrace_imports_no_opentelemetry_and_patches_nothing() -> None:
    code = (
        "import sys, asyncio; gather = asyncio.gather; import asynctrace; "
        "asynctrace.trace; asynctrace.tracing; asynctrace.virtual_time; "
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry'))); "
        "print(asyncio.gather is gather)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["[]", "True"]


def test_importing_asynctrace_alone_does_not_import_asyncio() -> None:
    code = "import sys, asynctrace; print('asyncio' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out == "False\n"


def test_unknown_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        asynctrace.nope  # noqa: B018
