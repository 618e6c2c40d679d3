"""asynctrace: see and test what an asyncio program really does.

Every task, coroutine, ``gather`` and await is recorded as a span; see ``docs/``.

The names below are imported when first used (PEP 562), so that ``import asynctrace`` — which
the pytest plugin does in every pytest session — costs a few milliseconds and imports neither
asyncio nor OpenTelemetry.

PYTEST_DONT_REWRITE: pytest leaves this module's asserts (it has none) as they are, so that
``asynctrace run -m pytest``, which imports asynctrace before pytest starts, does not make pytest
warn that it cannot rewrite the package of a plugin it loads.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._core._decorator import trace
    from ._core._virtual import (
        VirtualTimeDeadlock,
        VirtualTimeLoop,
        VirtualTimePolicy,
        virtual_time,
    )
    from ._model._spans import Span, Trace
    from ._trace_io import format_timeline, load, write_html, write_json
    from ._tracing import Tracing, instrument, tracing, uninstrument

__all__ = [
    "Span",
    "Trace",
    "Tracing",
    "VirtualTimeDeadlock",
    "VirtualTimeLoop",
    "VirtualTimePolicy",
    "format_timeline",
    "instrument",
    "load",
    "trace",
    "tracing",
    "uninstrument",
    "virtual_time",
    "write_html",
    "write_json",
]
__version__ = "0.1.0"

_HOME = {
    "Span": "._model._spans",
    "Trace": "._model._spans",
    "Tracing": "._tracing",
    "instrument": "._tracing",
    "tracing": "._tracing",
    "uninstrument": "._tracing",
    "trace": "._core._decorator",
    "format_timeline": "._trace_io",
    "load": "._trace_io",
    "write_html": "._trace_io",
    "write_json": "._trace_io",
    "VirtualTimeDeadlock": "._core._virtual",
    "VirtualTimeLoop": "._core._virtual",
    "VirtualTimePolicy": "._core._virtual",
    "virtual_time": "._core._virtual",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        msg = f"module 'asynctrace' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
