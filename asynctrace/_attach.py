"""``asynctrace attach PID``: record a running asyncio program that was started without us.

Problem: a server that misbehaves now would have to be restarted under ``asynctrace run`` to
be traced, which often makes the problem go away.

Solution (Python 3.14+, PEP 768): this process makes a private directory with a Unix socket
and a small script, and asks the target's interpreter to run the script at its next safe
point (``sys.remote_exec``).  The script connects back, checks that an asyncio loop runs in
the target's main thread, imports asynctrace from this process's installation (same Python
version: ``sys.remote_exec`` refuses any other) and starts a session (``_attached.py``) on the
target's loop.  This side then sends a heartbeat every second until ``--duration`` is over or
Ctrl-C, sends ``stop``, and reads the trace the target wrote into the directory; the outputs
(terminal timeline, ``--json``, ``--html``, ``--otlp``) are made here, not in the target.  If
this process dies, the socket's end makes the target detach on its own.

The target runs the script only when its main thread runs Python code: a loop waiting in
``select`` with nothing scheduled never does.  After ``WAKE_TIMEOUT`` seconds this side gives
up with one line; the script, if it runs later, finds nobody listening, removes the directory
and does nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from ._cli_args import UsageError, check_distinct, check_writable
from ._tracing import report

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
        from asynctrace import _attached
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
attached = sys.modules.get("asynctrace._attached")
if attached is not None:
    attached.abort({where!r})
"""


class AttachError(Exception):
    """The target cannot be attached, or stopped answering: one line, exit status 2."""


