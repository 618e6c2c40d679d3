"""The link of ``asynctrace attach`` to the target: inject, talk, detach (Python 3.14+).

Problem: code that runs in another process, started there by ``sys.remote_exec`` at whatever
safe point its main thread reaches, has to be told when to stop, hand a trace back, and leave
the process as it was whatever happens to this side.

Solution (PEP 768): this process makes a private directory with a Unix socket and a small
script, and asks the target's interpreter to run the script at its next safe point.  The
script connects back, checks that an asyncio loop runs in the target's main thread, imports
asynctrace from this process's installation (same Python version: ``sys.remote_exec`` refuses
any other) and starts a session (``_attached.py``) on the target's loop.  This side sends a
heartbeat every second until the duration is over or Ctrl-C, then ``stop``, and reads the trace
the target wrote into the directory.  If this process dies, the socket's end makes the target
detach on its own; if the target's loop does not answer ``stop``, a second script tells it to
detach from its main thread.

The target runs a script only when its main thread runs Python code: a loop waiting in
``select`` with nothing scheduled never does.  After ``WAKE_TIMEOUT`` seconds this side gives
up with one line and leaves the directory: the script, if it runs later, finds nobody
listening, removes the directory and does nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
import time
from typing import Any

from .._native import PACKAGE_DIR
from .._tracing import report

WAKE_TIMEOUT = 5.0
"""Seconds to wait for the target to run the script and answer."""
FINISH_TIMEOUT = 60.0
"""Seconds to wait, after ``stop``, for the target to write the trace."""
HEARTBEAT = 1.0
_MAX_SOCKET_PATH = 100  # bytes: sockaddr_un holds 108 on Linux, 104 on macOS

# Runs in the target at a safe point of its main thread, in a namespace of its own.  It MUST
# NOT print, and MUST leave the program as it was when it cannot attach.
_SCRIPT = """\
def _asynctrace_attach(where, package_parent, options):
    import os
    import socket
    import sys

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(5)
        sock.connect(os.path.join(where, "control"))
    except OSError:  # the attacher gave up waiting and left: tidy its directory, nothing else
        sock.close()
        import shutil

        shutil.rmtree(where, ignore_errors=True)
        return

    def fail(problem):
        try:
            sock.sendall(b'{"error": "' + problem.encode("ascii", "replace") + b'"}\\n')
        except OSError:
            pass
        sock.close()

    asyncio = sys.modules.get("asyncio")
    if asyncio is None or asyncio.events._get_running_loop() is None:
        return fail("no asyncio event loop is running in its main thread")
    if "asynctrace" not in sys.modules:
        sys.path.insert(0, package_parent)
    try:
        from asynctrace._commands import _attached
    except BaseException as exc:
        return fail("asynctrace cannot be imported there: " + type(exc).__name__)
    finally:
        if sys.path and sys.path[0] == package_parent:
            del sys.path[0]
    _attached.begin(sock, where, options)
"""


# Run in a target whose loop did not answer: detach from the main thread (at a safe point).
_ABORT = """\
import sys
attached = sys.modules.get("asynctrace._commands._attached")
if attached is not None:
    attached.abort({where!r})
"""


class AttachError(Exception):
    """The target cannot be attached, or stopped answering: one line, exit status 2."""


def record(pid: int, duration: float | None, settings: dict[str, Any]) -> Any:
    """Attach to ``pid``, record for ``duration`` seconds (None: until Ctrl-C), detach.

    Returns the trace, or None when there is none (the target ended meanwhile, did not
    answer, or a second Ctrl-C).  ``settings``: ``blocked_threshold`` and ``max_spans``.

    Raises:
        AttachError: the target cannot be attached; one line says why.
    """
    where = tempfile.mkdtemp(prefix="asynctrace-attach-")
    if len(os.path.join(where, "control").encode()) > _MAX_SOCKET_PATH:
        os.rmdir(where)  # a long TMPDIR: the socket's path would not fit
        where = tempfile.mkdtemp(prefix="asynctrace-attach-", dir="/tmp")
    keep = False  # left for the target to remove (it may still run the script)
    try:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(os.path.join(where, "control"))
        server.listen(1)
        script = os.path.join(where, "attach.py")
        package_parent = os.path.dirname(os.path.dirname(PACKAGE_DIR))  # "/x/asynctrace/" -> "/x"
        from ._attached import PROTOCOL

        settings = {"protocol": PROTOCOL, **settings}
        with open(script, "w", encoding="utf-8") as file:
            file.write(
                f"{_SCRIPT}\n\n_asynctrace_attach({where!r}, {package_parent!r}, {settings!r})\n"
            )
        _share_with(pid, where)
        _remote_exec(pid, script)
        server.settimeout(WAKE_TIMEOUT)
        try:
            conn, _ = server.accept()
        except TimeoutError:
            keep = True
            msg = (
                f"process {pid} ran no Python code for {WAKE_TIMEOUT:g} s (its event loop waits"
                " with nothing scheduled, or its main thread is blocked); attach while it has"
                " work to do. Nothing was changed in it"
            )
            raise AttachError(msg) from None
        finally:
            server.close()
        with conn:
            try:
                return _session(conn, pid, duration, where)
            except _NoAnswer:
                keep = _abort(pid, where)
                return None
    finally:
        if not keep:
            shutil.rmtree(where, ignore_errors=True)


class _NoAnswer(Exception):
    """The target did not answer ``stop``: its loop is blocked, or no longer runs."""


def _abort(pid: int, where: str) -> bool:
    """Tell a target whose loop does not answer to detach from its main thread, without the
    trace; returns whether the directory must stay (for the target to read the script)."""
    script = os.path.join(where, "abort.py")
    with open(script, "w", encoding="utf-8") as file:
        file.write(_ABORT.format(where=where))
    _share_with(pid, where)
    try:
        sys.remote_exec(pid, script)  # type: ignore[attr-defined]
    except (RuntimeError, OSError):  # it ended: nothing left to detach
        report(f"process {pid} ended before it sent the trace")
        return False
    report(
        f"process {pid} did not answer for {WAKE_TIMEOUT:g} s (its event loop is blocked or"
        " no longer runs): it was told to detach without the trace"
    )
    return True


def _share_with(pid: int, where: str) -> None:
    """As root, hand the directory to the target's user, who must read the script there."""
    try:
        uid = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return
    if os.geteuid() == 0 and uid != 0:
        for name in os.listdir(where):
            os.chown(os.path.join(where, name), uid, -1)
        os.chown(where, uid, -1)


