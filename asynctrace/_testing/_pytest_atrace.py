"""The ``atrace`` fixture's object, and the tracing of a test's own coroutine functions.

Problem: a test that awaits ``blog_gather.main()`` should see ``task3`` (awaited directly, not
a task) as a span without decorating it, yet the plugin MUST NOT change modules for tests that
do not use the fixture, nor take over the import of test modules (pytest rewrites their
``assert`` statements in its own import hook).

Solution: while the fixture is active, the coroutine functions of the test module and of every
already imported module whose file is under pytest's rootdir (not an installed package, not
asynctrace) are replaced in their module namespace and classes by traced wrappers (``auto``,
which keeps ``inspect.iscoroutinefunction`` true); the originals are put back at teardown.
A name bound with ``from module import f`` is replaced too (one wrapper per function), so the
test module's calls are traced.  What it CANNOT reach: coroutine functions defined inside other
functions, modules imported during the test, and references held elsewhere (a dict, a
``functools.partial``, a callback registered at import time): decorate those with
``@asynctrace.trace``.
"""

from __future__ import annotations

import inspect
import os
import sys
import types
from collections.abc import Iterable, Sequence
from typing import Any

from .. import testing
from .._core._autotrace import ProgramFinder, auto
from .._core._decorator import is_traced
from .._model._spans import Span, Trace
from .._tracing import Tracing
from ..testing import SpanRef

# (namespace dict or class, attribute name, original value, wrapped value)
_Patch = tuple[Any, str, object, object]


class NamespacePatch:
    """Traced wrappers put into modules' namespaces and classes; :meth:`restore` undoes it."""

    def __init__(self, roots: Sequence[str]) -> None:
        self._finder = ProgramFinder(roots)
        self._wrappers: dict[int, Any] = {}
        self._patches: list[_Patch] = []

    def _program_function(self, value: object) -> bool:
        if not (inspect.isfunction(value) and inspect.iscoroutinefunction(value)):
            return False
        if is_traced(value):
            return False
        return self._finder.is_program_file(value.__code__.co_filename)

    def _wrapped(self, fn: Any) -> Any:
        wrapper = self._wrappers.get(id(fn))
        if wrapper is None:
            wrapper = auto(fn)
            self._wrappers[id(fn)] = wrapper
        return wrapper

    def program_modules(self, extra: Iterable[types.ModuleType] = ()) -> list[types.ModuleType]:
        """``extra`` plus the imported modules whose file is a program file (under the roots)."""
        found = {id(m): m for m in extra}
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if isinstance(path, str) and self._finder.is_program_file(path):
                found.setdefault(id(module), module)
        return list(found.values())

    def apply(self, modules: Iterable[types.ModuleType]) -> int:
        """Wrap the program coroutine functions bound in ``modules``; returns how many names."""
        before = len(self._patches)
        for module in modules:
            namespace = vars(module)
            for name, value in list(namespace.items()):
                if self._program_function(value):
                    self._set(namespace, name, value, self._wrapped(value))
                elif isinstance(value, type) and value.__module__ == module.__name__:
                    self._apply_class(value)
        return len(self._patches) - before

    def _apply_class(self, cls: type) -> None:
        for attr, member in list(vars(cls).items()):
            if self._program_function(member):
                self._set(cls, attr, member, self._wrapped(member))
            elif isinstance(member, (staticmethod, classmethod)):
                inner = member.__func__
                if self._program_function(inner):
                    self._set(cls, attr, member, type(member)(self._wrapped(inner)))

    def _set(self, owner: Any, name: str, original: object, wrapped: object) -> None:
        try:
            if isinstance(owner, dict):
                owner[name] = wrapped
            else:
                setattr(owner, name, wrapped)
        except (AttributeError, TypeError):  # a read-only class: leave it untraced
            return
        self._patches.append((owner, name, original, wrapped))

    def restore(self) -> None:
        """Put the originals back where the wrappers still are (idempotent)."""
        while self._patches:
            owner, name, original, wrapped = self._patches.pop()
            try:
                if isinstance(owner, dict):
                    if owner.get(name) is wrapped:
                        owner[name] = original
                elif vars(owner).get(name) is wrapped:
                    setattr(owner, name, original)
            except (AttributeError, TypeError):
                pass
        self._wrappers.clear()


def default_roots(rootdir: str, test_file: str | None) -> list[str]:
    """The directories whose modules count as the program: rootdir and the test's directory."""
    roots = [rootdir]
    if test_file is not None:
        roots.append(os.path.dirname(os.path.abspath(test_file)))
    return roots


