"""Tracing a program's own coroutines without edits: an import hook and a script runner.

Problem: ``asynctrace run script.py`` must give a ``coroutine`` span to every ``async def`` of
the program (nested functions and methods included) but not to the standard library or
installed packages, and the program must not notice: same line numbers, tracebacks,
``__name__``, ``sys.argv``, exit status.

Solution: source files under the program's directory are compiled with one more decorator on
each ``async def`` (the innermost one, with the ``def``'s own line, so ``co_firstlineno`` and
every line number stay as they were).  A meta path finder does this for imported modules, and
:func:`exec_script` / :func:`run_module` for ``__main__``.  Transformed code is never written to
``__pycache__``.

With the C accelerator the body itself is traced, rather than wrapped in a second coroutine
(one frame, coroutine and argument packing less per call, one level less on every step):

    _asynctrace_call = <the function's TracedBody>.enter()
    try:
        try:
            <the body, after its docstring>
        except:
            _asynctrace_call.fail()
            raise
    finally:
        _asynctrace_call.leave()

all on the ``def``'s line.  The decorator (:func:`auto`) then puts the function's
``_speedups.TracedBody`` in place of :data:`_BODY_MARK` among the code's constants.  A bare
``raise`` adds nothing to a traceback, so the program's tracebacks are what they were.  Without
the accelerator, or with ``--record-args``, each function is wrapped by :func:`trace`.
"""

from __future__ import annotations

import ast
import builtins
import importlib.machinery
import os
import runpy
import sys
import types
from collections.abc import Sequence
from typing import Any

from .._native import PACKAGE_DIR
from . import _coro
from ._coro import FnInfo
from ._decorator import span_name, trace

_HOOK_MODULE = __name__

# ``asynctrace run --record-args``: set by :func:`install_finder`, read by :func:`auto` when a
# program's ``def`` statement runs (import time), so one process-wide value is enough.
_record_args = False


# The constant that a traced body calls ``enter`` on until :func:`auto` replaces it.
_BODY_MARK = "\x00asynctrace: the TracedBody of this code"
# The local that holds a traced body's CallSpan.
_CALL_LOCAL = "_asynctrace_call"

# A traced body's code, and its FnInfo, by the code compiled: a nested ``async def`` makes a
# function per run of its ``def`` statement, all with the same code.
_traced_bodies: dict[types.CodeType, tuple[types.CodeType, FnInfo]] = {}


def auto(fn: Any) -> Any:
    """The decorator the import hook adds to each ``async def``; never raises."""
    code = getattr(fn, "__code__", None)
    if code is not None and _has_body_mark(code):
        return _trace_body(fn, code)
    try:
        return trace(record_args=_record_args)(fn)
    except Exception:  # anything unusual stays untraced rather than breaking the program
        return fn


def _has_body_mark(code: types.CodeType) -> bool:
    return any(type(c) is str and c == _BODY_MARK for c in code.co_consts)


def _trace_body(fn: Any, code: types.CodeType) -> Any:
    """``fn``, its body compiled traced, given the code with its TracedBody in place."""
    traced = _traced_bodies.get(code)
    if traced is None:
        assert _coro.speedups is not None
        info = FnInfo(span_name(fn, code), code, None)
        body = _coro.speedups.TracedBody(info)
        consts = tuple(body if type(c) is str and c == _BODY_MARK else c for c in code.co_consts)
        info.code = code.replace(co_consts=consts)
        traced = _traced_bodies[code] = (info.code, info)
    fn.__code__, fn.__asynctrace_info__ = traced
    return fn


def _on_def_line(tree: ast.AST, node: ast.AsyncFunctionDef) -> None:
    """Every node of ``tree`` (added by this hook) at the start of ``node``'s ``def`` line, so
    that no line number of the program moves."""
    for sub in ast.walk(tree):
        if isinstance(sub, (ast.stmt, ast.expr, ast.excepthandler)):
            ast.copy_location(sub, node)
            sub.end_lineno, sub.end_col_offset = node.lineno, node.col_offset


def _traced_body(node: ast.AsyncFunctionDef) -> list[ast.stmt]:
    """``node``'s body in the form the module docstring gives, on the ``def``'s line."""
    body = node.body
    has_doc = (
        isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    )
    frame = ast.parse(
        f"{_CALL_LOCAL} = {_BODY_MARK!r}.enter()\n"
        "try:\n"
        "    try:\n"
        "        pass\n"
        "    except:\n"
        f"        {_CALL_LOCAL}.fail()\n"
        "        raise\n"
        "finally:\n"
        f"    {_CALL_LOCAL}.leave()\n"
    ).body
    for stmt in frame:
        _on_def_line(stmt, node)
    outer = frame[1]
    assert isinstance(outer, ast.Try) and isinstance(outer.body[0], ast.Try)
    outer.body[0].body = body[1:] if has_doc else body
    if not outer.body[0].body:
        outer.body[0].body = [ast.copy_location(ast.Pass(), node)]
    return body[:1] + frame if has_doc else frame


