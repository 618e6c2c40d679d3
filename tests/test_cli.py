"""``asynctrace run`` / ``view`` / ``--version`` from the outside (issue 2, point 8).

A mistake in asynctrace's own command line MUST be one line on stderr starting
``asynctrace: error:``, naming the bad value and the fix, with exit status 2 and no traceback;
the program MUST NOT run.  Everything after the script (or ``-m MODULE``) belongs to the program.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import asynctrace
from asynctrace._commands._cli import _VALUE_OPTIONS
from asynctrace._commands._cli_args import UsageError, split_run_args
from asynctrace._export._chrome_read import read_chrome_json

TIMEOUT = 60
PROGRAM = """\
import asyncio
import sys

async def child(n):
    await asyncio.sleep(0.001)
    return n

async def main():
    print("ran", sys.argv[1:], await asyncio.gather(child(1), child(2)))

asyncio.run(main())
"""


def _command() -> list[str]:
    """The installed console script when there is one, else ``python -m asynctrace``."""
    exe = shutil.which("asynctrace", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "asynctrace"]


def _asynctrace(*args: str, cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONIOENCODING="utf-8")
    return subprocess.run(
        [*_command(), *args],
        input=stdin.decode(),
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=TIMEOUT,
        check=False,
    )


@pytest.fixture
def prog(tmp_path: Path) -> Path:
    path = tmp_path / "prog.py"
    path.write_text(PROGRAM)
    return path


# -- user mistakes: one line, exit 2, no traceback, nothing run --------------------------------


def _readonly_dir(tmp_path: Path) -> str:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("root can write to a read-only directory")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    return str(ro / "t.json")


# (id, argv after `asynctrace` ({prog} and {tmp} are filled in), what the line must mention,
#  a pattern for the fix it must suggest)
USAGE_ERRORS = [
    ("missing script", ["run", "{tmp}/missing.py", "--json", "x"], "missing.py", r"path|-m"),
    ("unknown flag", ["run", "--bogus", "{prog}"], "--bogus", r"--help"),
    ("negative threshold", ["run", "--blocked-threshold", "-1", "{prog}"], "-1", r"e\.g\."),
    (
        "threshold not a number",
        ["run", "--blocked-threshold", "soon", "{prog}"],
        "soon",
        r"--help|e\.g\.",
    ),
    ("width not a number", ["run", "--width", "wide", "{prog}"], "wide", r"--help"),
    ("max spans zero", ["run", "--max-spans", "0", "{prog}"], "0", r"at least"),
    (
        "json dir missing",
        ["run", "--json", "{tmp}/no/such/dir/t.json", "{prog}"],
        "no/such/dir",
        r"create it|another path",
    ),
    ("json is a directory", ["run", "--json", "{tmp}", "{prog}"], "{tmp}", r"file path"),
    (
        "json in /proc",
        ["run", "--json", "/proc/asynctrace-t.json", "{prog}"],
        "/proc/asynctrace-t.json",
        r"choose|writ",
    ),
    ("no program", ["run"], "no program", r"asynctrace run SCRIPT"),
    (
        "no program after options",
        ["run", "--virtual-time", "--no-timeline"],
        "no program",
        r"asynctrace run SCRIPT",
    ),
    ("-m without module", ["run", "-m"], "-m", r"e\.g\."),
    ("json without path", ["run", "--json"], "--json", r"--help"),
    ("unknown command", ["frobnicate", "{prog}"], "frobnicate", r"asynctrace run"),
    ("view missing file", ["view", "{tmp}/nope.json"], "nope.json", r"asynctrace run --json"),
    ("view not json", ["view", "{prog}"], "prog.py", r"asynctrace run --json"),
    ("view nothing", ["view"], "TRACE.json", r"--help"),
    # issue 15: what a newcomer hit
    ("forgot run", ["{prog}", "a b"], "{prog}", r"`asynctrace run .*prog\.py 'a b'`"),
    ("forgot run, -m", ["-m", "pkg.app"], "'-m'", r"`asynctrace run -m pkg\.app`"),
    ("forgot run, option", ["--no-json", "{prog}"], "--no-json", r"`asynctrace run --no-json "),
    ("view empty path", ["view", ""], "empty", r"asynctrace view \S+\.json"),
    ("view -o empty path", ["view", "{tmp}/t.json", "-o", ""], "-o", r"-o 'trace\.html'"),
    ("html empty path", ["run", "--no-json", "--html", "", "{prog}"], "--html", r"e\.g\."),
    (
        "otlp then a word",
        ["run", "--otlp", "localhost", "{prog}"],
        "'localhost'",
        r"--otlp=localhost",
    ),
    ("otlp then no script", ["run", "--otlp", "{tmp}/app"], "app", r"--otlp=\S+/app|-- PROGRAM"),
]


def _check_usage_error(result: subprocess.CompletedProcess[str], mentions: str, fix: str) -> None:
    lines = result.stderr.splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("asynctrace: error: "), line
    assert mentions in line, line
    assert re.search(fix, line), f"no fix suggested ({fix!r}) in: {line}"
    assert result.returncode == 2, (result.returncode, line)
    assert "ran" not in result.stdout  # the program did not run


@pytest.mark.parametrize(
    ("argv", "mentions", "fix"),
    [pytest.param(a, m, f, id=i) for i, a, m, f in USAGE_ERRORS],
)
def test_usage_error_is_one_line_exit_2(
    tmp_path: Path, prog: Path, argv: list[str], mentions: str, fix: str
) -> None:
    fill = {"prog": str(prog), "tmp": str(tmp_path)}
    argv = [a.format(**fill) for a in argv]
    before = set(tmp_path.iterdir())
    result = _asynctrace(*argv, cwd=tmp_path)
    _check_usage_error(result, mentions.format(**fill), fix)
    assert set(tmp_path.iterdir()) == before  # no timeline written either
    assert not Path("/proc/asynctrace-t.json").exists()


def test_json_in_readonly_dir(tmp_path: Path, prog: Path) -> None:
    path = _readonly_dir(tmp_path)
    result = _asynctrace("run", "--json", path, str(prog), cwd=tmp_path)
    _check_usage_error(result, path, r"choose|writ")


def test_missing_module_is_a_clean_error(tmp_path: Path) -> None:
    """``-m`` with a module that does not exist is a mistake in our command line, not a crash."""
    result = _asynctrace("run", "-m", "no_such_module_xyz", cwd=tmp_path)
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("asynctrace: error:")]
    assert len(errors) == 1 and "no_such_module_xyz" in errors[0], result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.returncode == 2


def test_bare_command_prints_usage_and_fails(tmp_path: Path) -> None:
    result = _asynctrace(cwd=tmp_path)
    assert result.returncode == 2
    assert "usage: asynctrace run" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


# -- what works -----------------------------------------------------------------------------


def test_version(tmp_path: Path) -> None:
    result = _asynctrace("--version", cwd=tmp_path)
    assert (result.returncode, result.stdout.strip()) == (0, f"asynctrace {asynctrace.__version__}")
    assert result.stderr == ""


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_run_help(tmp_path: Path, flag: str) -> None:
    result = _asynctrace("run", flag, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for option in (
        "--json",
        "--no-json",
        "--virtual-time",
        "--blocked-threshold",
        "--max-spans",
        "--no-timeline",
        "--width",
        "-m MODULE",
        "--otlp URL or --otlp=URL",
    ):
        assert option in result.stdout, option
    assert result.stderr == ""


def test_top_level_help(tmp_path: Path) -> None:
    result = _asynctrace("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "asynctrace run" in result.stdout and "asynctrace view" in result.stdout


def test_run_script_writes_default_json_and_timeline(tmp_path: Path, prog: Path) -> None:
    result = _asynctrace("run", "--width", "80", str(prog), "a", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ran ['a'] [1, 2]\n"
    default = tmp_path / "prog.trace.json"
    assert default.is_file()
    assert result.stderr.splitlines()[-1].startswith("asynctrace: JSON timeline: prog.trace.json")
    assert "could not" not in result.stderr, result.stderr
    assert "child" in result.stderr  # the terminal timeline
    trace = read_chrome_json(default)
    assert [s.name for s in trace.spans_matching(kind="task")] == ["main", "child", "child"]


def test_options_after_the_script_belong_to_the_script(tmp_path: Path, prog: Path) -> None:
    out = tmp_path / "ours.json"
    result = _asynctrace(
        "run",
        "--no-timeline",
        "--json",
        str(out),
        str(prog),
        "--json",
        "x",
        "--virtual-time",
        "-m",
        "mod",
        "--help",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ran ['--json', 'x', '--virtual-time', '-m', 'mod', '--help'] [1, 2]\n"
    assert out.is_file()
    assert not (tmp_path / "x").exists()
    assert read_chrome_json(out).clock == "monotonic"  # --virtual-time went to the program


def test_no_json(tmp_path: Path, prog: Path) -> None:
    result = _asynctrace("run", "--no-json", "--no-timeline", str(prog), cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == "ran [] [1, 2]\n"
    assert result.stderr == ""
    assert not list(tmp_path.glob("*.json"))


def test_virtual_time_skips_sleeps(tmp_path: Path) -> None:
    script = tmp_path / "slow.py"
    script.write_text(
        "import asyncio\n\nasync def main():\n    await asyncio.sleep(30)\n\n"
        "asyncio.run(main())\nprint('woke')\n"
    )
    out = tmp_path / "t.json"
    result = _asynctrace(
        "run", "--virtual-time", "--no-timeline", "--json", str(out), str(script), cwd=tmp_path
    )
    assert (result.returncode, result.stdout) == (0, "woke\n"), result.stderr
    trace = read_chrome_json(out)
    assert trace.clock == "virtual"
    (sleep,) = trace.spans_matching("asyncio.sleep(30)", kind="await")
    assert sleep.duration == pytest.approx(30, abs=0.01)


def test_python_dash_m_asynctrace(tmp_path: Path, prog: Path) -> None:
    out = tmp_path / "t.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "asynctrace",
            "run",
            "--no-timeline",
            "--json",
            str(out),
            str(prog),
            "b",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ran ['b'] [1, 2]\n"
    assert len(read_chrome_json(out).spans_matching("child", kind="task")) == 2


def test_run_module(tmp_path: Path) -> None:
    pkg = tmp_path / "app"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "work.py").write_text(
        "import asyncio\n\nasync def step(n):\n    await asyncio.sleep(0)\n    return n + 1\n"
    )
    (pkg / "__main__.py").write_text(
        "import asyncio, sys\nfrom .work import step\n\n"
        "async def main():\n    print(__name__, sys.argv[1:], await step(1))\n\n"
        "asyncio.run(main())\n"
    )
    out = tmp_path / "t.json"
    plain = subprocess.run(
        [sys.executable, "-m", "app", "x", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=TIMEOUT,
        check=False,
    )
    result = _asynctrace(
        "run", "--no-timeline", "--json", str(out), "-m", "app", "x", "--json", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == plain.stdout == "__main__ ['x', '--json'] 2\n"
    trace = read_chrome_json(out)
    (step,) = trace.spans_matching("step", kind="coroutine")
    assert str(step.attributes["code.file.path"]).endswith(os.path.join("app", "work.py"))


def test_view_of_the_json_written(tmp_path: Path, prog: Path) -> None:
    out = tmp_path / "t.json"
    _asynctrace("run", "--no-timeline", "--json", str(out), str(prog), cwd=tmp_path)
    result = _asynctrace("view", "--width", "90", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "main" in result.stdout and "child" in result.stdout
    assert "gather(child \u00d7 2)" in result.stdout  # the multiplication sign
    assert result.stderr == ""


FAILING = """\
import asyncio