def _positive(text: str, example: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        msg = f"{text!r} is not a positive number of seconds; e.g. {example}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _pid(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        msg = f"{text!r} is not a process id; give the PID of a running Python program (ps, pgrep)"
        raise argparse.ArgumentTypeError(msg)
    return int(text)


def _parser() -> argparse.ArgumentParser:
    from . import _terminal_rows
    from ._cli import _columns, _Parser, _seconds, _span_count
    from ._record import DEFAULT_MAX_SPANS

    parser = _Parser(
        prog="asynctrace attach",
        description="Record a running asyncio program (Python 3.14+) for a while, then detach "
        "and show its tasks, gathers and awaits.",
    )
    parser.add_argument("pid", metavar="PID", type=_pid, help="the process to record")
    parser.add_argument(
        "--duration",
        type=lambda text: _positive(text, "--duration 10"),
        metavar="SECONDS",
        help="record this long (default: until Ctrl-C)",
    )
    parser.add_argument("--json", metavar="PATH", help="write a Chrome Trace Event JSON timeline")
    parser.add_argument("--html", metavar="PATH", help="write a self-contained HTML timeline")
    parser.add_argument(
        "--otlp",
        nargs="?",
        const="",
        metavar="ENDPOINT",
        help="send the trace over OTLP (--otlp=URL; default: the OTEL_EXPORTER_OTLP_* "
        "variables, else localhost:4317)",
    )
    parser.add_argument(
        "--otlp-protocol",
        choices=("grpc", "http/protobuf", "http"),
        help="OTLP protocol (default: OTEL_EXPORTER_OTLP_PROTOCOL, else grpc)",
    )
    parser.add_argument(
        "--blocked-threshold",
        type=_seconds,
        default=0.1,
        metavar="SECONDS",
        help="a loop step longer than this is a blocked span (default 0.1)",
    )
    parser.add_argument(
        "--max-spans",
        type=_span_count,
        default=DEFAULT_MAX_SPANS,
        metavar="N",
        help=f"spans the target keeps while attached (default {DEFAULT_MAX_SPANS}); "
        "the rest are counted as dropped",
    )
    parser.add_argument(
        "--no-timeline", action="store_true", help="do not print the timeline on stderr"
    )
    parser.add_argument(
        "--summary",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="end the timeline with the critical path and where the waiting went (default)",
    )
    parser.add_argument("--width", type=_columns, metavar="COLUMNS")
    _terminal_rows.add_view_options(parser)
    return parser


def attach(argv: Sequence[str]) -> int:
    """``asynctrace attach``: returns the exit status (2: the target cannot be attached)."""
    words = list(argv)
    for i, word in enumerate(words[:-1]):
        if word == "--otlp" and words[i + 1].isdigit():  # the PID, not an endpoint
            words[i] = "--otlp="
    options = _parser().parse_args(words)
    if not hasattr(sys, "remote_exec"):
        version = ".".join(map(str, sys.version_info[:2]))
        raise UsageError(
            f"attach needs Python 3.14 or newer on both sides, and this is Python {version};"
            " run it with the target's Python: python3.14 -m asynctrace attach PID"
        )
    for option in ("--json", "--html"):
        path = getattr(options, option[2:])
        if path is not None:
            check_writable(path, option)
    check_distinct({"--json": options.json, "--html": options.html})
    if options.otlp is not None:
        try:  # checked now, made again with the program's name as service.name at the end
            _otlp_settings(options, "asynctrace")
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    _check_target(options.pid)
    try:
        trace = _record(options)
    except AttachError as exc:
        raise UsageError(str(exc)) from None
    except KeyboardInterrupt:
        report("interrupted before recording started; nothing was changed in the target")
        return 130
    if trace is None:
        return 1
    _outputs(trace, options)
    return 0


def _check_target(pid: int) -> None:
    if pid == os.getpid():
        raise UsageError(f"PID {pid} is this asynctrace process; give the program's PID")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise UsageError(
            f"no process {pid} is running; check the PID (e.g. pgrep -f your_program.py)"
        ) from None
    except PermissionError:
        pass  # it exists; remote_exec says whether we may attach


def _record(options: argparse.Namespace) -> Any:
    """Attach, record, detach: the trace, or None when the target ended meanwhile."""
    pid = options.pid
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
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        from ._attached import PROTOCOL

        settings = {
            "protocol": PROTOCOL,
            "blocked_threshold": options.blocked_threshold,
            "max_spans": options.max_spans,
        }
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
                return _session(conn, options, where)
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


def _session(conn: socket.socket, options: argparse.Namespace, where: str) -> Any:
    """Talk to the attached target: wait, stop it, read the trace back."""
    from ._chrome import read_chrome_json_repaired
    from ._sanitize import shown

    reader = conn.makefile("rb")
    conn.settimeout(WAKE_TIMEOUT)
    hello = _message(reader)
    if hello is None or "error" in hello:
        problem = "it ended" if hello is None else hello["error"]
        msg = f"process {options.pid} cannot be attached: {problem}; nothing was changed in it"
        raise AttachError(msg)
    until = "until Ctrl-C" if options.duration is None else f"for {options.duration:g} s"
    report(
        f"attached to process {options.pid} ({shown(str(hello['name']))}, Python"
        f" {hello['python']}, {hello['attached']} tasks running): recording {until}"
    )
    ended = _wait(conn, options.duration)
    if ended:
        report(f"process {options.pid} ended while attached; its recording ended with it")
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
        report(f"process {options.pid} sent no trace: {problem}")
        return None
    report(f"detached from process {options.pid}: {answer['done']:,} spans")
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


def _otlp_settings(options: argparse.Namespace, program: str) -> Any:
    from ._otlp_config import otlp_settings

    return otlp_settings(
        endpoint=options.otlp or None,
        protocol=options.otlp_protocol,
        default_service=program.removesuffix(".py"),
    )


def _outputs(trace: Any, options: argparse.Namespace) -> None:
    """The terminal timeline, the files and OTLP, made here from the target's trace."""
    from ._cli import _HtmlOutput, _show

    (run,) = trace.spans_matching(kind="run")
    if options.json is not None:
        from ._chrome import write_chrome_json

        write_chrome_json(trace, options.json)
    _show(trace, options, options.json, whole=True)
    if options.html is not None:
        html = _HtmlOutput(options.html, run.name)
        html(trace)
        if html.written:
            report(f"HTML timeline: {options.html}")
    if options.otlp is not None:
        from ._otlp import new_span_id_base, new_trace_id
        from ._otlp_send import OtlpExport

        otlp = _otlp_settings(options, run.name)
        export = OtlpExport(otlp)
        export.submit(trace, trace_id=new_trace_id(), span_id_base=new_span_id_base())
        sent = export.close()
        if sent.sent and not sent.not_sent:
            report(f"OTLP: {sent.sent:,} spans sent to {sent.endpoint} ({otlp.protocol})")