def _remote_exec(pid: int, script: str) -> None:
    """``sys.remote_exec``, its refusals said in one line each."""
    try:
        sys.remote_exec(pid, script)  # type: ignore[attr-defined]
    except ProcessLookupError:
        msg = f"process {pid} ended before it could be attached"
        raise AttachError(msg) from None
    except PermissionError:
        msg = (
            f"permission refused to attach to process {pid}: run asynctrace as its user or as"
            " root (attaching needs the right to ptrace it; see kernel.yama.ptrace_scope)"
        )
        raise AttachError(msg) from None
    except (RuntimeError, OSError) as exc:
        raise AttachError(_refusal(pid, str(exc))) from None


def _refusal(pid: int, text: str) -> str:
    """One line for what ``sys.remote_exec`` raised."""
    if "not enabled" in text:
        return (
            f"process {pid} was started with remote debugging off (PYTHON_DISABLE_REMOTE_DEBUG"
            " or -X disable-remote-debug); restart it without, or trace it with asynctrace run"
        )
    if text.startswith("Can't send commands"):
        found = text.rsplit(" to a ", 1)[-1].removesuffix(" process")
        return (
            f"process {pid} runs {found} and this is Python {sys.version_info[0]}."
            f"{sys.version_info[1]}; attach with the same version: python{found[7:]} -m"
            " asynctrace attach (asynctrace installed for it)"
        )
    if not os.path.exists(f"/proc/{pid}"):
        return f"process {pid} ended before it could be attached"
    return (
        f"process {pid} is not a Python 3.14+ program ({text}); attach works on programs run"
        " by Python 3.14 or newer"
    )


def _session(conn: socket.socket, pid: int, duration: float | None, where: str) -> Any:
    """Talk to the attached target: wait, stop it, read the trace back."""
    from .._export._chrome_read import read_chrome_json_repaired
    from .._export._sanitize import shown

    reader = conn.makefile("rb")
    conn.settimeout(WAKE_TIMEOUT)
    hello = _message(reader)
    if hello is None or "error" in hello:
        problem = "it ended" if hello is None else hello["error"]
        msg = f"process {pid} cannot be attached: {problem}; nothing was changed in it"
        raise AttachError(msg)
    until = "until Ctrl-C" if duration is None else f"for {duration:g} s"
    report(
        f"attached to process {pid} ({shown(str(hello['name']))}, Python"
        f" {hello['python']}, {hello['attached']} tasks running): recording {until}"
    )
    ended = _wait(conn, duration)
    if ended:
        report(f"process {pid} ended while attached; its recording ended with it")
        return None
    conn.sendall(b"stop\n")
    answer = None
    try:
        conn.settimeout(WAKE_TIMEOUT)  # the loop answers at once, unless blocked or gone
        answer = _message(reader)
        if answer is not None and "stopping" in answer:
            conn.settimeout(FINISH_TIMEOUT)  # then its thread builds and writes the trace
            answer = _message(reader)
    except KeyboardInterrupt:
        report("interrupted: detached without the trace")
        return None
    except AttachError:
        if answer is None:
            raise _NoAnswer from None
        raise
    if answer is None or "done" not in answer:
        problem = "it ended" if answer is None else answer.get("error", answer)
        report(f"process {pid} sent no trace: {problem}")
        return None
    report(f"detached from process {pid}: {answer['done']:,} spans")
    trace, _cut = read_chrome_json_repaired(os.path.join(where, "trace.json"), max_bytes=None)
    return trace


def _message(reader: Any) -> dict[str, Any] | None:
    """The next JSON line from the target, or None when it closed the connection."""
    try:
        line = reader.readline()
    except TimeoutError:
        msg = "the target stopped answering; it detaches by itself when it notices"
        raise AttachError(msg) from None
    except OSError:
        return None
    if not line:
        return None
    found: dict[str, Any] = json.loads(line)
    return found


def _wait(conn: socket.socket, duration: float | None) -> bool:
    """Heartbeats until ``duration`` is over or Ctrl-C; True when the target ended meanwhile."""
    deadline = None if duration is None else time.monotonic() + duration
    conn.settimeout(HEARTBEAT)
    try:
        while deadline is None or time.monotonic() < deadline:
            left = HEARTBEAT if deadline is None else min(HEARTBEAT, deadline - time.monotonic())
            conn.settimeout(max(left, 0.001))
            try:
                if not conn.recv(1):
                    return True
            except TimeoutError:
                pass
            conn.sendall(b".")
    except KeyboardInterrupt:
        pass
    except OSError:
        return True
    return False