async def child(n):
    await asyncio.sleep(0.001)
    if n == 2:
        raise ValueError(n)

async def main():
    await asyncio.gather(child(1), child(2), return_exceptions=True)

asyncio.run(main())
"""


def _view_colors(tmp_path: Path, env: dict[str, str], tty: bool) -> str:
    """``asynctrace view`` of a run with a failed task, its stdout a pipe or a terminal."""
    (tmp_path / "failing.py").write_text(FAILING)
    out = tmp_path / "failing.json"
    _asynctrace("run", "--no-timeline", "--json", str(out), "failing.py", cwd=tmp_path)
    command = [*_command(), "view", "--width", "90", str(out)]
    environment = {**os.environ, **env}  # conftest.py took NO_COLOR and FORCE_COLOR out
    if not tty:
        done = subprocess.run(
            command, capture_output=True, text=True, env=environment, timeout=TIMEOUT
        )
        return done.stdout
    leader, follower = os.openpty()
    with subprocess.Popen(command, stdout=follower, env=environment) as proc:
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal's other side closed: all read
                break
            if not chunk:
                break
            chunks.append(chunk)
        proc.wait(timeout=TIMEOUT)
    os.close(leader)
    return b"".join(chunks).decode()


@pytest.mark.parametrize(
    ("env", "tty", "colored"),
    [
        ({}, True, True),  # a terminal: a failed task's row is red
        ({}, False, False),  # a pipe, a file: plain text
        ({"NO_COLOR": "1"}, True, False),  # no-color.org
        ({"FORCE_COLOR": "1"}, False, True),  # force-color.org: a CI log that shows colour
        ({"NO_COLOR": "1", "FORCE_COLOR": "1"}, False, False),  # the one who said no wins
        ({"NO_COLOR": ""}, True, True),  # set but empty: not set
    ],
)
def test_color_follows_the_terminal_and_no_color_and_force_color(
    tmp_path: Path, env: dict[str, str], tty: bool, colored: bool
) -> None:
    text = _view_colors(tmp_path, env, tty)
    assert "Task-3 child() [error]" in re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert ("\x1b[31m" in text) is colored


def test_uncaught_exception_still_writes_the_timeline(tmp_path: Path) -> None:
    script = tmp_path / "fails.py"
    script.write_text(
        "import asyncio\n\nasync def before():\n    await asyncio.sleep(0)\n\n"
        "async def main():\n    await asyncio.create_task(before())\n"
        "    raise OSError('disk on fire')\n\nasyncio.run(main())\n"
    )
    out = tmp_path / "t.json"
    result = _asynctrace("run", "--json", str(out), str(script), cwd=tmp_path)
    assert result.returncode == 1
    assert "OSError: disk on fire" in result.stderr
    assert "could not" not in result.stderr, result.stderr
    trace = read_chrome_json(out)
    (before,) = trace.spans_matching("before", kind="task")
    assert before.status == "ok"
    (main,) = trace.spans_matching("main", kind="task")
    assert (main.status, main.error) == ("error", "OSError: disk on fire")


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("sys.exit('bye')", 1),
        ("sys.exit(None)", 0),
        ("sys.exit(0)", 0),
        ("sys.exit(300)", 300 % 256),
        ("raise SystemExit(7)", 7),
    ],
)
def test_exit_status_as_python(tmp_path: Path, code: str, status: int) -> None:
    script = tmp_path / "exits.py"
    script.write_text(f"import sys\nprint('out')\n{code}\n")
    plain = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    result = _asynctrace("run", "--no-json", "--no-timeline", str(script), cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (
        plain.returncode,
        plain.stdout,
        plain.stderr,
    )
    assert plain.returncode == status


def test_script_without_asyncio_draws_a_timeline(tmp_path: Path) -> None:
    """A program that never starts a loop still ends cleanly, with no internal error reported."""
    script = tmp_path / "plain.py"
    script.write_text("print('no asyncio here')\n")
    result = _asynctrace("run", "--width", "80", str(script), cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "no asyncio here\n")
    assert "could not" not in result.stderr, result.stderr
    assert (tmp_path / "plain.trace.json").is_file()


def test_stdin_is_the_programs(tmp_path: Path) -> None:
    script = tmp_path / "cat.py"
    script.write_text("import sys\nprint(sys.stdin.read().upper(), end='')\n")
    result = _asynctrace(
        "run", "--no-json", "--no-timeline", str(script), cwd=tmp_path, stdin=b"hello\nworld\n"
    )
    assert (result.returncode, result.stdout) == (0, "HELLO\nWORLD\n")


def test_a_deadlock_under_virtual_time_is_one_clear_line_and_the_trace_is_kept(
    tmp_path: Path,
) -> None:
    program = tmp_path / "dead.py"
    program.write_text(
        "import asyncio\n"
        "async def waiter(ev):\n    await ev.wait()\n"
        "async def main():\n    await asyncio.gather(waiter(asyncio.Event()), asyncio.sleep(1))\n"
        "asyncio.run(main())\n"
    )
    json_path = tmp_path / "dead.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "asynctrace",
            "run",
            "--virtual-time",
            "--no-timeline",
            "--json",
            str(json_path),
            str(program),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith("asynctrace: error: asynctrace virtual time: deadlock at t=1.000 s")
    assert "Task-2 (waiter) on Event.wait" in lines[0]
    assert json_path.is_file()


# -- an output never replaces a file asynctrace did not write (issue 15) -----------------------


def _files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file()}


@pytest.mark.parametrize("option", ["--html", "--json", "--otlp-json"])
def test_an_output_option_that_takes_the_script_leaves_it_alone(
    tmp_path: Path, prog: Path, option: str
) -> None:
    """``run --html scraper.py urls.txt``: the option took the script as its path."""
    (tmp_path / "scraper.py").write_text(PROGRAM)
    (tmp_path / "urls.txt").write_text("http://example.com\n")
    before = _files(tmp_path)
    for program in ("urls.txt", "prog.py"):
        result = _asynctrace("run", option, "scraper.py", program, cwd=tmp_path)
        _check_usage_error(result, f"{option} 'scraper.py'", rf"e\.g\. {option} 'scraper\.")
        assert "Python file" in result.stderr
        assert _files(tmp_path) == before


@pytest.mark.parametrize(
    ("argv", "mentions", "fix"),
    [
        # a .py name is refused even when no such file exists: a program's name, misplaced
        (["run", "--json", "new.py", "prog.py"], "--json 'new.py'", r"--json 'new\.trace\.json'"),
        (["view", "t.json", "-o", "page.PY"], "-o 'page.PY'", r"-o 'page\.html'"),
        (["run", "--json", "notes.txt", "prog.py"], "--json 'notes.txt'", r"delete that file"),
        (["run", "--no-json", "--otlp-json", "other.json", "prog.py"], "'other.json'", r"delete"),
        (["run", "--no-json", "--html", "index.html", "prog.py"], "'index.html'", r"delete"),
        (["view", "t.json", "-o", "index.html"], "-o 'index.html'", r"delete that file"),
        (["run", "prog.py"], "--json 'prog.trace.json'", r"--no-json"),  # the default path
        (["run", "--json", "same", "--html", "same", "prog.py"], "--json path", r"--html"),
        (["view", "t.json", "-o", "t.json"], "the trace being read", r"-o 't\.html'"),
    ],
)
def test_an_output_never_replaces_a_file_asynctrace_did_not_write(
    tmp_path: Path, prog: Path, argv: list[str], mentions: str, fix: str
) -> None:
    _asynctrace("run", "--no-timeline", "--json", "t.json", "prog.py", cwd=tmp_path)
    (tmp_path / "notes.txt").write_text("my notes\n")
    (tmp_path / "other.json").write_text('{"resourceSpans":[{"resource":{}}]}\n')
    (tmp_path / "index.html").write_text("<!DOCTYPE html>\n<p>my page</p>\n")
    (tmp_path / "prog.trace.json").write_text('{"traceEvents":[]}')  # another tool's trace
    before = _files(tmp_path)
    result = _asynctrace(*argv, cwd=tmp_path)
    _check_usage_error(result, mentions, fix)
    assert _files(tmp_path) == before


def test_outputs_of_ours_are_replaced(tmp_path: Path, prog: Path) -> None:
    """A JSON timeline (whole, streamed, cut), an OTLP/JSON file, a page, an empty file."""
    first = _asynctrace(
        "run", "--no-timeline", "--json", "t.json", "--html", "t.html", "--otlp-json",
        "t.otlp.json", "prog.py", cwd=tmp_path,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    whole = (tmp_path / "t.json").read_bytes()
    (tmp_path / "cut.json").write_bytes(whole[:200])
    stream_head = b'[\n{"ph":"M","pid":1,"tid":0,"name":"process_name","args":{"name":"asynctrace'
    (tmp_path / "stream.json").write_bytes(stream_head)
    (tmp_path / "empty.json").write_bytes(b"")
    for name in ("t.json", "cut.json", "stream.json", "empty.json", "t.html", "t.otlp.json"):
        result = _asynctrace("run", "--no-timeline", "--json", name, "prog.py", cwd=tmp_path)
        assert result.returncode == 0, (name, result.stderr)
        assert read_chrome_json(tmp_path / name).spans_matching(kind="task"), name
    again = _asynctrace(
        "run", "--no-timeline", "--no-json", "--html", "t.html", "--otlp-json", "t.otlp.json",
        "prog.py", cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    view = _asynctrace("view", "t.json", "-o", "t.html", cwd=tmp_path)
    assert view.returncode == 0, view.stderr
    assert view.stderr == "asynctrace: HTML timeline: t.html\n"


# -- `--otlp ENDPOINT` with a space, `--`, what a newcomer hit (issue 15) ----------------------


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://localhost:4317",
        "https://collector.example.com:4318/v1/traces",
        "grpc://localhost:4317",
        "http://user:pw@host:4317",
        "localhost:4317",
        "127.0.0.1:4318",
        "[::1]:4317",
        "otel-collector.monitoring.svc:4317",
    ],
)
def test_otlp_takes_the_next_word_that_is_an_endpoint(endpoint: str) -> None:
    ours, script, module, args = split_run_args(
        ["--otlp", endpoint, "prog.py", "a"], _VALUE_OPTIONS
    )
    assert (ours, script, module, args) == ([f"--otlp={endpoint}"], "prog.py", None, ["a"])


@pytest.mark.parametrize(
    ("argv", "ours", "script", "module"),
    [
        (["--otlp", "prog.py"], ["--otlp"], "prog.py", None),  # .py: the program, even missing
        (["--otlp", "app"], ["--otlp"], "app", None),  # an existing file: the program
        (["--otlp", "-m", "pkg.app"], ["--otlp"], None, "pkg.app"),
        (["--otlp", "--no-json", "prog.py"], ["--otlp", "--no-json"], "prog.py", None),
        (["--otlp", "--", "localhost:4317"], ["--otlp"], "localhost:4317", None),
        (["--otlp=localhost:1", "prog.py"], ["--otlp=localhost:1"], "prog.py", None),
        (["--otlp"], ["--otlp"], None, None),
        # `--` ends asynctrace's options: what follows is the program and its arguments
        (["--", "prog.py", "--json", "x"], [], "prog.py", None),
        (["--no-json", "--", "-weird.py"], ["--no-json"], "-weird.py", None),
        (["--", "-m", "pkg.app"], [], None, "pkg.app"),
        (["--", "--", "x"], [], "--", None),
        (["--"], [], None, None),
    ],
)
def test_split_run_args(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    ours: list[str],
    script: str | None,
    module: str | None,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app").write_text("print('app')\n")
    assert split_run_args(argv, _VALUE_OPTIONS)[:3] == (ours, script, module)


@pytest.mark.parametrize(
    ("word", "what"),
    [("localhost", "neither"), ("app", "neither"), ("", "neither"), ("h:1", "both")],
)
def test_otlp_then_an_ambiguous_word_is_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, word: str, what: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "h:1").write_text("print('a file named like host:port')\n")
    with pytest.raises(UsageError, match=rf"--otlp={word}.*--otlp -- PROGRAM") as raised:
        split_run_args(["--otlp", word, "prog.py"], _VALUE_OPTIONS)
    assert what in str(raised.value)


def test_double_dash_ends_the_options(tmp_path: Path, prog: Path) -> None:
    result = _asynctrace("run", "--no-timeline", "--", "prog.py", "--json", "x", "--", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ran ['--json', 'x', '--'] [1, 2]\n"
    assert (tmp_path / "prog.trace.json").is_file() and not (tmp_path / "x").exists()


def test_a_syntax_error_writes_no_timeline(tmp_path: Path) -> None:
    """Python's own report and exit status, one line of ours, and no file (an old one is kept)."""
    (tmp_path / "bad.py").write_text("import asyncio\n\ndef f(:\n    pass\n")
    earlier = tmp_path / "bad.trace.json"
    _asynctrace("run", "--no-timeline", "--json", str(earlier), "prog.py", cwd=tmp_path)
    (tmp_path / "prog.py").write_text(PROGRAM)
    assert _asynctrace("run", "--no-timeline", "--json", str(earlier), "prog.py", cwd=tmp_path)
    kept = earlier.read_bytes()
    plain = subprocess.run(
        [sys.executable, "bad.py"], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    result = _asynctrace("run", "--html", "bad.html", "bad.py", cwd=tmp_path)
    assert (result.returncode, plain.returncode) == (1, 1)
    assert result.stdout == ""
    program, ours = result.stderr.splitlines()[:-1], result.stderr.splitlines()[-1]
    assert "\n".join(program) + "\n" == plain.stderr
    assert "SyntaxError" in plain.stderr
    assert ours == "asynctrace: no timeline written: bad.py did not compile, so nothing ran"
    assert earlier.read_bytes() == kept
    assert not (tmp_path / "bad.html").exists()


@pytest.mark.parametrize(
    ("max_size", "limit"),
    [("0.001", "1.0 KiB"), ("0.0000001", "0 bytes"), ("0.00001", "10 bytes")],
)
def test_view_too_large_says_true_sizes(
    tmp_path: Path, prog: Path, max_size: str, limit: str
) -> None:
    _asynctrace("run", "--no-timeline", "--json", "t.json", "prog.py", cwd=tmp_path)
    result = _asynctrace("view", "--max-size", max_size, "t.json", cwd=tmp_path)
    _check_usage_error(result, f"more than --max-size {float(max_size):g} MiB ({limit})", "pass")
    size = (tmp_path / "t.json").stat().st_size
    match = re.search(r"is ([\d.,]+) (bytes|KiB), more than", result.stderr)
    assert match, result.stderr
    shown = float(match[1].replace(",", "")) * (1024 if match[2] == "KiB" else 1)
    assert abs(shown - size) <= 52, (shown, size)  # one decimal of KiB


def test_view_too_large_near_the_limit_says_bytes(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 1_100_000)
    result = _asynctrace("view", "--max-size", "1", str(big), cwd=tmp_path)
    _check_usage_error(result, "is 1,100,000 bytes, more than --max-size 1 MiB (1,048,576", "pass")


# -- `--otlp` to a real receiver: the spans arrive, and one line says so ----------------------


@pytest.fixture(params=["grpc", "http/protobuf"])
def receiver(request: pytest.FixtureRequest) -> Iterator[Any]:
    otlp_receiver = pytest.importorskip("otlp_receiver")  # tests/, on sys.path under pytest
    yield from otlp_receiver.running(request.param)


def _otlp_env() -> dict[str, str]:
    """No OTLP variable from the machine; proxies MUST NOT divert loopback traffic."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "GRPC_")) and not k.lower().endswith("_proxy")
    }
    return dict(env, NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")


def _run_otlp(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_command(), "run", "--no-timeline", "--no-json", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=dict(_otlp_env(), PYTHONIOENCODING="utf-8"),
        timeout=TIMEOUT,
        check=False,
    )


def test_otlp_endpoint_after_a_space_delivers_and_says_so(
    tmp_path: Path, prog: Path, receiver: Any
) -> None:
    protocol = receiver.protocol
    scheme, _, rest = receiver.endpoint.partition("://")
    endpoint = f"{scheme}://user:s3cr3t@{rest}"  # credentials in the URL are never shown
    result = _run_otlp(
        "--otlp-protocol", protocol, "--otlp", endpoint, "prog.py", "x", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ran ['x'] [1, 2]\n"
    spans = len(receiver.spans)
    assert spans >= 4  # run, main, two children and their awaits
    assert result.stderr == (
        f"asynctrace: OTLP: {spans} spans sent to {receiver.endpoint} ({protocol})\n"
    )
    assert "s3cr3t" not in result.stderr and "user" not in result.stderr


def test_otlp_failure_is_one_line_and_no_success_line(tmp_path: Path, prog: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = _run_otlp("--otlp", f"127.0.0.1:{port}", "prog.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"asynctrace: OTLP export to http://127.0.0.1:{port} failed:")
    assert "spans not sent" in lines[0]


@pytest.mark.parametrize("command", ["run", "view"])
def test_cli_md_lists_every_option(tmp_path: Path, command: str) -> None:
    """docs/cli.md's tables name every option ``--help`` shows (issue 15: five were missing)."""
    page = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text()
    result = _asynctrace(command, "--help", cwd=tmp_path)
    options = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-o)\b", result.stdout)) - {"--help"}
    assert options >= {"--width"}, result.stdout
    documented = set(re.findall(r"`(--?[a-z][a-z-]*)", page))
    assert options <= documented, sorted(options - documented)