def _is_async_generator(node: ast.AsyncFunctionDef) -> bool:
    stack: list[ast.AST] = list(node.body)
    while stack:
        child = stack.pop()
        if isinstance(child, (ast.Yield, ast.YieldFrom)):
            return True
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        stack.extend(ast.iter_child_nodes(child))
    return False


class _AddTrace(ast.NodeTransformer):
    def __init__(self, *, trace_bodies: bool) -> None:
        self.trace_bodies = trace_bodies

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        self.generic_visit(node)
        if _is_async_generator(node):
            return node
        decorator = ast.parse(
            f"__import__({_HOOK_MODULE!r}, fromlist=['auto']).auto", mode="eval"
        ).body
        _on_def_line(decorator, node)
        node.decorator_list.append(decorator)
        if self.trace_bodies:
            node.body = _traced_body(node)
        return node


def compile_traced(source: bytes | str, path: str) -> types.CodeType:
    """Compile a module's source with every ``async def`` traced (raises SyntaxError as-is)."""
    tree = ast.parse(source, filename=path)
    tree = _AddTrace(trace_bodies=_coro.speedups is not None and not _record_args).visit(tree)
    return compile(tree, path, "exec", dont_inherit=True)


class _TracingLoader(importlib.machinery.SourceFileLoader):
    """Loads a program module through :func:`compile_traced`, bypassing the bytecode cache."""

    def get_code(self, fullname: str) -> types.CodeType:
        path = self.get_filename(fullname)
        return compile_traced(self.get_data(path), path)


class ProgramFinder:
    """Finds the modules of the program (files under ``roots``) and loads them traced.

    A meta path finder by its ``find_spec`` (not a subclass of ``importlib.abc``'s, whose
    import brings ``importlib.resources``, ``pathlib`` and ``tempfile``: 6 ms of every run).
    """

    def __init__(self, roots: Sequence[str]) -> None:
        self.roots = [os.path.join(os.path.abspath(r), "") for r in roots]
        self._excluded = [
            os.path.join(os.path.abspath(p), "")
            for p in {sys.prefix, sys.base_prefix, sys.exec_prefix}
        ] + [PACKAGE_DIR]

    def is_program_file(self, path: str) -> bool:
        """True for a ``.py`` file under a root and not in an environment or asynctrace."""
        path = os.path.abspath(path)
        return (
            path.endswith(".py")
            and any(path.startswith(r) for r in self.roots)
            and not any(path.startswith(e) for e in self._excluded)
            and "site-packages" not in path
            and "dist-packages" not in path
        )

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        search = (
            list(self.roots)
            if path is None
            else [
                p
                for p in path
                if any(os.path.join(os.path.abspath(p), "").startswith(r) for r in self.roots)
            ]
        )
        if not search:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, search, target)
        if (
            spec is None
            or not isinstance(spec.loader, importlib.machinery.SourceFileLoader)
            or spec.origin is None
            or not self.is_program_file(spec.origin)
        ):
            return None
        spec.loader = _TracingLoader(fullname, spec.origin)
        return spec


def install_finder(roots: Sequence[str], *, record_args: bool = False) -> ProgramFinder:
    """Put a :class:`ProgramFinder` in front of the path finder.

    Args:
        roots: the program's directories.
        record_args: the program's coroutines record their arguments and return values
            (``@trace(record_args=True)``) until :func:`remove_finder`.
    """
    global _record_args
    _record_args = record_args
    finder = ProgramFinder(roots)
    sys.meta_path.insert(0, finder)
    return finder


def remove_finder(finder: ProgramFinder) -> None:
    """Take ``finder`` out of ``sys.meta_path`` (no error when already gone)."""
    global _record_args
    _record_args = False
    if finder in sys.meta_path:
        sys.meta_path.remove(finder)


def compile_script(path: str) -> types.CodeType:
    """The traced code of the script at ``path`` (raises SyntaxError as python would)."""
    abspath = os.path.abspath(path)
    with open(abspath, "rb") as file:
        source = file.read()
    return compile_traced(source, abspath)


def exec_script(code: types.CodeType, path: str, args: Sequence[str]) -> None:
    """Run ``code`` of the script ``path`` as ``__main__``, as ``python path args...`` does."""
    abspath = os.path.abspath(path)
    main = types.ModuleType("__main__")
    main.__dict__.update(
        __file__=abspath,
        __cached__=None,
        __builtins__=builtins,
        __loader__=importlib.machinery.SourceFileLoader("__main__", abspath),
        __spec__=None,
    )
    sys.modules["__main__"] = main
    sys.argv[:] = [path, *args]
    sys.path[0] = os.path.dirname(abspath)
    exec(code, main.__dict__)


def run_module(module: str, args: Sequence[str]) -> None:
    """Run ``module`` as ``__main__`` the way ``python -m module args...`` does, traced."""
    sys.argv[:] = [module, *args]
    sys.path[0] = os.getcwd()
    runpy.run_module(module, run_name="__main__", alter_sys=True)
