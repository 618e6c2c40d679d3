"""``asynctrace run`` and ``asynctrace view``: the command line front door.

``run`` executes a program as ``python`` would (same ``sys.argv``, ``__main__``, stdin, stdout,
tracebacks and exit status) with tracing on, then writes the timelines.  A user mistake in our
own arguments is one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import math
import os
import runpy
import signal
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from .. import __version__
from .._core import _autotrace
from .._core._record import DEFAULT_MAX_SPANS
from .._export import _terminal_rows
from .._export._sanitize import shown, visible
from .._model._spans import Trace, gc_paused, release
from .._native import PACKAGE_DIR
from .._opentelemetry._otlp import DEFAULT_MAX_TRACE_SPANS, TRACE_PER
from .._stream._flush import DEFAULT_FLUSH_INTERVAL
from .._tracing import Tracing, report
from ._cli_args import (
    UsageError,
    check_distinct,
    check_writable,
    looks_like_a_program,
    output_name,
    same_file,
    shell_words,
    split_run_args,
    too_large,
)

if TYPE_CHECKING:
    from .._stream._live import LiveView

USAGE_ERROR = 2
# `run` options that take a value as the next word (everything else is a flag).
_VALUE_OPTIONS = {
    "--json",
    "--blocked-threshold",
    "--html",
    "--width",
    "--max-spans",
    "--seed",
    "--flush-interval",
    "--otlp-protocol",
    "--otlp-json",
    "--service-name",
    "--trace-per",
    "--max-trace-spans",
    *_terminal_rows.VALUE_OPTIONS,
}


VIEW_MAX_MIB = 128
"""``asynctrace view`` refuses a bigger JSON timeline unless given ``--max-size``.

Reading takes about 6.5 times the file's size in memory (54 MiB, 220,000 spans: 340 MB), so
the default keeps a view under about 1 GB; a JSON timeline takes about 250 bytes a span.
"""
MAX_COLUMNS = 10_000


def _columns(text: str) -> int:
    """``--width``: a whole number of columns, 1 to MAX_COLUMNS (narrower draws 24)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_COLUMNS:
        msg = f"{text!r} is not a width; give a number of columns from 24 to {MAX_COLUMNS}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _mebibytes(text: str) -> float:
    """``--max-size``: a positive, finite number of MiB."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (0 < value <= 2**40 and math.isfinite(value)):
        msg = f"{text!r} is not a size; give a positive number of MiB, e.g. --max-size 1024"
        raise argparse.ArgumentTypeError(msg)
    return value


def _seconds(text: str) -> float:
    """``--blocked-threshold``: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (0 < value < math.inf):
        msg = f"{text!r} is not a positive number of seconds; e.g. --blocked-threshold 0.05"
        raise argparse.ArgumentTypeError(msg)
    return value


def _seed(text: str) -> int:
    """``--seed``: a schedule's seed, a whole number of 0 or more."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        msg = f"{text!r} is not a schedule's seed; give a whole number of 0 or more, e.g. 7"
        raise argparse.ArgumentTypeError(msg)
    return value


def _span_count(text: str) -> int:
    """``--max-spans``: a whole number, at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"{text!r} is not a number of spans; give a whole number at least 1, e.g. 100000"
        raise argparse.ArgumentTypeError(msg)
    return value