class ATrace:
    """What the ``atrace`` fixture gives a test: its recorded spans, queries and assertions.

    Every assertion is the function of the same name in :mod:`asynctrace.testing`, applied to
    the spans recorded so far in this test (a fresh snapshot at each call); a failure raises
    :class:`~asynctrace.testing.TraceAssertionError`, whose report the plugin completes with
    the path of a JSON timeline.
    """

    def __init__(self, tracing: Tracing, nodeid: str) -> None:
        self._tracing = tracing
        self.nodeid = nodeid

    def __repr__(self) -> str:
        state = "recording" if self._tracing.active else "stopped"
        return f"<atrace {self.nodeid!r} {state}, clock={self.clock}>"

    @property
    def trace(self) -> Trace:
        """The spans recorded so far in this test (final once the test has ended)."""
        return self._tracing.trace

    @property
    def clock(self) -> str:
        """``"virtual"`` (the loop's virtual time) or ``"monotonic"``."""
        return self._tracing.recorder.clock_name

    def spans(
        self, name_glob: str | None = None, kind: str | None = None, **attributes: object
    ) -> list[Span]:
        """The spans matching a name or glob, a kind and attribute values, in start order."""
        return testing.find_spans(self, name_glob, kind, **attributes)

    def span(self, name: str, kind: str | None = None) -> Span:
        """The one span matching ``name``; fails listing the spans that exist otherwise."""
        __tracebackhide__ = True
        return testing.find_span(self, name, kind)

    def assert_overlap(self, *spans: SpanRef) -> None:
        """Every pair of the spans overlaps (see :func:`asynctrace.testing.assert_overlap`)."""
        __tracebackhide__ = True
        testing.assert_overlap(self, *spans)

    def assert_sequential(self, *spans: SpanRef) -> None:
        """Each span ends before the next starts (:func:`asynctrace.testing.assert_sequential`)."""
        __tracebackhide__ = True
        testing.assert_sequential(self, *spans)

    def assert_order(self, *spans: SpanRef, by: str = "start") -> None:
        """The spans start (or end) in this order (:func:`asynctrace.testing.assert_order`)."""
        __tracebackhide__ = True
        testing.assert_order(self, *spans, by=by)

    def assert_within(self, child: SpanRef, parent: SpanRef) -> None:
        """``child`` lies inside ``parent`` in time (:func:`asynctrace.testing.assert_within`)."""
        __tracebackhide__ = True
        testing.assert_within(self, child, parent)

    def assert_duration(
        self, span: SpanRef, seconds: float, tolerance: float | None = None
    ) -> None:
        """The span lasted ``seconds`` (:func:`asynctrace.testing.assert_duration`)."""
        __tracebackhide__ = True
        testing.assert_duration(self, span, seconds, tolerance)

    def assert_max_concurrency(
        self, pattern: SpanRef | Iterable[SpanRef], n: int, *, kind: str | None = None
    ) -> None:
        """At most ``n`` matches alive at once (see ``asynctrace.testing``)."""
        __tracebackhide__ = True
        testing.assert_max_concurrency(self, pattern, n, kind=kind)

    def assert_min_concurrency(
        self, pattern: SpanRef | Iterable[SpanRef], n: int, *, kind: str | None = None
    ) -> None:
        """At least ``n`` matches alive at some moment (see ``asynctrace.testing``)."""
        __tracebackhide__ = True
        testing.assert_min_concurrency(self, pattern, n, kind=kind)

    def assert_tree(self, outline: str, *, exact: bool = False) -> None:
        """The span tree contains the outline (:func:`asynctrace.testing.assert_tree`)."""
        __tracebackhide__ = True
        testing.assert_tree(self, outline, exact=exact)

    def critical_path(self, span: SpanRef | None = None) -> list[Span]:
        """The spans whose ends set ``span``'s end (default: the test's run), in time order."""
        return testing.critical_path(self, span)

    def assert_no_misuse(self) -> None:
        """No task destroyed pending, no task exception never retrieved (``testing``)."""
        __tracebackhide__ = True
        testing.assert_no_misuse(self)

    def assert_no_blocking(self, threshold: float | None = None) -> None:
        """No step held the loop (longer than ``threshold``; see ``asynctrace.testing``)."""
        __tracebackhide__ = True
        testing.assert_no_blocking(self, threshold)

    def assert_critical_path(self, *spans: SpanRef) -> None:
        """The spans are on the critical path, in this order (see ``asynctrace.testing``)."""
        __tracebackhide__ = True
        testing.assert_critical_path(self, *spans)
