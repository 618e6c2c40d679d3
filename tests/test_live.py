"""The live view: ``asynctrace view --follow`` and ``asynctrace run --live``, against a running
program (tests/live_programs/server.py), in a real terminal (tmux) and through a pipe; the
stream's ``asynctrace_open`` events; the follower over a file that is cut, replaced, or holds
lines that are not events."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import asynctrace
from asynctrace._export._chrome_read import read_chrome_json
from asynctrace._stream import _flush
from asynctrace._stream._chrome_stream import OPEN_EVENT
from asynctrace._stream._follow import Follower
from asynctrace._stream._live import LiveState

SERVER = Path(__file__).resolve().parent / "live_programs" / "server.py"
TMUX = shutil.which("tmux")
_SESSIONS = itertools.count()


def _asynctrace(*args: str) -> list[str]:
    return [sys.executable, "-m", "asynctrace", *args]


def _server(tmp_path: Path, *args: str, seconds: str = "") -> subprocess.Popen[str]:
    """The server under ``asynctrace run``, its stream flushed every 0.2 s."""
    trace = tmp_path / "server.trace.json"
    command = _asynctrace(
        "run", "--no-timeline", "--json", str(trace), "--flush-interval", "0.2", *args, str(SERVER)
    )
    if seconds:
        command.append(seconds)
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )


def _until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _open_events(path: Path) -> list[dict[str, object]]:
    events = []
    for line in path.read_bytes().split(b"\n"):
        if OPEN_EVENT.encode() in line:
            events.append(json.loads(line.rstrip(b",")))
    return events


# -- the stream ---------------------------------------------------------------------------


def test_stream_says_what_is_in_flight_and_readers_skip_it(tmp_path: Path) -> None:
    # --max-spans 10: the run is shed, so the stream is finished in place, not rewritten
    child = _server(tmp_path, "--max-spans", "10", seconds="1.5")
    _out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    trace_path = tmp_path / "server.trace.json"
    snapshots = _open_events(trace_path)
    tasks = [ev["args"]["tasks"] for ev in snapshots]  # type: ignore[index]
    assert tasks[-1] == 0  # the last flush, after the program ended: nothing in flight
    assert 5 in tasks  # main, three consumers, the watchdog (and at times a failing job)
    args = next(ev["args"] for ev in reversed(snapshots) if ev["args"]["tasks"] == 5)  # type: ignore[index]
    assert isinstance(args, dict)
    awaited = {ev["args"]["name"] for ev in args["spans"] if ev["cat"] == "await"}
    assert "asyncio.sleep(30)" in awaited
    assert "Queue.get" in awaited or "asyncio.sleep(0.04)" in awaited
    assert all(ev["args"]["status"] == "unfinished" for ev in args["spans"])
    # the reader takes the slices only: the snapshots' open spans are not spans of the trace
    lines = trace_path.read_bytes().split(b"\n")
    slices = sum(b'"ph":"X"' in line and OPEN_EVENT.encode() not in line for line in lines)
    trace = read_chrome_json(trace_path)
    assert len(trace.spans) == slices
    assert not [s for s in trace.spans if s.status == "unfinished"]
    view = subprocess.run(
        _asynctrace("view", "--width", "100", str(trace_path)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert view.returncode == 0, view.stderr
    assert "watchdog watchdog() [cancelled]" in view.stdout


def test_a_failing_in_flight_event_is_said_once_and_the_spans_stream_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(_flush, "in_flight", broken)

    async def main() -> None:
        for _ in range(30):
            await asyncio.sleep(0.01)

    path = tmp_path / "t.json"
    with asynctrace.tracing(json=str(path), otel=False, flush_interval=0.05, max_spans=5):
        asyncio.run(main())
    err = capsys.readouterr().err
    assert err.count("could not write what is in flight") == 1, err
    assert OPEN_EVENT.encode() not in path.read_bytes()
    assert len(read_chrome_json(path).spans_matching("asyncio.sleep(0.01)")) == 30


# -- the follower -------------------------------------------------------------------------


def _line(event: dict[str, object]) -> bytes:
    return json.dumps(event).encode() + b",\n"


def test_follower_reads_whole_lines_and_starts_over_when_cut_or_replaced(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    follower = Follower(path)
    assert follower.poll() == ([], False)
    assert follower.problem == "does not exist (yet)"
    path.write_bytes(b"[\n" + _line({"n": 1}) + b'{"n": 2')
    first = follower.poll()
    assert first.reset and first.events == [{"n": 1}]
    with path.open("ab") as f:
        f.write(b"},\n" + b"not json,\n" + _line({"n": 3}))
    second = follower.poll()
    assert second == ([{"n": 2}, {"n": 3}], False)
    assert follower.bad_lines == 1
    assert follower.poll() == ([], False)
    os.truncate(path, 3)  # cut: what was read is gone
    cut = follower.poll()
    assert cut.reset and cut.events == []
    replaced = tmp_path / "new.json"
    replaced.write_bytes(b"[\n" + _line({"n": 9}))
    os.replace(replaced, path)  # same size class, another file
    again = follower.poll()
    assert again == ([{"n": 9}], True)
    path.unlink()
    assert follower.poll().reset
    assert follower.problem == "does not exist (yet)"


def test_follower_starts_over_when_another_run_writes_past_where_it_was(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_bytes(b"[\n" + _line({"run": "a", "n": 1}))
    follower = Follower(path)
    assert follower.poll().events == [{"run": "a", "n": 1}]
    with path.open("r+b") as f:  # a new run truncates the same file and writes more than it had
        f.truncate(0)
        f.write(b"[\n" + _line({"run": "b", "n": 1}) + _line({"run": "b", "n": 2}))
    again = follower.poll()
    assert again.reset
    assert again.events == [{"run": "b", "n": 1}, {"run": "b", "n": 2}]


def test_follower_reads_a_whole_timeline_whole(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"traceEvents": [{"n": 1}, {"n": 2}], "otherData": {}}, indent=1))
    follower = Follower(path)
    assert follower.poll() == ([{"n": 1}, {"n": 2}], True)
    assert follower.poll() == ([], False)


def test_follower_skips_deep_and_long_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_bytes(b"[\n" + b"[" * 100_000 + b",\n" + _line({"n": 1}))
    follower = Follower(path)
    assert follower.poll().events == [{"n": 1}]
    assert follower.bad_lines == 1


# -- the state ----------------------------------------------------------------------------


def test_state_counts_and_in_flight_from_a_stream(tmp_path: Path) -> None:
    child = _server(tmp_path, "--max-spans", "10", seconds="1.2")
    child.communicate(timeout=120)
    path = tmp_path / "server.trace.json"
    follower = Follower(path)
    state = LiveState(window=10)
    lines = path.read_bytes().split(b"\n")
    last_open = max(i for i, line in enumerate(lines) if b'"tasks":5,' in line)
    # the file as it was just after the last snapshot: the run still going
    path.write_bytes(b"\n".join(lines[: last_open + 1]) + b"\n")
    state.add(follower.poll().events)
    assert state.finished is None
    assert state.tasks == 5
    assert state.spans > 20
    assert state.errors >= 2  # failing_job every 10 items, 0.04 s apart
    assert state.blocked == 0 or state.blocked_seconds >= 0.15 * state.blocked
    rows = state.waiting()
    assert [sec for _, _, sec in rows] == sorted((sec for _, _, sec in rows), reverse=True)
    task, aw, seconds = rows[0]  # the watchdog sleeps since the start
    assert (task.name, aw.name if aw else None) == ("watchdog", "asyncio.sleep(30)")
    assert seconds == pytest.approx(state.open_at - aw.start) and seconds > 0.5
    screen = state.screen(state.open_wall_ns, "", 100, 40, color=False)
    assert "5 tasks in flight" in screen
    assert "last 10 s" in screen
    assert all(len(line) <= 100 for line in screen.splitlines())
    assert len(state.screen(state.open_wall_ns, "", 60, 12, color=False).splitlines()) <= 12
    state.tasks = 1
    assert " · 1 task in flight · " in state.line(state.open_wall_ns, "")


HOSTILE = [
    {"ph": "M", "pid": 1, "tid": 0, "name": "process_name", "args": {"name": "\x1b[2Jevil"}},
    {"ph": "M", "tid": 7, "name": "thread_name", "args": {"name": [[["x"]]], "track": 7}},
    {"ph": "X", "ts": "soon", "dur": 1, "args": {"span_id": 1, "kind": "task"}},
    {"ph": "X", "ts": 1e308, "dur": 1e308, "args": {"span_id": 2, "kind": "blocked"}},
    {"ph": "X", "ts": 5, "dur": 1, "args": {"span_id": "x", "kind": "nope", "status": "??"}},
    {"ph": "X", "ts": 5, "dur": 1, "args": []},
    {"ph": "M", "name": OPEN_EVENT, "args": {"ts": "x", "wall_ns": 1, "tasks": 1, "spans": []}},
    {"ph": "M", "name": OPEN_EVENT, "args": {"ts": 1, "wall_ns": 1, "tasks": 2, "spans": 3}},
    {"ph": "M", "name": OPEN_EVENT, "args": {"ts": 9, "wall_ns": 1, "tasks": 1, "spans": [7, {}]}},
    {"ph": "M", "name": OPEN_EVENT, "args": None},
    {"ph": "X", "ts": 1, "dur": 2, "args": {"span_id": 3, "kind": "run", "parent_id": None}},
]


def test_state_takes_hostile_events_without_raising() -> None:
    state = LiveState()
    for event in HOSTILE:  # one at a time, then all at once
        state.add([event])
    state.add(HOSTILE)
    assert state.bad > 0
    for now in (0, time.time_ns()):
        screen = state.screen(now, "", 80, 24, color=False)
        assert "\x1b" not in screen  # the program's names cannot move the cursor
        assert state.line(now, "")


# -- the command line ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("view", "--follow", "."), "is a directory"),
        (("view", "--follow", "-o", "x.html", "t.json"), "--follow draws on the terminal"),
        (("run", "--live", "--no-json", "x.py"), "--live reads the JSON stream"),
        (("run", "--live", "--flush-interval", "0", "x.py"), "--flush-interval 0"),
    ],
)
def test_bad_live_arguments_are_one_line_and_exit_2(
    tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    (tmp_path / "x.py").write_text("print('ran')\n")
    result = subprocess.run(
        _asynctrace(*args), capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert says in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_follow_through_a_pipe_writes_a_line_a_second(tmp_path: Path, stop: int) -> None:
    server = _server(tmp_path)
    trace = tmp_path / "server.trace.json"
    viewer = subprocess.Popen(
        _asynctrace("view", "--follow", str(trace)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A background process may inherit SIGINT ignored; a terminal's Ctrl-C is not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert viewer.stdout is not None
        lines = [viewer.stdout.readline() for _ in range(4)]
    finally:
        viewer.send_signal(stop)
        _out, err = viewer.communicate(timeout=30)
        server.kill()
        server.communicate(timeout=30)
    assert viewer.returncode == 0, err
    assert err == ""
    assert "tasks in flight" in lines[-1]
    assert "watchdog watchdog() asyncio.sleep(30)" in lines[-1], lines


# -- a real terminal ----------------------------------------------------------------------


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """A tmux session 120x40 running bash; yields ``run(*tmux_args)`` (its stdout)."""
    if TMUX is None:
        if os.environ.get("CI"):
            pytest.fail("tmux is missing; .ci/setup installs it", pytrace=False)
        pytest.skip("tmux is not installed")
    name = f"asynctrace-live-{os.getpid()}-{next(_SESSIONS)}"  # a tmux server of its own
    socket = ["-L", name]

    def run(*args: str) -> str:
        done = subprocess.run([TMUX, *socket, *args], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"tmux {' '.join(args)}: {done.stderr}"
        return done.stdout

    env = f"PS1='$ ' PYTHONPATH={Path(__file__).resolve().parent.parent}"
    run("new-session", "-d", "-s", name, "-x", "120", "-y", "40", f"env {env} bash --norc")
    run("set-option", "-t", name, "remain-on-exit", "on")
    try:
        yield run
    finally:
        subprocess.run([TMUX, *socket, "kill-server"], capture_output=True, timeout=30)


def _screen(tmux: Callable[..., str]) -> str:
    return tmux("capture-pane", "-p")


def _wait_screen(tmux: Callable[..., str], *texts: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        screen = _screen(tmux)
        if all(t in screen for t in texts):
            return screen
        assert time.monotonic() < deadline, f"never showed {texts}:\n{screen}"
        time.sleep(0.2)


def test_view_follow_in_a_terminal(tmp_path: Path, tmux: Callable[..., str]) -> None:
    server = _server(tmp_path)
    trace = tmp_path / "server.trace.json"
    try:
        command = f"{sys.executable} -m asynctrace view --follow {trace}; echo EXIT=$?"
        tmux("send-keys", command, "Enter")
        screen = _wait_screen(tmux, "5 tasks in flight", "asyncio.sleep(30)", "last 10 s")
        assert "asynctrace live · server.py" in screen
        assert "watchdog watchdog()" in screen
        assert "consumer-0 consumer()" in screen
        assert "errors" in screen and "blocked" in screen
        assert all(len(line) <= 120 for line in screen.splitlines())
        # the file is cut under the view: it starts over and goes on
        os.truncate(trace, 0)
        _wait_screen(tmux, "5 tasks in flight", "asyncio.sleep(30)")
        # the program dies: the view stays, and says the file stopped growing
        server.kill()
        server.communicate(timeout=30)
        _wait_screen(tmux, "no new data for", timeout=30)
        tmux("send-keys", "C-c")
        screen = _wait_screen(tmux, "EXIT=0")
        # the terminal's own screen is back: the view's lines are gone
        assert "tasks in flight" not in screen
        assert "view --follow" in screen
    finally:
        server.kill()
        server.communicate(timeout=30)


def test_run_live_in_a_terminal(tmp_path: Path, tmux: Callable[..., str]) -> None:
    out = tmp_path / "out.txt"
    trace = tmp_path / "t.json"
    command = (
        f"cd {tmp_path} && {sys.executable} -m asynctrace run --live --json {trace} --width 100"
        f" {SERVER} 4 > {out}; echo EXIT=$?"
    )
    tmux("send-keys", command, "Enter")
    screen = _wait_screen(tmux, "tasks in flight", "asyncio.sleep(30)")
    assert "asynctrace live · server.py" in screen
    screen = _wait_screen(tmux, "EXIT=0", timeout=60)
    assert "tasks in flight" not in screen  # the live screen is gone
    assert "watchdog watchdog() [cancelled]" in screen  # the final timeline printed after it
    printed = out.read_text().splitlines()
    assert printed[-1].startswith("done ")
    assert all(line.startswith("tick ") for line in printed[:-1])


def test_run_live_ctrl_c_gives_the_terminal_back(tmp_path: Path, tmux: Callable[..., str]) -> None:
    command = (
        f"cd {tmp_path} && {sys.executable} -m asynctrace run --live --json {tmp_path / 't.json'}"
        f" --no-timeline {SERVER} > {tmp_path / 'out.txt'}"
    )
    tmux("send-keys", command, "Enter")
    _wait_screen(tmux, "tasks in flight", "asyncio.sleep(30)")
    tmux("send-keys", "C-c")
    _wait_screen(tmux, "JSON timeline:", timeout=60)
    tmux("send-keys", "echo EXIT=$?", "Enter")  # the shell drops a `;` list cut by SIGINT
    screen = _wait_screen(tmux, "EXIT=130")  # python's status for an interrupt
    assert "tasks in flight" not in screen
    assert "KeyboardInterrupt" in screen  # the program's own traceback, as under python
    assert "JSON timeline:" in screen


def test_run_live_leaves_output_and_status_as_python_does(tmp_path: Path) -> None:
    program = tmp_path / "prog.py"
    program.write_text(
        "import asyncio, sys\n"
        "async def main():\n"
        "    for i in range(3):\n"
        "        print('line', i, flush=True)\n"
        "        await asyncio.sleep(0.6)\n"
        "    sys.exit(3)\n"
        "asyncio.run(main())\n"
    )
    plain = subprocess.run(
        [sys.executable, str(program)], capture_output=True, text=True, timeout=60
    )
    live = subprocess.run(
        _asynctrace("run", "--live", "--json", str(tmp_path / "t.json"), str(program)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (live.returncode, live.stdout) == (plain.returncode, plain.stdout) == (3, plain.stdout)
    # stderr is not a terminal: a line a second, then the timeline as always
    lines = [line for line in live.stderr.splitlines() if " in flight · " in line]
    assert len(lines) >= 2, live.stderr
    assert "Task-1 main()" in live.stderr


def test_run_live_under_sigterm_writes_the_outputs_and_dies_of_it(tmp_path: Path) -> None:
    trace = tmp_path / "t.json"
    child = subprocess.Popen(
        _asynctrace("run", "--live", "--no-timeline", "--json", str(trace), str(SERVER)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    child.stdout.readline()  # the program's first tick: a second in
    child.send_signal(signal.SIGTERM)
    _out, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGTERM
    assert "tasks in flight" in err
    assert "JSON timeline:" in err
    names = {span.name for span in read_chrome_json(trace).spans}
    assert {"watchdog", "consumer", "Queue.get"} <= names