def _trace_spans(text: str) -> int:
    """``--max-trace-spans``: a whole number, 0 (never cut) or at least 2."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0 or value == 1:
        msg = f"{text!r} is not a number of spans; give 0 (never cut) or at least 2, e.g. 10000"
        raise argparse.ArgumentTypeError(msg)
    return value


class _Formatter(argparse.HelpFormatter):
    """argparse's help layout, as wide as argparse makes it, found without importing shutil
    (argparse imports it for every option added: 2 ms of every run)."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        width = _terminal_columns(80) - 2 if width is None else width
        super().__init__(prog, indent_increment, max_help_position, width)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        # argparse quotes some values with %r and pastes others raw (unrecognized arguments)
        raise UsageError(f"{visible(message)} (see `{self.prog} --help`)")

    def parse_known_args(  # type: ignore[override]  # one signature of the overloads is enough
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        options, rest = super().parse_known_args(args, namespace)
        for action in self._actions:
            # Python < 3.12 turns `-o=--` and `-o--` into the value [] instead of refusing it
            if action.nargs is None and isinstance(getattr(options, action.dest, None), list):
                flag = "/".join(action.option_strings) or action.dest
                self.error(f"argument {flag}: expected one argument, not '--'")
        return options, rest


def _run_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="asynctrace run",
        description="Run a Python program with every task, gather and await traced.",
        usage="asynctrace run [options] (SCRIPT | -m MODULE) [ARGS...]",
    )
    parser.add_argument(
        "--json",
        metavar="PATH",
        help="Chrome Trace Event JSON timeline (default: SCRIPT.trace.json)",
    )
    parser.add_argument("--no-json", action="store_true", help="do not write a JSON timeline")
    parser.add_argument(
        "--html", metavar="PATH", help="also write a self-contained HTML timeline page here"
    )
    parser.add_argument(
        "--otlp",
        nargs="?",
        const="",
        metavar="ENDPOINT",
        help="send the trace over OTLP to ENDPOINT, a URL or host:port (--otlp URL or "
        "--otlp=URL; default: the OTEL_EXPORTER_OTLP_* variables, else localhost:4317)",
    )
    parser.add_argument(
        "--otlp-protocol",
        choices=("grpc", "http/protobuf", "http"),
        help="OTLP protocol (default: OTEL_EXPORTER_OTLP_PROTOCOL, else grpc)",
    )
    parser.add_argument(
        "--otlp-json",
        metavar="PATH",
        help="write the trace as an OTLP/JSON file (Jaeger UI opens it)",
    )
    parser.add_argument(
        "--service-name",
        metavar="NAME",
        help="OpenTelemetry service.name (default: OTEL_SERVICE_NAME, else "
        "the script's or module's name)",
    )
    parser.add_argument(
        "--trace-per",
        choices=TRACE_PER,
        default="auto",
        help="with OpenTelemetry: which tasks start a trace of their own; auto (default): "
        "those started outside any task (a server's connections), task: also those a main "
        "task starts, run: none (see docs/distributed.md)",
    )
    parser.add_argument(
        "--max-trace-spans",
        type=_trace_spans,
        default=DEFAULT_MAX_TRACE_SPANS,
        metavar="N",
        help=f"with OpenTelemetry: cut the run's trace into traces of at most N spans "
        f"(default {DEFAULT_MAX_TRACE_SPANS}; 0: never), so that Jaeger can open each",
    )
    parser.add_argument(
        "--virtual-time",
        action="store_true",
        help="virtual clock: sleeps take no real time, durations stay exact",
    )
    parser.add_argument(
        "--seed",
        type=_seed,
        default=None,
        metavar="S",
        help="run under the explored schedule of seed S on the virtual clock (implies "
        "--virtual-time; see docs/testing.md, exploring schedules)",
    )
    add_recording_options(
        parser,
        max_spans=f"spans kept in memory (default {DEFAULT_MAX_SPANS}); a longer run is streamed "
        "to the JSON file whole, or without one, the rest are counted as dropped",
    )
    parser.add_argument(
        "--flush-interval",
        type=float,
        default=DEFAULT_FLUSH_INTERVAL,
        metavar="SECONDS",
        help=f"append new spans to the JSON file this often (default {DEFAULT_FLUSH_INTERVAL:g};"
        " a kill loses at most this much); 0: write it at exit only",
    )
    parser.add_argument(
        "--record-args",
        action="store_true",
        help="record the arguments and return values of the program's coroutines "
        "(repr, capped at 256 characters, secret-looking names redacted)",
    )
    parser.add_argument(
        "--no-timeline", action="store_true", help="do not print the timeline on stderr"
    )
    parser.add_argument(
        "--live",
        action="store_true",
        help="while the program runs, show the live view on stderr (a screen redrawn every "
        "second on a terminal, else a line a second); the timeline still prints at the end",
    )
    add_timeline_options(parser)
    return parser


