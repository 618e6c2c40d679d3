"""The traced program's side of ``asynctrace attach``: record, then leave no trace of it.

Problem: code that ``sys.remote_exec`` runs in a live program runs at whatever safe point the
main thread reached, maybe inside a task's step; it has to record that program's asyncio for
a while, stop when told, hand the trace back, and leave the program as it was, even when the
attaching process dies without a word.

Solution: the injected script (``_attach_link.py`` writes it) connects to the attacher's Unix
socket and calls :func:`begin`, which only schedules :meth:`Session.start` on the running
loop: everything else happens between the loop's callbacks, on its thread.  ``start`` turns
a recorder on for the tasks made from now on (``_instrument``) and adopts the tasks that
exist (``_adopt``).  The socket is watched by the loop itself (``add_reader``), and a timer
every ``TICK`` seconds holds the records to ``max_spans``.  The attacher sends ``stop``
(write the trace, then detach), or a heartbeat every second; the socket's end (the attacher
died) or ``HEARTBEAT_TIMEOUT`` seconds of silence (it froze) detach without writing.
Detaching, on the loop: the recorder off, the adopted tasks let go, asyncio's functions put
back (when this session installed them).  Then a short-lived thread builds the trace, writes
it as a Chrome JSON file in the attacher's directory and says ``done``: the loop keeps
turning meanwhile (sharing the GIL) instead of stalling for the whole build.  Messages are
JSON lines.  Nothing is ever written to the program's stdout or stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import sys
import threading
import time
from typing import Any

from .._core import _coro, _instrument
from .._core._record import Recorder
from .._native import PACKAGE_DIR
from ._adopt import Adopter

PROTOCOL = 1
"""The injected script and this module MUST agree on it (an attacher of another version)."""
HEARTBEAT_TIMEOUT = 15.0
"""Seconds without a word from the attacher after which it is taken for gone."""
TICK = 0.1
"""Seconds between two trims of the records to ``max_spans`` (a run has its flusher for it)."""
TRACE_FILE = "trace.json"

_session: Session | None = None


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    """One JSON line to the attacher; a closed socket is ignored (the attacher is gone)."""
    with contextlib.suppress(OSError):
        sock.setblocking(True)
        sock.sendall(json.dumps(message).encode() + b"\n")


def begin(sock: socket.socket, where: str, options: dict[str, Any]) -> None:
    """Start a session on the running loop of this thread; called by the injected script.

    Args:
        sock: connected to the attacher.
        where: the attacher's directory, for the trace file.
        options: ``blocked_threshold``, ``max_spans``, ``protocol``.
    """
    loop = asyncio.events._get_running_loop()
    problem = None
    if options.get("protocol") != PROTOCOL:
        problem = (
            f"it imported asynctrace from {os.path.dirname(PACKAGE_DIR)!r}, of another version;"
            " attach with that asynctrace"
        )
    elif loop is None:
        problem = "no asyncio event loop is running in its main thread"
    elif _session is not None or _coro.active:
        problem = "it is being traced already (by asynctrace run, tracing() or another attach)"
    if problem is not None:
        send(sock, {"error": problem})
        sock.close()
        return
    assert loop is not None
    Session(sock, where, loop, options).begin()


def abort(where: str) -> None:
    """Detach now, without the trace: the attacher got no answer from the loop (blocked, or
    ended while attached).  Run by a second injected script, on the main thread."""
    session = _session
    if session is not None and session.recorder is not None:
        session.finish(write=False)
    shutil.rmtree(where, ignore_errors=True)


class Session:
    """One attach in this process: from :meth:`start` to :meth:`finish`, on the loop's thread."""

    def __init__(
        self,
        sock: socket.socket,
        where: str,
        loop: asyncio.AbstractEventLoop,
        options: dict[str, Any],
    ) -> None:
        self.sock = sock
        self.where = where
        self.loop = loop
        self.options = options
        self.heard = time.monotonic()
        self.timer: asyncio.TimerHandle | None = None
        self.recorder: Recorder | None = None
        self.adopter: Adopter | None = None
        self.installed = _instrument._installed

    def begin(self) -> None:
        """Claim the process and schedule :meth:`start` (called wherever the script runs)."""
        global _session
        _session = self
        self.loop.call_soon_threadsafe(self.start)

    def start(self) -> None:
        """Turn recording on (a loop callback: no task is in a step)."""
        argv = getattr(sys, "argv", None) or [""]
        name = os.path.basename(str(argv[0])) or f"process {os.getpid()}"
        try:
            _instrument.install()
            self.recorder = Recorder(
                name,
                blocked_threshold=self.options["blocked_threshold"],
                max_spans=self.options["max_spans"],
            )
            self.recorder.activate()
            self.adopter = Adopter(self.loop, self.options["blocked_threshold"])
            adopted = self.adopter.start()
            self.loop.add_reader(self.sock.fileno(), self._heard)
        except Exception as exc:  # MUST NOT reach the program: undo, and tell the attacher
            self._undo()
            send(self.sock, {"error": f"recording could not start: {exc!r}"})
            self._close()
            return
        self.timer = self.loop.call_later(TICK, self._tick)
        python = ".".join(map(str, sys.version_info[:3]))
        send(self.sock, {"attached": adopted, "python": python, "name": name})
        self.sock.setblocking(False)

    def _heard(self) -> None:
        try:
            data = self.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the attacher closed its end, or died
            self.finish(write=False)
            return
        self.heard = time.monotonic()
        if b"stop" in data:
            send(self.sock, {"stopping": True})
            self.finish(write=True)

    def _tick(self) -> None:
        if time.monotonic() - self.heard > HEARTBEAT_TIMEOUT:
            self.finish(write=False)
            return
        if self.recorder is not None:
            self.recorder.trim()
        self.timer = self.loop.call_later(TICK, self._tick)

    def finish(self, *, write: bool) -> None:
        """Detach; with ``write``, a thread then builds the trace for the attacher."""
        recorder = self._undo()
        if write and recorder is not None:
            threading.Thread(
                target=self._deliver, args=(recorder,), name="asynctrace-attach", daemon=True
            ).start()
            return
        send(self.sock, {"abandoned": True})
        self._close()
        if not write:  # the attacher is gone: its directory is left to us
            shutil.rmtree(self.where, ignore_errors=True)

    def _deliver(self, recorder: Recorder) -> None:
        """Build and write the trace, say ``done`` (in its own thread, which then ends)."""
        from .._export._chrome import write_chrome_json
        from .._model._build import build_trace
        from .._model._critical import mark_critical

        try:
            trace = build_trace(recorder)
            mark_critical(trace)
            write_chrome_json(trace, os.path.join(self.where, TRACE_FILE))
            message: dict[str, Any] = {"done": len(trace.spans)}
        except Exception as exc:  # told to the attacher, never to the program
            message = {"error": f"the trace could not be written: {exc!r}"}
        send(self.sock, message)
        self._close()

    def _undo(self) -> Recorder | None:
        """Everything :meth:`start` did, undone; returns the recorder that was on (or None)."""
        with contextlib.suppress(ValueError, OSError):  # a closed socket has no fd
            self.loop.remove_reader(self.sock.fileno())
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        recorder = self.recorder
        self.recorder = None
        if self.adopter is not None:
            records = self.adopter.stop()
            self.adopter = None
            if recorder is not None:
                for record in records:  # the C record list appends one at a time
                    recorder.records.append(record)
        if recorder is not None:
            recorder.deactivate()
        if not self.installed:
            _instrument.uninstall()
            if self.loop.get_task_factory() is _instrument._task_factory:
                self.loop.set_task_factory(None)
        return recorder

    def _close(self) -> None:
        global _session
        with contextlib.suppress(OSError):
            self.sock.close()
        if _session is self:
            _session = None
