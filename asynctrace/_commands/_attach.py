"""``asynctrace attach PID``: record a running asyncio program that was started without us.

Problem: a server that misbehaves now would have to be restarted under ``asynctrace run`` to
be traced, which often makes the problem go away.

Solution: the command checks its arguments and the outputs' paths, has ``_attach_link``
attach to the process (Python 3.14+), record and detach, and makes the outputs here from the
trace the target handed back (terminal timeline, ``--json``, ``--html``, ``--otlp``), so the
target spends nothing on them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from .._tracing import report
from ._attach_link import AttachError, record
from ._cli_args import UsageError, check_distinct, check_writable


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
    from .._core._record import DEFAULT_MAX_SPANS
    from ._cli import _Parser, add_recording_options, add_timeline_options

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
    add_recording_options(
        parser,
        max_spans=f"spans the target keeps while attached (default {DEFAULT_MAX_SPANS}); "
        "the rest are counted as dropped",
    )
    parser.add_argument(
        "--no-timeline", action="store_true", help="do not print the timeline on stderr"
    )
    add_timeline_options(parser)
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
        settings = {"blocked_threshold": options.blocked_threshold, "max_spans": options.max_spans}
        trace = record(options.pid, options.duration, settings)
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


def _otlp_settings(options: argparse.Namespace, program: str) -> Any:
    from .._opentelemetry._otlp_config import otlp_settings

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
        from .._export._chrome import write_chrome_json

        write_chrome_json(trace, options.json)
    _show(None if options.no_timeline else trace, options, options.json)
    if options.html is not None:
        html = _HtmlOutput(options.html, run.name)
        html(trace)
        if html.written:
            report(f"HTML timeline: {options.html}")
    if options.otlp is not None:
        from .._opentelemetry._otlp import new_span_id_base, new_trace_id
        from .._opentelemetry._otlp_send import OtlpExport

        otlp = _otlp_settings(options, run.name)
        export = OtlpExport(otlp)
        export.submit(trace, trace_id=new_trace_id(), span_id_base=new_span_id_base())
        sent = export.close()
        if sent.sent and not sent.not_sent:
            report(f"OTLP: {sent.sent:,} spans sent to {sent.endpoint} ({otlp.protocol})")