def add_recording_options(parser: argparse.ArgumentParser, *, max_spans: str) -> None:
    """``--blocked-threshold`` and ``--max-spans`` (``max_spans``: its help), for ``run`` and
    ``attach``."""
    parser.add_argument(
        "--blocked-threshold",
        type=_seconds,
        default=0.1,
        metavar="SECONDS",
        help="a loop step longer than this is a blocked span (default 0.1)",
    )
    parser.add_argument(
        "--max-spans", type=_span_count, default=DEFAULT_MAX_SPANS, metavar="N", help=max_spans
    )


def add_timeline_options(parser: argparse.ArgumentParser) -> None:
    """``--summary``, ``--width`` and what the terminal timeline draws, for ``run`` and
    ``attach``."""
    parser.add_argument(
        "--summary",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="end the timeline with the critical path and where the waiting went (default)",
    )
    parser.add_argument(
        "--width",
        type=_columns,
        metavar="COLUMNS",
        help="width of the terminal timeline (default: the terminal's)",
    )
    _terminal_rows.add_view_options(parser)


def _exit_status(exc: SystemExit) -> int:
    """What ``python`` exits with for an uncaught ``SystemExit``."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _print_uncaught(exc: BaseException) -> None:
    """Report an exception the program did not catch, as python does, through sys.excepthook.

    asynctrace's own frames at the top of the traceback (and runpy's, for -m) are left out:
    the traceback starts at the program's first frame.
    """
    tb = exc.__traceback__
    while tb is not None and _is_runner_frame(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    exc.__traceback__ = tb  # the default hook prints exc.__traceback__, whatever tb it gets
    sys.excepthook(type(exc), exc, tb)
    # As python does: the exception lives on until shutdown (a coroutine it holds warns then).
    sys.last_type, sys.last_value, sys.last_traceback = type(exc), exc, tb
    if sys.version_info >= (3, 12):
        sys.last_exc = exc


def _is_deadlock(exc: BaseException) -> bool:
    from .._core._virtual import VirtualTimeDeadlock

    return isinstance(exc, VirtualTimeDeadlock)


def _is_runner_frame(filename: str) -> bool:
    return filename.startswith(PACKAGE_DIR) or filename == runpy.__file__


def _check_module(module: str) -> None:
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise UsageError(
            f"no module named {module!r}; check the name and that its package is "
            "importable from the current directory"
        )


def run(argv: Sequence[str]) -> int:
    """``asynctrace run``: returns the program's exit status."""
    ours, script, module, program_args = split_run_args(argv, _VALUE_OPTIONS)
    options = _run_parser().parse_args(ours)
    if script is None and module is None:
        raise UsageError(
            "no program given; use `asynctrace run SCRIPT [ARGS...]` "
            "or `asynctrace run -m MODULE [ARGS...]`"
        )
    if options.blocked_threshold <= 0:
        raise UsageError(
            f"--blocked-threshold {options.blocked_threshold!r} must be a positive "
            "number of seconds, e.g. --blocked-threshold 0.05"
        )
    if options.max_spans < 1:
        raise UsageError(f"--max-spans {options.max_spans!r} must be at least 1")
    if not 0 <= options.flush_interval < float("inf"):
        raise UsageError(
            f"--flush-interval {options.flush_interval!r} must be 0 (write at exit only) or a "
            "number of seconds, e.g. --flush-interval 5"
        )
    if script is not None and not os.path.isfile(script):
        raise UsageError(f"script {script!r} not found; check the path (use -m for a module name)")
    target = script if script is not None else str(module)
    stem = os.path.splitext(os.path.basename(target))[0] if script else target
    json_path = None if options.no_json else (options.json or f"{stem}.trace.json")
    if json_path is not None:
        default = None if options.json else "pass --json PATH, or --no-json"
        check_writable(json_path, "--json", fix=default)
    if options.html is not None:
        check_writable(options.html, "--html")
    if options.otlp_json is not None:
        check_writable(options.otlp_json, "--otlp-json")
    check_distinct({"--json": json_path, "--html": options.html, "--otlp-json": options.otlp_json})
    if options.live and (json_path is None or options.flush_interval == 0):
        flag = "--no-json" if json_path is None else "--flush-interval 0"
        raise UsageError(f"--live reads the JSON stream, which {flag} turns off; drop {flag}")
    html = None if options.html is None else _HtmlOutput(options.html, target)
    outputs = () if html is None else (html,)

    try:
        tracing = Tracing(
            name=os.path.basename(target),
            json=json_path,
            outputs=outputs,
            otlp=options.otlp,
            otlp_protocol=options.otlp_protocol,
            otlp_json=options.otlp_json,
            service_name=options.service_name,
            trace_per=options.trace_per,
            max_trace_spans=options.max_trace_spans,
            virtual_time=options.virtual_time,
            seed=options.seed,
            blocked_threshold=options.blocked_threshold,
            max_spans=options.max_spans,
            flush_interval=options.flush_interval,
        )
    except ValueError as exc:  # a bad OTEL_* variable or flag value
        raise UsageError(str(exc)) from None
    finder = _autotrace.install_finder(
        [os.path.dirname(os.path.abspath(script))] if script else [os.getcwd()],
        record_args=options.record_args,
    )
    if module is not None:
        try:
            _check_module(module)
        except UsageError:
            _autotrace.remove_finder(finder)
            raise
    code = None
    if script is not None:
        try:
            code = _autotrace.compile_script(script)
        except SyntaxError as exc:
            # As python reports a script that does not compile: no traceback, status 1.  No
            # line of it ran, so no timeline is written (an earlier one is left as it was).
            _autotrace.remove_finder(finder)
            exc.__traceback__ = None
            sys.excepthook(type(exc), exc, None)
            report(f"no timeline written: {shown(script)} did not compile, so nothing ran")
            return 1
        except OSError as exc:
            _autotrace.remove_finder(finder)
            raise UsageError(
                f"script {script!r} cannot be read ({exc.strerror}); check its permissions"
            ) from None
    status = 0
    interrupted = False
    tracing.start()
    live = None
    if options.live and json_path is not None:
        from pathlib import Path

        from .._stream._live import LiveView

        live = LiveView(Path(json_path), sys.stderr, tty=sys.stderr.isatty()).start()
    previous_sigterm = _write_outputs_on_sigterm(tracing, options, json_path, html, live)
    try:
        _run_program(code, str(script), str(module), program_args, live)
    except SystemExit as exc:
        status = _exit_status(exc)
    except KeyboardInterrupt as exc:
        _print_uncaught(exc)
        interrupted = True
    except BaseException as exc:
        if (options.virtual_time or options.seed is not None) and _is_deadlock(exc):
            # Not the program's error: under python it would hang here forever.
            report(f"error: {exc}")
        else:
            _print_uncaught(exc)
        status = 1
    finally:
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
        _autotrace.remove_finder(finder)
        _flush_stdout()
        _finish(tracing, options, json_path, html)
    if interrupted:
        # As python does: die of SIGINT so the parent sees the interrupt.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    return status


