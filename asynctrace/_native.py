"""The optional C extensions, found one way; and where asynctrace's own files are.

Problem: asynctrace's C parts (``_speedups``, ``_cjson``, ``_cflows``, ``_cbars``,
``_ctimeline``) are optional: an install without a C compiler runs the pure-Python path, and the
tests run that path on purpose, with ``ASYNCTRACE_NO_SPEEDUPS=1``.  Every module with a C twin
makes that choice.

Solution: :func:`extension` imports ``asynctrace.<name>``, or gives None when it is not built or
the variable is set (any non-empty value).  :data:`PACKAGE_DIR` is the package's directory, for
the places that tell asynctrace's frames and files from the program's.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

PACKAGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "")
"""asynctrace's directory, with a trailing separator: a path inside it starts with it."""


def extension(name: str) -> ModuleType | None:
    """The C extension ``asynctrace.<name>``; None when it was not built, or when
    ``ASYNCTRACE_NO_SPEEDUPS`` is set (to run and test the pure-Python path)."""
    if os.environ.get("ASYNCTRACE_NO_SPEEDUPS"):
        return None
    try:
        return importlib.import_module(f"{__package__}.{name}")
    except ImportError:  # built without a C compiler
        return None
