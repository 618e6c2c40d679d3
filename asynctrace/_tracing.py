"""The programmatic switch: ``instrument()``/``uninstrument()`` and ``with tracing():``.

A :class:`Tracing` owns one recorder from ``start()`` to ``stop()``; at ``stop()`` it builds the
:class:`~asynctrace.Trace` and writes the outputs it was asked for.  An output that fails is
reported once on stderr and skipped: it never raises into the program, and the other outputs
are still written.  One tracing is active per process at a time.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any

from . import _instrument
from ._build import build_trace
from ._record import DEFAULT_BLOCKED_THRESHOLD, DEFAULT_MAX_SPANS, Recorder
from ._spans import Span, Trace

Output = Callable[[Trace], None]

_active: Tracing | None = None


def report(message: str) -> None:
    """One line for the user on stderr, prefixed ``asynctrace:``; never raises."""
    try:
        sys.stderr.write(f"asynctrace: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):  # closed or missing stderr: nowhere to say it
        pass


class Tracing:
    """Records everything asyncio does between :meth:`start` and :meth:`stop`.

    Args:
        name: the run span's name (the script, module or test).
        json: write a Chrome Trace Event JSON timeline (Perfetto) here at stop.
        outputs: more callables given the finished Trace at stop (exporters).
        virtual_time: run event loops created while tracing on the virtual clock.
        blocked_threshold: seconds a loop step may run before it is a ``blocked`` span.
        record_awaits: False keeps tasks, coroutines and gathers but no await spans.
        max_spans: keep at most this many spans; the rest are counted as dropped.
    """

    def __init__(
        self,
        *,
        name: str = "asynctrace",
        json: str | None = None,
        outputs: tuple[Output, ...] = (),
        virtual_time: bool = False,
        blocked_threshold: float = DEFAULT_BLOCKED_THRESHOLD,
        record_awaits: bool = True,
        max_spans: int = DEFAULT_MAX_SPANS,
    ) -> None:
        self.name = name
        self.json = json
        self.outputs = outputs
        self.virtual_time = virtual_time
        self.recorder = Recorder(
            name,
            blocked_threshold=blocked_threshold,
            record_awaits=record_awaits,
            max_spans=max_spans,
        )
        self._trace: Trace | None = None
        self._virtual: Any = None

    @property
    def active(self) -> bool:
        """True between start and stop."""
        return _active is self

    def start(self) -> Tracing:
        """Start recording (and patch asyncio, once per process)."""
        global _active
        if _active is not None:
            msg = (f"asynctrace is already tracing {_active.name!r}; stop it first "
                   "(asynctrace.uninstrument() or leave its tracing() block)")
            raise RuntimeError(msg)
        _instrument.install()
        if self.virtual_time:
            from ._virtual import install_virtual_time

            self._virtual = install_virtual_time(self.recorder)
        self.recorder.activate()
        _active = self
        return self

    def stop(self) -> Trace:
        """Stop recording, build the trace, write the outputs; returns the trace."""
        global _active
        if _active is self:
            self.recorder.deactivate()
            _active = None
            if self._virtual is not None:
                self._virtual.restore()
                self._virtual = None
            self._trace = build_trace(self.recorder)
            self._write_outputs(self._trace)
        return self.trace

    def _write_outputs(self, trace: Trace) -> None:
        if self.json is not None:
            path = self.json
            try:
                from ._chrome import write_chrome_json

                write_chrome_json(trace, path)
            except Exception as exc:  # an output MUST NOT break the program or the others
                report(f"could not write the JSON timeline {path!r}: {exc}")
        for output in self.outputs:
            try:
                output(trace)
            except Exception as exc:
                report(f"output {getattr(output, '__name__', output)!r} failed: {exc}")

    @property
    def trace(self) -> Trace:
        """The recorded trace: final after stop, a snapshot with open spans while active."""
        if self._trace is not None:
            return self._trace
        return build_trace(self.recorder)

    def spans(self, name_glob: str | None = None, kind: str | None = None,
              **attributes: object) -> list[Span]:
        """Recorded spans matching a name glob, a kind and attribute values."""
        return self.trace.spans_matching(name_glob, kind, **attributes)

    def __enter__(self) -> Tracing:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def tracing(**options: Any) -> Tracing:
    """``with asynctrace.tracing(json="trace.json") as t:`` records the block; ``t.trace`` after.

    Takes the options of :class:`Tracing`.
    """
    return Tracing(**options)


def instrument(**options: Any) -> Tracing:
    """Start tracing everything asyncio does until :func:`uninstrument` (options of Tracing)."""
    return Tracing(**options).start()


def uninstrument() -> Trace | None:
    """Stop the active tracing; returns its trace, or None if nothing was tracing."""
    if _active is None:
        return None
    return _active.stop()