def _run_program(
    code: Any, script: str, module: str, program_args: list[str], live: LiveView | None
) -> None:
    """Run the script (``code``) or the module; the live view gives the terminal back as soon
    as it ends, before an exception it raised is printed."""
    try:
        if code is not None:
            _autotrace.exec_script(code, script, program_args)
        else:
            _autotrace.run_module(module, program_args)
    finally:
        if live is not None:
            live.stop()


def _finish(
    tracing: Tracing, options: argparse.Namespace, json_path: str | None, html: _HtmlOutput | None
) -> None:
    """Stop recording, write the outputs, say where they are, wait (bounded) for OTLP.

    The terminal timeline is drawn while the JSON file is written (a thread), then both are
    waited for before their lines are said.

    The program has ended: no garbage collection until the outputs are out.  Every span
    built here is live until then, and each collection would only scan them all again (a
    third of the time of a 220,000-span run's outputs went to that).
    """
    with gc_paused(), _handing_over_often():
        tracing.stop_recording(wait=False)
        # the timeline of a whole run only: not of a streamed run's last spans
        drawn = not options.no_timeline and not tracing.streamed
        _show(tracing.trace if drawn else None, options, None)  # the JSON file's write goes on
        sent_reports = tracing.wait_exports()
        _show(None, options, None if tracing.json_failed else json_path)
        if html is not None and html.written:
            report(f"HTML timeline: {html.path}")
        for sent in sent_reports:
            if sent.sent and not sent.not_sent:  # a failure already said so in its own line
                protocol = tracing.otlp.protocol if tracing.otlp is not None else "OTLP"
                report(f"OTLP: {sent.sent:,} spans sent to {sent.endpoint} ({protocol})")
        if tracing.otlp is None and tracing.built:  # no exporter thread may still read it
            release(tracing.trace)  # freed before exit


def _write_outputs_on_sigterm(
    tracing: Tracing,
    options: argparse.Namespace,
    json_path: str | None,
    html: _HtmlOutput | None,
    live: LiveView | None,
) -> Any:
    """Under SIGTERM's default action (death), write the outputs first, then die of it.

    Nothing of the program runs after the signal, as under plain python: no finally block,
    no flush of its buffered stdout.  Spans still open end now, marked unfinished.  A program
    that handles SIGTERM itself replaces this handler.  Returns the handler to restore, or
    None when the program's SIGTERM is not the default.
    """
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        return None

    def on_sigterm(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if live is not None:  # the terminal back before the timeline, the stream let go
            live.stop()
        _finish(tracing, options, json_path, html)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
    return previous


class _HtmlOutput:
    """The ``--html`` output: writes the page, or says in one line why it could not."""

    __name__ = "write_html_timeline"

    def __init__(self, path: str, target: str) -> None:
        self.path = path
        self.title = os.path.basename(target)
        self.written = False

    def __call__(self, trace: Trace) -> None:
        from .._export._html import write_html

        try:
            write_html(trace, self.path, title=self.title)
        except OSError as exc:
            report(f"could not write the HTML timeline {self.path!r}: {exc.strerror or exc}")
        else:
            self.written = True


def _flush_stdout() -> None:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stdout.flush()


@contextlib.contextmanager
def _handing_over_often() -> Iterator[None]:
    """The GIL handed over every 1 ms, not 5: the thread that writes the JSON file needs it
    between its system calls, and so gets it while the terminal timeline is drawn rather than
    after.  Only once the program has ended."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, 0.001))
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def _terminal_columns(fallback: int = 100) -> int:
    """``shutil.get_terminal_size((fallback, 24)).columns`` without importing shutil (and with
    it bz2 and lzma, 2 ms of every run): $COLUMNS, else the width of the terminal on stdout,
    else ``fallback``."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or fallback  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return fallback


def _show(trace: Trace | None, options: argparse.Namespace, json_path: str | None) -> None:
    """The terminal timeline of ``trace`` (None: none drawn), and where the JSON file is."""
    if trace is not None:
        try:
            from .._export._terminal import render_timeline, wants_color

            width = max(24, options.width or _terminal_columns())
            view = _terminal_rows.view_arguments(options)
            timeline = render_timeline(
                trace, width=width, color=wants_color(sys.stderr), summary=options.summary, **view
            )
            sys.stderr.write(timeline)
        except Exception as exc:  # the timeline is ours: it MUST NOT change the exit status
            report(f"could not draw the terminal timeline: {exc}")
    if json_path is not None and os.path.exists(json_path):
        report(f"JSON timeline: {json_path} (open it in https://ui.perfetto.dev)")


def view(argv: Sequence[str]) -> int:
    """``asynctrace view TRACE.json [-o PAGE.html]``: show a saved JSON timeline.

    A file that cannot be shown (missing, not a timeline, bigger than ``--max-size``, nested
    too deeply) is one ``asynctrace: error:`` line and exit status 2, like any other mistake
    in the arguments.  A file cut short (a streamed run still going, or killed) is shown up
    to its last complete event, after one line on stderr that says so.
    """
    parser = _Parser(
        prog="asynctrace view",
        description="Show a JSON timeline written by asynctrace: print it as a "
        "terminal timeline, or write it as an HTML page with -o.",
    )
    parser.add_argument("trace", metavar="TRACE.json")
    parser.add_argument(
        "-o",
        "--output",
        metavar="PAGE.html",
        help="write a self-contained HTML timeline page instead of printing",
    )
    parser.add_argument("--width", type=_columns, metavar="COLUMNS")
    parser.add_argument(
        "--summary",
        action="store_true",
        help="end the timeline with the critical path and where the waiting went",
    )
    _terminal_rows.add_view_options(parser)
    parser.add_argument(
        "--follow",
        action="store_true",
        help="follow the file while a run writes it: redraw the live view every second "
        "(a line a second when not on a terminal) until Ctrl-C",
    )
    parser.add_argument(
        "--max-size",
        type=_mebibytes,
        default=VIEW_MAX_MIB,
        metavar="MiB",
        help=f"refuse a bigger file (default {VIEW_MAX_MIB}; reading takes ~7x its size)",
    )
    options = parser.parse_args(argv)
    if not options.trace:
        raise UsageError(
            "the TRACE.json path is empty (''); give the path of a JSON timeline,"
            " e.g. `asynctrace view prog.trace.json`"
        )
    if options.follow:
        from .._stream._live import view_follow

        return view_follow(options.trace, options.output)
    from .._export._chrome_read import TraceTooLarge, read_chrome_json_repaired
    from .._export._terminal import render_timeline, wants_color

    if options.output is not None:
        check_writable(options.output, "-o")
        if same_file(options.output, options.trace):
            raise UsageError(
                f"-o {options.output!r} is the trace being read; write the page next to it,"
                f" e.g. -o {output_name(options.output, '-o')!r}"
            )
    try:
        trace, cut = read_chrome_json_repaired(
            options.trace, max_bytes=int(options.max_size * 2**20)
        )
    except TraceTooLarge as exc:
        need = math.ceil(exc.size / 2**20) + 1
        raise UsageError(
            f"{shown(options.trace)} is {too_large(exc.size, exc.limit, options.max_size)};"
            f" pass --max-size {need} to read it anyway,"
            " or open it in https://ui.perfetto.dev"
        ) from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if cut is not None:
        report(
            f"{shown(os.path.basename(options.trace))} was cut short"
            " (a run still going or killed);"
            f" showing the {cut.spans:,} spans before the cut"
        )
    if options.output is not None:
        from .._export._html import write_html

        try:
            write_html(trace, options.output, title=os.path.basename(options.trace))
        except OSError as exc:
            raise UsageError(
                f"-o {options.output!r} could not be written: {exc.strerror}; "
                "choose a path you can write to"
            ) from None
        report(f"HTML timeline: {options.output}")
        return 0
    width = max(24, options.width or _terminal_columns())
    view = _terminal_rows.view_arguments(options)
    sys.stdout.write(
        render_timeline(
            trace, width=width, color=wants_color(sys.stdout), summary=options.summary, **view
        )
    )
    return 0


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the ``asynctrace`` command."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if not args or args[0] in ("-h", "--help"):
            print(
                "usage: asynctrace run [options] (SCRIPT | -m MODULE) [ARGS...]\n"
                "       asynctrace view TRACE.json [-o PAGE.html | --follow]\n"
                "       asynctrace attach PID [--duration S] [--json PATH] [--html PATH]\n"
                "       asynctrace --version\n\n"
                "`asynctrace run --help` lists the options.",
                file=sys.stdout if args else sys.stderr,
            )
            sys.exit(0 if args else USAGE_ERROR)
        if args[0] == "--version":
            print(f"asynctrace {__version__}")
            sys.exit(0)
        command, rest = args[0], args[1:]
        if command == "run":
            sys.exit(run(rest))
        if command == "view":
            sys.exit(view(rest))
        if command == "attach":
            from ._attach import attach

            sys.exit(attach(rest))
        if command.lower().endswith(".json") and os.path.isfile(command):
            raise UsageError(
                f"unknown command {command!r}; to show a timeline, put `view` first:"
                f" `asynctrace view {shell_words(args)}`"
            )
        if command == "-m" or command.startswith("--") or looks_like_a_program(command):
            raise UsageError(
                f"unknown command {command!r}; to trace a program, put `run` first:"
                f" `asynctrace run {shell_words(args)}`"
            )
        raise UsageError(f"unknown command {command!r}; use `asynctrace run` or `asynctrace view`")
    except UsageError as exc:
        print(f"asynctrace: error: {exc}", file=sys.stderr)
        sys.exit(USAGE_ERROR)
